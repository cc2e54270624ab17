"""What differs between Postgres and SQLite, in one class each: the schema
prefix, SQL fragments, how transactions begin, engine setup, creating a
missing database, advisory locks, the fast lane, LISTEN, and how the
driver's errors are classified. ``dialect_for(url)`` picks one, once, when a
Database is built; nothing else in wf branches on the dialect's name."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from .._config import url_hosts
from .driver import CursorLane, expand_lists, to_pyformat

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

# connections of a Database's single-statement pool (engine.Database.lane):
# bounded, so hundreds of workflow threads never open hundreds of server
# connections (Postgres allows 100 by default)
LANE_CONNECTIONS = 16

# SQLSTATE read_only_sql_transaction
READ_ONLY_STATE = "25006"
# set on an error that is the statement's own fault whatever its SQLSTATE
# says (a write in a transaction declared read only): never an outage
STATEMENT_FAULT = "_wf_statement_fault"

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
    # advisory locks serialize migrations and limited dequeues across processes
    advisory_locks: ClassVar[bool]
    # does a write transaction hold the whole database's write lock (SQLite)?
    locks_database: ClassVar[bool]
    # how many writers gain from running at once (more only queue): SQLite's
    # take turns at one lock; Postgres's as many as a Pool's connections
    useful_writers: ClassVar[int]
    # are concurrent threads' step records written by one statement
    # (group_commit.py)? Postgres: a commit is a WAL flush and a round trip
    # whatever it carries. SQLite's commits take turns at one lock and cost
    # no flush (synchronous=NORMAL): nothing to share.
    group_commits: ClassVar[bool]
    # binds a Python list as one array parameter (``= ANY(CAST(:ids AS TEXT[]))``)
    binds_arrays: ClassVar[bool]
    # does a read-only @wf.transaction run READ ONLY (so the call's record is
    # written after it, not in it)? SQLite ignores the option.
    read_only_transactions: ClassVar[bool]
    # LATERAL joins: a partitioned dequeue past the queue's head reads each
    # partition's first workflows by index (queue_candidates_partition_heads;
    # SQLite ranks them all, queue_candidates_partitioned)
    lateral_joins: ClassVar[bool]

    def begin(self, isolation: str | None, read_only: bool) -> str:
        raise NotImplementedError

    def make_engine(self, url: str, pool_size: int, pre_ping: bool, prepared: bool) -> Engine:
        """The SQLAlchemy engine user transactions run on."""
        raise NotImplementedError

    def connect(self, url: str, prepared: bool) -> Any:
        """A new autocommit driver connection (``prepared``: may use
        server-side prepared statements)."""
        raise NotImplementedError

    def lane_cursor(self, conn: Any, prepared: bool) -> Any:
        """What the lane runs one connection's statements on
        (``run(sql, params) -> Rows``, the SQL and parameters ``style``'s)."""
        return CursorLane(conn)

    def style(self, sql: str, params: Mapping[str, Any]) -> tuple[str, Any]:
        """wf's ``:name`` SQL and its parameters as the driver takes them."""
        for v in params.values():
            if isinstance(v, list | tuple):
                return expand_lists(sql, params)
        return sql, params

    # extra arguments of the driver's execute() for DDL and other
    # statements that must not be prepared
    ddl_kwargs: ClassVar[dict[str, Any]] = {}

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
    group_commits = True
    binds_arrays = True
    useful_writers = LANE_CONNECTIONS
    ddl_kwargs: ClassVar[dict[str, Any]] = {"prepare": False}
    advisory_locks = True
    locks_database = False
    read_only_transactions = True
    lateral_joins = True

    # connection exceptions; shutting down, cannot connect now; too many
    # clients; read-only (a standby, a demoted primary: wf waits for a
    # writable node, see is_connection_error)
    _CONNECTION_STATES = frozenset(("57P01", "57P02", "57P03", "53300", READ_ONLY_STATE))
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

    def make_engine(self, url: str, pool_size: int, pre_ping: bool, prepared: bool) -> Engine:
        import sqlalchemy as sa

        args: dict[str, Any] = {"connect_timeout": 10, "application_name": "wf"}
        if not prepared:  # psycopg's default prepares a statement at its 5th use
            args["prepare_threshold"] = None
        engine = sa.create_engine(
            sqlalchemy_url(url),
            isolation_level="AUTOCOMMIT",
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=pre_ping,
            connect_args=args,
        )
        sa.event.listen(engine, "handle_error", _drop_read_only_connection)
        return engine

    @staticmethod
    def conninfo(url: str) -> str:
        """The URL as libpq takes it (no SQLAlchemy driver suffix; several
        hosts and every libpq parameter pass through)."""
        return "postgresql://" + url.partition("://")[2]

    def connect(self, url: str, prepared: bool) -> Any:
        import psycopg

        return psycopg.connect(
            self.conninfo(url),
            autocommit=True,
            # 0: prepare every statement at its first use (the hot path's
            # statements repeat); None: never (a transaction-pooling PgBouncer
            # hands each transaction any server connection)
            prepare_threshold=0 if prepared else None,
            connect_timeout=10,
            application_name="wf",
        )

    def lane_cursor(self, conn: Any, prepared: bool) -> Any:
        from .pg_lane import PgLaneCursor

        return PgLaneCursor(conn, prepared)

    def style(self, sql: str, params: Mapping[str, Any]) -> tuple[str, Any]:
        for v in params.values():
            if isinstance(v, list | tuple):
                sql, expanded = expand_lists(sql, params)
                return to_pyformat(sql), expanded
        text = _PYFORMAT.get(sql)
        if text is None:
            text = _PYFORMAT[sql] = to_pyformat(sql)
        return text, params

    def migration_preamble(self) -> list[str]:
        # serialize concurrent launches; the lock ends with the transaction
        return ["SELECT pg_advisory_xact_lock(7262001)", "CREATE SCHEMA IF NOT EXISTS wf"]

    def is_missing_database(self, e: BaseException) -> bool:
        # not a missing role ('role "x" does not exist'): that database exists
        return _MISSING_DATABASE.search(str(e)) is not None

    def create_database(self, url: str) -> None:
        import psycopg

        with psycopg.connect(
            self.conninfo(url), dbname="postgres", autocommit=True, connect_timeout=10
        ) as admin:
            name = _database_name(url)
            quoted = '"' + name.replace('"', '""') + '"'
            try:
                admin.execute(f"CREATE DATABASE {quoted}")
            except (psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation):
                pass  # a concurrent first launch created it (SQLSTATE 42P04 or 23505)

    def is_connection_error(self, e: BaseException) -> bool:
        """Is the server unreachable, or not one wf can write on? A node
        that answers read-only (SQLSTATE 25006: a hot standby, a demoted
        primary, ``default_transaction_read_only``) is an outage to wait
        out, not a statement's fault: wf's own writes and a read-write
        transaction's fail there only because of the node. (A write inside a
        transaction declared read only is the body's fault: engine.Database
        marks those, see ``STATEMENT_FAULT``.)"""
        if getattr(e, STATEMENT_FAULT, False):
            return False
        state = getattr(e, "sqlstate", None)
        if state is None:  # raised by the client: no connection, it broke, or timed out
            return any(
                c.__name__ in ("OperationalError", "InterfaceError") for c in type(e).__mro__
            )
        if state == "0A000":  # feature not supported: a SERIALIZABLE BEGIN on a standby
            return _ON_STANDBY.search(str(e)) is not None
        return state.startswith("08") or state in self._CONNECTION_STATES

    def is_serialization_failure(self, e: BaseException) -> bool:
        return getattr(e, "sqlstate", None) in self._SERIALIZATION_STATES

    def is_lock_timeout(self, e: BaseException) -> bool:
        return getattr(e, "sqlstate", None) == self._LOCK_NOT_AVAILABLE


_MISSING_DATABASE = re.compile(r'database "[^"]*" does not exist')
_ON_STANDBY = re.compile(r"hot standby|during recovery")


def _drop_read_only_connection(ctx: Any) -> None:
    """A connection to a node that answers read-only goes, not back to the
    pool: the next connect lets libpq pick a writable host again."""
    if getattr(ctx.original_exception, "sqlstate", None) == READ_ONLY_STATE:
        ctx.is_disconnect = True


def sqlalchemy_url(url: str) -> str:
    """The URL as SQLAlchemy's parser takes it. A multi-host URL
    (``postgresql+psycopg://u@h1:1,h2:2/db?...``, libpq's form) becomes
    SQLAlchemy's documented ``postgresql+psycopg://u@/db?host=h1,h2&port=1,2&...``
    (its parser reads one host and port only); psycopg gets the same hosts
    and ports back as libpq's comma lists."""
    hosts = url_hosts(url)
    if len(hosts) < 2:
        return url
    scheme, _, after = url.partition("://")
    authority, slash, tail = after.partition("/")
    if not slash:  # no database: ``u@h1,h2?query``
        authority, _, query = authority.partition("?")
        tail = "?" + query if query else ""
    userinfo = authority.rpartition("@")[0]
    names, ports = [], []
    for h in hosts:
        parts = urlsplit("//" + h)
        names.append(parts.hostname or "")  # IPv6 without its brackets, as libpq takes it
        ports.append(str(parts.port) if parts.port else "")
    path, _, query = tail.partition("?")
    given = {"host": ",".join(names)}
    if any(ports):
        given["port"] = ",".join(ports)
    extra = urlencode(given, safe=":,")
    return f"{scheme}://{userinfo + '@' if userinfo else ''}/{path}?{extra}" + (
        "&" + query if query else ""
    )


# wf's SQL in psycopg's style, per statement text (statements are few and fixed)
_PYFORMAT: dict[str, str] = {}


def _database_name(url: str) -> str:
    """The database a Postgres URL names (libpq's default: the user's name)."""
    import psycopg

    params = psycopg.conninfo.conninfo_to_dict(PostgresDialect.conninfo(url))
    return str(params.get("dbname") or params.get("user") or "wf")


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
    group_commits = False
    binds_arrays = False
    useful_writers = 4
    advisory_locks = False
    locks_database = True
    read_only_transactions = False
    lateral_joins = False

    def begin(self, isolation: str | None, read_only: bool) -> str:
        # IMMEDIATE takes the write lock at once: a transaction that would
        # write later cannot deadlock with another one upgrading too
        return "BEGIN" if read_only else "BEGIN IMMEDIATE"

    def make_engine(self, url: str, pool_size: int, pre_ping: bool, prepared: bool) -> Engine:
        import sqlalchemy as sa

        engine = sa.create_engine(
            url,
            isolation_level="AUTOCOMMIT",
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        return engine

    def connect(self, url: str, prepared: bool) -> Any:
        import sqlite3

        target, uri, timeout = _sqlite_target(url)
        conn = sqlite3.connect(
            target, timeout=timeout, uri=uri, isolation_level=None, check_same_thread=False
        )
        _sqlite_on_connect(conn, None)
        return conn

    def database_exists(self, url: str) -> bool:
        path, _uri, _timeout = _sqlite_target(url)
        if path.startswith("file:"):  # a URI filename (?mode=ro)
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


# the driver's own connect() arguments a SQLite URL may carry (config.py
# admits no others); SQLite's URI parameters stay in the filename
_PYSQLITE_ARGS = frozenset(
    ("timeout", "uri", "isolation_level", "detect_types", "check_same_thread", "cached_statements")
)


def _sqlite_target(url: str) -> tuple[str, bool, float]:
    """``sqlite:///path?query`` → (what sqlite3.connect opens, is it a URI
    filename, busy timeout in seconds)."""
    path, _, query = url.partition("://")[2][1:].partition("?")
    params = dict(parse_qsl(query, keep_blank_values=True))
    uri = params.get("uri", "").lower() in ("true", "1")
    timeout = float(params.get("timeout") or 30)
    if uri:
        rest = "&".join(f"{k}={v}" for k, v in params.items() if k.lower() not in _PYSQLITE_ARGS)
        path = path + ("?" + rest if rest else "")
    return path, uri, timeout


POSTGRES = PostgresDialect()
SQLITE = SqliteDialect()

# the dialect whose driver raised an error, by the driver's top-level module
_BY_DRIVER: dict[str, Dialect] = {"psycopg": POSTGRES, "sqlite3": SQLITE}


def dialect_for(url: str) -> Dialect:
    return POSTGRES if url.startswith("postgresql") else SQLITE


def driver_error(e: BaseException) -> tuple[Dialect | None, BaseException]:
    """The driver's own exception inside ``e`` and the dialect whose driver
    raised it (None: not a driver error)."""
    orig = getattr(e, "orig", None)  # SQLAlchemy's wrapper (a user transaction's error)
    if orig is not None and "sqlalchemy" in sys.modules:
        from sqlalchemy import exc as sa_exc

        if isinstance(e, sa_exc.DBAPIError):
            e = orig
    return _BY_DRIVER.get(type(e).__module__.partition(".")[0]), e
