"""The drivers themselves: pools of autocommit psycopg / sqlite3 connections
for every statement and transaction of wf's own, and the one rewrite of wf's
named-parameter SQL (``:name``, ``IN :names`` lists) into each driver's style.

wf's own statements skip SQLAlchemy: measured, its execution layers cost
about as much as a commit's round trip, and importing it costs a CLI read
more than the read itself. SQLAlchemy stays for what user code is given (a
transaction's Connection, ``wf.db()``), in engine.Database.user_transaction."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any

# a bind, not a cast (``x::text``) nor a time literal's colon
_BIND = re.compile(r"(?<![:\w]):(\w+)")

# connection errors each thread's statements met (retried or not): a write
# that met one may have committed with only its answer lost
_seen = threading.local()


def connection_errors_seen() -> int:
    """How many connection errors this thread's statements have met so far."""
    return int(getattr(_seen, "n", 0))


def count_connection_error() -> None:
    _seen.n = connection_errors_seen() + 1


class Rows:
    """A fetched result that outlives its connection."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchall(self) -> list[Any]:
        return self._rows

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


def expand_lists(sql: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """``IN :ids`` with a list ``ids`` becomes ``IN (:ids__0, :ids__1, …)``
    (``(NULL)`` for an empty list, which matches nothing)."""
    out = dict(params)
    for key, value in params.items():
        if not isinstance(value, list | tuple):
            continue
        del out[key]
        names = [f"{key}__{i}" for i in range(len(value))]
        out.update(zip(names, value, strict=True))
        group = "(" + (", ".join(":" + n for n in names) or "NULL") + ")"
        sql = re.sub(rf"(?<![:\w]):{key}\b", group, sql)
    return sql, out


def to_pyformat(sql: str) -> str:
    """``:name`` → psycopg's ``%(name)s`` (a literal ``%`` doubled)."""
    return _BIND.sub(r"%(\1)s", sql.replace("%", "%%"))


class Pool:
    """A LIFO pool of open driver connections, each with its one cursor.

    ``max_open`` bounds the connections open at once (hundreds of workflow
    threads must not open hundreds of server connections); a caller past the
    bound waits for one to come back: an exhausted pool is a queue, not an
    error. A connection is held for one statement or one transaction."""

    def __init__(
        self,
        connect: Callable[[], Any],
        is_connection_error: Callable[[BaseException], bool],
        max_open: int,
        cursor: Callable[[Any], Any] | None = None,
    ) -> None:
        self._connect = connect
        self._is_connection_error = is_connection_error
        # each connection's cursor: a DB-API one (transactions, ``acquire``),
        # or what ``run`` runs statements on (``run(sql, params) -> Rows``)
        self._cursor = cursor or CursorLane
        self._slots = threading.BoundedSemaphore(max_open)
        self._idle: list[tuple[Any, Any]] = []
        self._closed = False

    def acquire(self, first: str) -> tuple[Any, Any]:
        """A pooled connection and its cursor, held for a transaction until
        ``release``; ``first`` (its BEGIN) has run on it. When a reused
        connection turns out dead there, the idle ones died with it (a server
        restart): they are dropped and a fresh one is tried once."""
        self._slots.acquire()
        try:
            conn, cur, reused = self._take()
            try:
                cur.execute(first)
                return conn, cur
            except BaseException as e:
                self._give_back(conn, cur, e)
                if not (reused and self._is_connection_error(e)):
                    raise
            count_connection_error()
            self.drop_idle()
            conn, cur, _ = self._take()
            try:
                cur.execute(first)
            except BaseException as e:
                self._give_back(conn, cur, e)
                raise
            return conn, cur
        except BaseException:
            self._slots.release()
            raise

    def release(self, conn: Any, cur: Any, error: BaseException | None) -> None:
        self._give_back(conn, cur, error)
        self._slots.release()

    def run(self, sql: str, params: Mapping[str, Any]) -> Rows:
        """One statement (autocommitted), retried once on a fresh connection
        when a reused one turns out dead."""
        with self._slots:
            conn, cur, reused = self._take()
            try:
                return self._run_on(conn, cur, sql, params)
            except BaseException as e:
                if not (reused and self._is_connection_error(e)):
                    raise
            # the statement may have committed with only its answer lost
            count_connection_error()
            self.drop_idle()
            conn, cur, _ = self._take()
            return self._run_on(conn, cur, sql, params)

    def _run_on(self, conn: Any, cur: Any, sql: str, params: Mapping[str, Any]) -> Rows:
        try:
            rows = cur.run(sql, params)
        except BaseException as e:
            self._give_back(conn, cur, e)
            raise
        self._give_back(conn, cur, None)
        return rows

    def _take(self) -> tuple[Any, Any, bool]:
        try:
            conn, cur = self._idle.pop()
            return conn, cur, True
        except IndexError:
            conn = self._connect()
            return conn, self._cursor(conn), False

    def _give_back(self, conn: Any, cur: Any, error: BaseException | None) -> None:
        if self._closed or not self._reusable(conn, error):
            with contextlib.suppress(Exception):
                conn.close()
        else:
            self._idle.append((conn, cur))

    def _reusable(self, conn: Any, error: BaseException | None) -> bool:
        if error is None:
            return True
        # an interruption (KeyboardInterrupt, a signal) may have left the
        # connection mid-protocol; a broken one or one still inside a
        # transaction is no use to the next holder either
        if not isinstance(error, Exception) or self._is_connection_error(error):
            return False
        return not (_is_closed(conn) or _in_transaction(conn))

    def drop_idle(self) -> None:
        while self._idle:
            with contextlib.suppress(Exception):
                self._idle.pop()[0].close()

    def close(self) -> None:
        self._closed = True
        self.drop_idle()


def _is_closed(conn: Any) -> bool:
    return bool(getattr(conn, "closed", False))  # psycopg; sqlite3 has none


def _in_transaction(conn: Any) -> bool:
    info = getattr(conn, "info", None)  # psycopg: 0 is IDLE
    if info is not None:
        return int(info.transaction_status) != 0
    return bool(getattr(conn, "in_transaction", False))  # sqlite3


class CursorLane:
    """A connection's DB-API cursor, running the lane's statements."""

    __slots__ = ("_cur",)

    def __init__(self, conn: Any) -> None:
        self._cur = conn.cursor()

    def run(self, sql: str, params: Mapping[str, Any]) -> Rows:
        cur = self._cur
        cur.execute(sql, params)
        return Rows(cur.fetchall() if cur.description is not None else [], cur.rowcount)


class RawConnection:
    """A transaction's connection (engine.Database.transaction): ``execute``
    takes wf's named-parameter SQL, like the pool's single statements."""

    __slots__ = ("_cur", "_style", "_ddl_kwargs")

    def __init__(
        self,
        cur: Any,
        style: Callable[[str, Mapping[str, Any]], tuple[str, Any]],
        ddl_kwargs: dict[str, Any],
    ) -> None:
        self._cur = cur
        self._style = style
        self._ddl_kwargs = ddl_kwargs

    def execute(self, sql: str, params: Mapping[str, Any] | None = None) -> Rows:
        text, args = self._style(sql, params or {})
        cur = self._cur
        cur.execute(text, args)
        return Rows(cur.fetchall() if cur.description is not None else [], cur.rowcount)

    def exec_driver_sql(self, sql: str) -> None:
        """A statement as the driver takes it (DDL, no parameters)."""
        self._cur.execute(sql, **self._ddl_kwargs)
