"""What differs between Postgres and SQLite, in one class each: the schema
prefix, SQL fragments, how transactions begin, engine setup, creating a
missing database, advisory locks, the fast lane, LISTEN, and how the
driver's errors are classified. ``dialect_for(url)`` picks one, once, when a
Database is built; nothing else in wf branches on the dialect's name."""

from __future__ import annotations

import os
import re
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine

ISOLATION_SQL = {
    "serializable": "SERIALIZABLE",
    "repeatable_read": "REPEATABLE READ",
    "read_committed": "READ COMMITTED",
}


class Dialect:
    name: ClassVar[str]
    # prefixed to every table name (``{s}`` in queries and DDL)
    schema_prefix: ClassVar[str]
    # ``{name}`` placeholders of queries.py
    fragments: ClassVar[dict[str, str]]
    # ``{name}`` placeholders of the DDL in schema.py
    ddl_types: ClassVar[dict[str, str]]
    # the LISTEN/NOTIFY wake-ups (and the schema's NOTIFY triggers)
    listens: ClassVar[bool]
    # single statements may skip SQLAlchemy (engine.FastLane)
    has_fast_lane: ClassVar[bool]
    # advisory locks serialize migrations and limited dequeues across processes
    advisory_locks: ClassVar[bool]
    # does a write transaction hold the whole database's write lock (SQLite)?
    locks_database: ClassVar[bool]
    # does a read-only @wf.transaction run READ ONLY (so the call's record is
    # written after it, not in it)? SQLite ignores the option.
    read_only_transactions: ClassVar[bool]

    def begin(self, isolation: str | None, read_only: bool) -> str:
        raise NotImplementedError

    def make_engine(self, url: str, pool_size: int, pre_ping: bool) -> Engine:
        raise NotImplementedError

    def migration_preamble(self) -> list[str]:
        """Statements run first in the migration transaction."""
        return []

    def database_exists(self, url: str) -> bool:
        """Without connecting, if that can tell: is the database there?
        (True when only connecting can tell.)"""
        return True

    def is_missing_database(self, e: BaseException) -> bool:
        return False

    def create_database(self, url: str) -> None:
        raise NotImplementedError

    # -- the driver's errors (``e`` unwrapped from SQLAlchemy's wrapper) ------------------

    def is_connection_error(self, e: BaseException) -> bool:
        return isinstance(e, ConnectionError)

    def is_serialization_failure(self, e: BaseException) -> bool:
        return False

    def is_lock_timeout(self, e: BaseException) -> bool:
        return False


def is_integrity_error(e: BaseException) -> bool:
    """A constraint violation, from SQLAlchemy or straight from either driver
    (the fast lane), without importing the driver."""
    return any(c.__name__ == "IntegrityError" for c in type(e).__mro__)


