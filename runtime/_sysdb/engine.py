"""Connections and outage retries: every statement and transaction of wf's
own runs on a driver.Pool of raw autocommit connections (one round trip for
a single statement), retried through outages; user transactions get a
SQLAlchemy Connection from an engine made on first use. What differs per
database is asked of the URL's Dialect (dialects.py), chosen once at
construction."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from .._config import display_url
from .._errors import DatabaseUnreachableError, WfError
from .dialects import (
    LANE_CONNECTIONS,
    READ_ONLY_STATE,
    STATEMENT_FAULT,
    Dialect,
    dialect_for,
    driver_error,
)
from .dialects import is_integrity_error as is_integrity_error
from .driver import Pool, RawConnection, Rows, count_connection_error, to_pyformat
from .driver import connection_errors_seen as connection_errors_seen

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger("wf")
T = TypeVar("T")

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
    dialect, orig = driver_error(e)
    if getattr(orig, STATEMENT_FAULT, False):
        return False  # the statement's own fault (_mark_statement_fault)
    if getattr(e, "connection_invalidated", False) and "sqlalchemy" in sys.modules:
        return True  # SQLAlchemy's wrapper saw the connection die
    if dialect is None:
        return isinstance(orig, ConnectionError)
    return dialect.is_connection_error(orig)


def _mark_statement_fault(e: BaseException) -> None:
    """In a transaction declared READ ONLY, a read-only refusal (25006) is
    the body's write, not a read-only node (a standby runs read-only
    transactions): mark it, so it fails the call instead of being waited out."""
    _dialect, orig = driver_error(e)
    if getattr(orig, "sqlstate", None) == READ_ONLY_STATE:
        with contextlib.suppress(AttributeError):
            setattr(orig, STATEMENT_FAULT, True)


def is_database_error(e: BaseException) -> bool:
    """Did the database or its driver raise ``e`` (not the user's own code)?"""
    return type(e).__module__.partition(".")[0] in ("sqlalchemy", "psycopg", "sqlite3")


def is_serialization_failure(e: BaseException) -> bool:
    """Did the database refuse the transaction so that running it again may
    succeed (a serialization failure or a deadlock)?"""
    dialect, orig = driver_error(e)
    return dialect is not None and dialect.is_serialization_failure(orig)


class Database:
    """Pools of autocommit connections to one database, with outage retries.

    ``outage_timeout``: how long an operation keeps retrying while the
    database is unreachable (None: for ever, which is what a worker wants;
    0: fail at once, which is what a CLI read wants). ``pooled``: behind a
    transaction-pooling PgBouncer, so no server-side prepared statements and
    no LISTEN through it (``listen_url``: a direct URL to LISTEN on there;
    None: waiters poll)."""

    def __init__(
        self,
        url: str,
        outage_timeout: float | None = None,
        pool_size: int = 10,
        *,
        pooled: bool = False,
        listen_url: str | None = None,
    ) -> None:
        self.url = url
        self.backend: Dialect = dialect_for(url)
        self.dialect = self.backend.name
        self.outage_timeout = outage_timeout
        self.prepared = prepared = not pooled
        # where wake-ups are heard (None: nowhere; waiters poll)
        self.listen_url: str | None = (
            None if not self.backend.listens else listen_url if pooled else url
        )
        self._pool_size = pool_size
        self._engine: Engine | None = None
        self._texts: dict[str, sa.TextClause] = {}
        self._rendered: dict[str, str] = {}  # named statement -> SQL (base.BaseDatabase.q)
        self._array_sql: dict[str, str] = {}  # execute_arrays' SQL -> the driver's
        backend = self.backend

        def connect() -> Any:
            return backend.connect(url, prepared)

        def broken(e: BaseException) -> bool:
            return backend.is_connection_error(e)

        # single statements (held for one statement: the pool grows to the
        # statements in flight, not the running workflows) and transactions
        # apart, so a transaction's holder never waits on itself
        self.lane = Pool(
            connect,
            broken,
            max_open=LANE_CONNECTIONS,
            cursor=lambda conn: backend.lane_cursor(conn, prepared),
        )
        self._tx_pool = Pool(
            connect, broken, max_open=2 * pool_size, cursor=lambda conn: conn.cursor()
        )
        self._lock = threading.Lock()
        # wall-clock time of the last connection error any call here saw:
        # liveness judgements made just after an outage must not trust
        # heartbeats that everyone was unable to write
        self.last_outage = 0.0

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine of user transactions, made on first use."""
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    from .txguard import guard

                    # fail-fast clients check pooled connections before use;
                    # the connections refuse a user transaction's own commit
                    self._engine = guard(
                        self.backend.make_engine(
                            self.url,
                            self._pool_size,
                            pre_ping=self.outage_timeout == 0,
                            prepared=self.prepared,
                        )
                    )
        return self._engine

    def text(self, sql: str) -> sa.TextClause:
        t = self._texts.get(sql)
        if t is None:
            import sqlalchemy as sa

            t = self._texts[sql] = sa.text(sql)
        return t

    def on(self, conn: Any, sql: str, params: dict[str, Any]) -> Any:
        """``sql`` on ``conn``: a transaction of wf's own, or the SQLAlchemy
        Connection of a user transaction the statement must join."""
        if isinstance(conn, RawConnection):
            return conn.execute(sql, params)
        return conn.execute(self.text(sql), params)

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
                count_connection_error()
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
        self.lane.drop_idle()
        self._tx_pool.drop_idle()
        time.sleep(delay)
        return min(delay * 2, 2.0)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> Rows:
        """One statement, autocommitted (one round trip), retried through outages."""
        if (
            self.backend.locks_database
            and _holds_write_lock(self.url)
            and sql.lstrip()[:6].upper() != "SELECT"
        ):
            raise _self_deadlock(self.url)
        text, args = self.backend.style(sql, params or {})
        lane = self.lane
        return self.retrying(lambda: lane.run(text, args))

    def execute_arrays(self, sql: str, params: dict[str, list[Any]]) -> Rows:
        """One statement whose list parameters are bound whole, as arrays
        (Postgres), autocommitted on the lane; no outage retries: its caller
        (group_commit.py) redoes each write alone after any error."""
        text = self._array_sql.get(sql)
        if text is None:
            text = self._array_sql[sql] = to_pyformat(sql)
        return self.lane.run(text, params)

    @contextlib.contextmanager
    def transaction(
        self, isolation: str | None = None, read_only: bool = False
    ) -> Iterator[RawConnection]:
        """A transaction of wf's own statements. Opening it (connect and
        BEGIN) waits out an outage; a block that fails midway is re-run by
        its caller."""
        with self._begun(isolation, read_only) as (pool, begin):
            conn, cur = self.retrying(lambda: pool.acquire(begin))
            error: BaseException | None = None
            try:
                yield RawConnection(cur, self.backend.style, self.backend.ddl_kwargs)
                cur.execute("COMMIT")
            except BaseException as e:
                error = e
                with contextlib.suppress(Exception):
                    cur.execute("ROLLBACK")
                raise
            finally:
                pool.release(conn, cur, error)

    @contextlib.contextmanager
    def user_transaction(
        self, isolation: str | None = None, read_only: bool = False
    ) -> Iterator[Connection]:
        """A transaction on a SQLAlchemy Connection, for a @wf.transaction
        body (the Connection ``wf.db()`` returns)."""
        with self._begun(isolation, read_only) as (_pool, begin):

            def open_begun() -> Connection:
                conn = self.connect()
                try:
                    conn.exec_driver_sql(begin)
                except BaseException:
                    conn.close()
                    raise
                return conn

            conn = self.retrying(open_begun)
            with conn:
                try:
                    yield conn
                except BaseException as e:
                    if read_only:
                        _mark_statement_fault(e)
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

    @contextlib.contextmanager
    def _begun(self, isolation: str | None, read_only: bool) -> Iterator[tuple[Pool, str]]:
        """The BEGIN statement; while the block runs, this thread is known
        to hold the SQLite write lock (when the transaction takes it)."""
        begin = self.backend.begin(isolation, read_only)
        takes_lock = self.backend.locks_database and not read_only
        if takes_lock and _holds_write_lock(self.url):
            raise _self_deadlock(self.url)
        locks: set[str] | None = None
        if takes_lock:
            locks = _write_locks.__dict__.setdefault("urls", set())
            locks.add(self.url)
        try:
            yield self._tx_pool, begin
        finally:
            if locks is not None:
                locks.discard(self.url)

    def connect(self) -> Connection:
        """A pooled SQLAlchemy connection. While every one is in use, wait
        for one: their holders give them back when their transactions end,
        so an exhausted pool is a queue, not an error (SQLAlchemy's pool
        timeout only paces a warning)."""
        from sqlalchemy import exc as sa_exc

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
        self.lane.close()
        self._tx_pool.close()
        if self._engine is not None:
            self._engine.dispose()


def _first_line(e: BaseException) -> str:
    orig = getattr(e, "orig", None) or e
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
