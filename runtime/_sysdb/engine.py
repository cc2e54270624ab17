"""Engines and connections: one autocommit pool per database URL, explicit
BEGIN/COMMIT for the few multi-statement transactions, retries through
outages. Single-statement writes therefore cost exactly one round trip (on
Postgres through the fast lane, FastLane below). What differs per database is
asked of the URL's Dialect (dialects.py), chosen once at construction."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .._config import display_url
from .._errors import DatabaseUnreachableError, WfError
from .dialects import Dialect, PostgresDialect, dialect_for, driver_error
from .dialects import is_integrity_error as is_integrity_error
from .txguard import guard

log = logging.getLogger("wf")
T = TypeVar("T")

# connection errors each thread's statements met (retried or not): a write
# that met one may have committed with only its answer lost
_seen = threading.local()


def connection_errors_seen() -> int:
    """How many connection errors this thread's statements have met so far."""
    return int(getattr(_seen, "n", 0))


def _count_connection_error() -> None:
    _seen.n = connection_errors_seen() + 1


# per thread: the SQLite files whose write lock it holds (inside a write
# transaction). A write on another connection to the same file would wait for
# that lock for ever: it is refused at once, never taken for an outage.
_write_locks = threading.local()


def _holds_write_lock(url: str) -> bool:
    urls: set[str] | None = getattr(_write_locks, "urls", None)
    return urls is not None and url in urls


def _self_deadlock(url: str) -> WfError:
    return WfError(
        f"this thread holds the write lock of {display_url(url)} in a transaction; a write "
        "outside that transaction would wait for it for ever (do it after the transaction, "
        "or through wf.db())"
    )


def is_connection_error(e: BaseException) -> bool:
    """Is ``e`` the database being unreachable (worth retrying), rather than
    an error in the statement?"""
    if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
        return True
    dialect, orig = driver_error(e)
    if dialect is None:
        return isinstance(orig, ConnectionError)
    return dialect.is_connection_error(orig)


def is_serialization_failure(e: BaseException) -> bool:
    """Did the database refuse the transaction so that running it again may
    succeed (a serialization failure or a deadlock)?"""
    dialect, orig = driver_error(e)
    return dialect is not None and dialect.is_serialization_failure(orig)