class PostgresDialect(Dialect):
    name = "postgresql"
    schema_prefix = "wf."
    fragments = {
        "for_share": "FOR SHARE",
        "skip_locked": "FOR UPDATE SKIP LOCKED",
        "seq": "seq",
        "queue_index_terms": "",
        "offset_only": " OFFSET :offset",
    }
    # insertion order breaks created_at ties (queues are FIFO within a
    # millisecond too): a sequence column on Postgres, the rowid on SQLite
    ddl_types = {
        "serial_pk": "BIGSERIAL PRIMARY KEY",
        "seq_column": ",\n            seq BIGSERIAL NOT NULL",
        "seq_index": ", seq",
    }
    listens = True
    has_fast_lane = True
    advisory_locks = True
    locks_database = False
    read_only_transactions = True

    # connection exceptions; shutting down, cannot connect now; too many clients
    _CONNECTION_STATES = frozenset(("57P01", "57P02", "57P03", "53300"))
    # serialization failure, deadlock detected
    _SERIALIZATION_STATES = frozenset(("40001", "40P01"))
    _LOCK_NOT_AVAILABLE = "55P03"

    def begin(self, isolation: str | None, read_only: bool) -> str:
        begin = "BEGIN"
        if isolation:
            begin += " ISOLATION LEVEL " + ISOLATION_SQL[isolation]
        if read_only:
            begin += " READ ONLY"
        return begin

    def make_engine(self, url: str, pool_size: int, pre_ping: bool) -> Engine:
        return sa.create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=pre_ping,
            connect_args={"connect_timeout": 10, "application_name": "wf"},
        )

    @staticmethod
    def conninfo(url: str) -> str:
        """The URL as plain psycopg takes it (no SQLAlchemy driver suffix)."""
        u = sa.engine.make_url(url).set(drivername="postgresql")
        return u.render_as_string(hide_password=False)

    def migration_preamble(self) -> list[str]:
        # serialize concurrent launches; the lock ends with the transaction
        return ["SELECT pg_advisory_xact_lock(7262001)", "CREATE SCHEMA IF NOT EXISTS wf"]

    def is_missing_database(self, e: BaseException) -> bool:
        # not a missing role ('role "x" does not exist'): that database exists
        return _MISSING_DATABASE.search(str(e)) is not None

    def create_database(self, url: str) -> None:
        u = sa.engine.make_url(url)
        admin = sa.create_engine(u.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                name = u.database or "wf"
                quoted = '"' + name.replace('"', '""') + '"'
                try:
                    conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
                except (sa_exc.ProgrammingError, sa_exc.IntegrityError) as e:
                    # a concurrent first launch created it: a unique violation
                    # on pg_database (SQLSTATE 23505) or "already exists"
                    if "already exists" not in str(e) and not is_integrity_error(e):
                        raise
        finally:
            admin.dispose()

    def is_connection_error(self, e: BaseException) -> bool:
        state = getattr(e, "sqlstate", None)
        if state is None:  # raised by the client: no connection, or it broke
            return type(e).__name__ in ("OperationalError", "InterfaceError")
        return state.startswith("08") or state in self._CONNECTION_STATES

    def is_serialization_failure(self, e: BaseException) -> bool:
        return getattr(e, "sqlstate", None) in self._SERIALIZATION_STATES

    def is_lock_timeout(self, e: BaseException) -> bool:
        return getattr(e, "sqlstate", None) == self._LOCK_NOT_AVAILABLE


_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets readers run beside the one writer; the busy timeout makes
    # writers queue instead of failing at once.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


class SqliteDialect(Dialect):
    name = "sqlite"
    schema_prefix = ""
    # SQLite uses a partial index only when the query repeats its WHERE terms
    # (on Postgres they would cost the index's ordering); one writer at a
    # time, so no row locks
    fragments = {
        "for_share": "",
        "skip_locked": "",
        "seq": "rowid",
        "queue_index_terms": "AND status IN ('ENQUEUED', 'PENDING') AND queue IS NOT NULL",
        # SQLite takes OFFSET only after a LIMIT
        "offset_only": " LIMIT -1 OFFSET :offset",
    }
    ddl_types = {
        "serial_pk": "INTEGER PRIMARY KEY AUTOINCREMENT",
        "seq_column": "",
        "seq_index": "",
    }
    listens = False
    has_fast_lane = False
    advisory_locks = False
    locks_database = True
    read_only_transactions = False

    def begin(self, isolation: str | None, read_only: bool) -> str:
        # IMMEDIATE takes the write lock at once: a transaction that would
        # write later cannot deadlock with another one upgrading too
        return "BEGIN" if read_only else "BEGIN IMMEDIATE"

    def make_engine(self, url: str, pool_size: int, pre_ping: bool) -> Engine:
        engine = sa.create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine

    def database_exists(self, url: str) -> bool:
        path = sa.engine.make_url(url).database
        if path and path.startswith("file:"):  # a URI filename (?mode=ro)
            path = path[len("file:") :].partition("?")[0]
        if not path or path == ":memory:" or "mode=memory" in url:
            return True
        # an empty file is no database yet (connecting would write its header)
        return os.path.exists(path) and os.path.getsize(path) > 0

    def is_connection_error(self, e: BaseException) -> bool:
        msg = str(e).lower()
        return type(e).__name__ == "OperationalError" and any(
            m in msg for m in ("locked", "busy", "unable to open", "disk i/o")
        )


POSTGRES = PostgresDialect()
SQLITE = SqliteDialect()

# the dialect whose driver raised an error, by the driver's top-level module
_BY_DRIVER: dict[str, Dialect] = {"psycopg": POSTGRES, "sqlite3": SQLITE}


def dialect_for(url: str) -> Dialect:
    return POSTGRES if url.startswith("postgresql") else SQLITE


def driver_error(e: BaseException) -> tuple[Dialect | None, BaseException]:
    """The driver's own exception inside ``e`` and the dialect whose driver
    raised it (None: not a driver error)."""
    if isinstance(e, sa_exc.DBAPIError) and e.orig is not None:
        e = e.orig
    return _BY_DRIVER.get(type(e).__module__.partition(".")[0]), e
