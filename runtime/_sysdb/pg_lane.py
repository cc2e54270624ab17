"""The Postgres lane's statements: psycopg's own adaptation (its C
Transformer, the same dumpers and loaders a cursor uses) over libpq's
blocking calls, without the cursor's layers around them.

Measured here (one INSERT, autocommit): 26–44 µs of the client's CPU a
statement this way, 54–56 µs through ``Cursor.execute``; every recorded call
is such a statement, and sixteen workflow threads share two cores with the
server. libpq releases the GIL while it waits, as the cursor does.

A statement is prepared on its first use per (SQL, parameter types), as the
cursor does with ``prepare_threshold=0``; behind a transaction-pooling
PgBouncer (``prepared`` False) every statement goes unnamed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .driver import Rows

# a bound name in psycopg's pyformat (driver.to_pyformat), or a doubled %
_TOKEN = re.compile(r"%%|%\((\w+)\)s")
_numbered: dict[str, tuple[bytes, tuple[str, ...]]] = {}

# prepared statements one connection keeps before it deallocates them all
# (SQL with a list expanded into binds differs by the list's length)
MAX_PREPARED = 256


def numbered(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """pyformat SQL → libpq's ``$1``… SQL and the names bound, in order."""
    got = _numbered.get(sql)
    if got is None:
        names: list[str] = []

        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name is None:
                return "%"
            if name not in names:
                names.append(name)
            return f"${names.index(name) + 1}"

        got = _numbered[sql] = (_TOKEN.sub(sub, sql).encode(), tuple(names))
    return got


class PgLaneCursor:
    """One pooled connection's statements (driver.Pool's lane)."""

    __slots__ = ("_conn", "_pg", "_tx", "_prepare", "_names", "_made", "_encoding")

    def __init__(self, conn: Any, prepare: bool) -> None:
        from psycopg.adapt import Transformer

        self._conn = conn
        self._pg = conn.pgconn
        self._tx = Transformer(conn)
        self._prepare = prepare
        self._names: dict[tuple[str, Any], bytes] = {}
        self._made = 0  # statements prepared so far: a fresh name for each
        self._encoding = conn.info.encoding

    def run(self, sql: str, params: Mapping[str, Any]) -> Rows:
        from psycopg import pq
        from psycopg.adapt import PyFormat

        text, names = numbered(sql)
        tx = self._tx
        values = tx.dump_sequence([params[n] for n in names], [PyFormat.AUTO] * len(names))
        pg = self._pg
        if self._prepare:
            key = (sql, tx.types)
            name = self._names.get(key)
            if name is None:
                name = self._prepared(key, text)
            res = pg.exec_prepared(name, values, tx.formats)
        else:
            res = pg.exec_params(text, values, tx.types, tx.formats)
        status = res.status
        if status == pq.ExecStatus.TUPLES_OK:
            tx.set_pgresult(res)
            rows = tx.load_rows(0, res.ntuples, tuple)
        elif status == pq.ExecStatus.COMMAND_OK:
            rows = []
        else:
            raise self._error(res)
        count = res.command_tuples
        return Rows(rows, -1 if count is None else count)

    def _prepared(self, key: tuple[str, Any], text: bytes) -> bytes:
        from psycopg import pq

        pg = self._pg
        if len(self._names) >= MAX_PREPARED:
            self._names.clear()
            res = pg.exec_(b"DEALLOCATE ALL")
            if res.status != pq.ExecStatus.COMMAND_OK:
                raise self._error(res)
        name = b"wf_%d" % self._made
        self._made += 1
        res = pg.prepare(name, text, self._tx.types)
        if res.status != pq.ExecStatus.COMMAND_OK:
            raise self._error(res)
        self._names[key] = name
        return name

    def _error(self, res: Any) -> Exception:
        import psycopg
        from psycopg import pq

        if self._pg.status == pq.ConnStatus.BAD:
            # the connection broke: a client-side error, as the cursor raises
            message = res.error_message.decode("utf-8", "replace").strip()
            return psycopg.OperationalError(message or "the connection to the server was lost")
        err = psycopg.errors.error_from_result(res, encoding=self._encoding)
        if err.sqlstate in ("26000", "0A000"):
            # a prepared statement gone, or its plan's result type changed
            # (a migration): prepare again on the next use
            self._names.clear()
        return err