class Database:
    """A pool of autocommit connections to one database, with outage retries.

    ``outage_timeout``: how long an operation keeps retrying while the
    database is unreachable (None: for ever, which is what a worker wants;
    0: fail at once, which is what a CLI read wants)."""

    def __init__(self, url: str, outage_timeout: float | None = None, pool_size: int = 10) -> None:
        self.url = url
        self.backend: Dialect = dialect_for(url)
        self.dialect = self.backend.name
        # fail-fast clients (CLI) check pooled connections before use: their
        # first statement after a database restart must not fail on a dead one
        # its connections refuse a user transaction's own commit (txguard)
        self.engine = guard(self.backend.make_engine(url, pool_size, pre_ping=outage_timeout == 0))
        self.outage_timeout = outage_timeout
        self._texts: dict[str, sa.TextClause] = {}
        self._compiled: dict[str, str] = {}
        # single statements skip SQLAlchemy's pool and execution layers on
        # Postgres: measured, they cost about as much as the round trip itself
        self.lane = FastLane(url) if self.backend.has_fast_lane else None
        self._lock = threading.Lock()
        # wall-clock time of the last connection error any call here saw:
        # liveness judgements made just after an outage must not trust
        # heartbeats that everyone was unable to write
        self.last_outage = 0.0

    def text(self, sql: str) -> sa.TextClause:
        t = self._texts.get(sql)
        if t is None:
            t = self._texts[sql] = sa.text(sql)
        return t

    def retrying(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` again after a connection error, with backoff, until
        ``outage_timeout`` runs out. Callers make ``fn`` safe to repeat."""
        deadline = None if self.outage_timeout is None else time.monotonic() + self.outage_timeout
        delay = 0.05
        warned = False
        while True:
            try:
                return fn()
            except Exception as e:
                if not is_connection_error(e):
                    raise
                _count_connection_error()
                self.last_outage = time.time()
                if deadline is not None and time.monotonic() + delay > deadline:
                    raise DatabaseUnreachableError(
                        f"cannot reach the database {display_url(self.url)}: {_first_line(e)}"
                    ) from e
                if not warned:
                    log.warning(
                        "database %s unreachable, retrying: %s",
                        display_url(self.url),
                        _first_line(e),
                    )
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def wait_for_database(self, delay: float | None, error: BaseException) -> float:
        """One backoff wait inside a caller's own retry loop (for blocks that
        cannot be wrapped in ``retrying``); returns the next delay."""
        self.last_outage = time.time()
        if self.outage_timeout == 0:
            raise DatabaseUnreachableError(
                f"cannot reach the database {display_url(self.url)}: {_first_line(error)}"
            ) from error
        if delay is None:
            log.warning(
                "database %s unreachable, retrying: %s", display_url(self.url), _first_line(error)
            )
            delay = 0.05
        if self.lane is not None:
            self.lane.drop_idle()
        time.sleep(delay)
        return min(delay * 2, 2.0)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Any:
        """One statement, autocommitted (one round trip), retried through outages."""
        if self.lane is not None:
            lane = self.lane
            compiled = self._compiled.get(sql)
            if compiled is None:
                compiled = self._compiled[sql] = str(
                    sa.text(sql).compile(dialect=self.engine.dialect)
                )
            return self.retrying(lambda: lane.execute(compiled, params or {}))
        if _holds_write_lock(self.url) and sql.lstrip()[:6].upper() != "SELECT":
            raise _self_deadlock(self.url)
        stmt = self.text(sql)

        def run() -> Any:
            with self.connect() as conn:
                result = conn.execute(stmt, params or {})
                if result.returns_rows:
                    # materialize before the connection goes back to the pool
                    rows = result.fetchall()
                    return _Materialized(list(rows), result.rowcount)
                return result

        return self.retrying(run)

    @contextlib.contextmanager
    def transaction(
        self, isolation: str | None = None, read_only: bool = False
    ) -> Iterator[Connection]:
        """An explicit transaction. Opening it (connect and BEGIN) waits out an
        outage; a block that fails midway is re-run by its caller."""
        begin = self.backend.begin(isolation, read_only)
        takes_lock = self.backend.locks_database and not read_only
        if takes_lock and _holds_write_lock(self.url):
            raise _self_deadlock(self.url)

        def open_begun() -> Connection:
            conn = self.connect()
            try:
                conn.exec_driver_sql(begin)
            except BaseException:
                conn.close()
                raise
            return conn

        conn = self.retrying(open_begun)
        locks: set[str] | None = None
        if takes_lock:
            locks = _write_locks.__dict__.setdefault("urls", set())
            locks.add(self.url)
        with conn:
            try:
                yield conn
            except BaseException:
                tx = conn.get_transaction()
                if tx is not None and not tx.is_valid:
                    # a refused commit() left SQLAlchemy's view of it broken
                    with contextlib.suppress(Exception):
                        conn.rollback()
                with contextlib.suppress(Exception):
                    conn.exec_driver_sql("ROLLBACK")
                raise
            else:
                conn.exec_driver_sql("COMMIT")
            finally:
                if locks is not None:
                    locks.discard(self.url)

    def connect(self) -> Connection:
        """A pooled connection. While every one is in use, wait for one:
        their holders give them back when their statements or transactions
        end, so an exhausted pool is a queue, not an error (SQLAlchemy's pool
        timeout only paces a warning)."""
        warned = False
        while True:
            try:
                return self.engine.connect()
            except sa_exc.TimeoutError as e:
                if not warned:
                    log.warning(
                        "all connections to %s are busy, waiting for one: %s",
                        display_url(self.url),
                        _first_line(e),
                    )
                    warned = True

    def dispose(self) -> None:
        if self.lane is not None:
            self.lane.close()
        self.engine.dispose()


class _StaleConnection(Exception):
    pass


class FastLane:
    """A minimal LIFO pool of autocommit psycopg connections with server-side
    prepared statements, for the one-statement writes and reads on the
    workflow hot path. A connection is held only for one statement, so the
    pool grows to the number of statements in flight at once, not the
    number of running workflows."""

    def __init__(self, url: str, max_open: int = 16) -> None:
        self.conninfo = PostgresDialect.conninfo(url)
        # bounded: hundreds of workflow threads must not open hundreds of
        # server connections (Postgres allows 100 by default)
        self._slots = threading.BoundedSemaphore(max_open)
        self._idle: list[Any] = []
        self._closed = False

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(
            self.conninfo,
            autocommit=True,
            prepare_threshold=0,
            connect_timeout=10,
            application_name="wf",
        )

    def execute(self, sql: str, params: dict[str, Any]) -> _Materialized:
        with self._slots:
            try:
                return self._execute(sql, params)
            except _StaleConnection:
                # a pooled connection died with the server: so did its
                # siblings; try once more on a fresh connection
                _count_connection_error()
                self.drop_idle()
                return self._execute(sql, params)

    def drop_idle(self) -> None:
        while self._idle:
            with contextlib.suppress(Exception):
                self._idle.pop()[0].close()

    def _execute(self, sql: str, params: dict[str, Any]) -> _Materialized:
        reused = True
        try:
            conn, cur = self._idle.pop()
        except IndexError:
            reused = False
            conn = self._connect()
            cur = conn.cursor()  # reused for every statement on this connection
        try:
            cur.execute(sql, params)
            rows = cur.fetchall() if cur.description is not None else []
            result = _Materialized(rows, cur.rowcount)
        except BaseException as e:
            import psycopg

            if conn.closed or isinstance(e, psycopg.OperationalError | psycopg.InterfaceError):
                with contextlib.suppress(Exception):
                    conn.close()
            else:
                self._put(conn, cur)
            if reused and is_connection_error(e):
                raise _StaleConnection() from e
            raise
        self._put(conn, cur)
        return result

    def _put(self, conn: Any, cur: Any) -> None:
        if self._closed:
            conn.close()
        else:
            self._idle.append((conn, cur))

    def close(self) -> None:
        self._closed = True
        while self._idle:
            with contextlib.suppress(Exception):
                self._idle.pop()[0].close()


class _Materialized:
    """A fetched result that outlives its connection."""

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


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
