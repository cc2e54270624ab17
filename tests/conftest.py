"""Shared fixtures: a fresh system database per test on both backends, and a
clean wf runtime, environment and working directory per test. The helpers for
subprocesses (run, spawn, SIGKILL, marker files) are in tests/helpers.py."""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.helpers import WF_ENV_VARS

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


# -- databases -------------------------------------------------------------------


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The admin URL of the test Postgres (scripts/test.sh sets WF_TEST_PG_URL)."""
    return os.environ.get("WF_TEST_PG_URL") or DEFAULT_PG_URL


_pg_checked: dict[str, str | None] = {}


def _pg_problem(admin_url: str) -> str | None:
    """None when the admin URL accepts connections, else why not (cached)."""
    if admin_url not in _pg_checked:
        import psycopg

        try:
            psycopg.connect(admin_url, connect_timeout=5).close()
            _pg_checked[admin_url] = None
        except Exception as e:  # noqa: BLE001 - any failure means "no server"
            _pg_checked[admin_url] = f"{type(e).__name__}: {e}".strip()
    return _pg_checked[admin_url]


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _pg_admin_exec(admin_url: str, template: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    query = sql.SQL(template).format(sql.Identifier(dbname))
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
                conn.execute(query)
            return
        except psycopg.OperationalError as e:
            # a busy shared server (max_connections reached) frees slots soon
            if "too many clients" not in str(e) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class _PgDatabases:
    """Creates test databases one ahead and drops used ones in a background
    thread: CREATE/DROP DATABASE cost about half a second each (checkpoints),
    which the tests need not wait for."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="wf-test-pg")
        self.next: Future[str] | None = None
        self.drops: list[tuple[str, Future[None]]] = []

    def _create(self) -> str:
        name = f"wf_t_{uuid.uuid4().hex[:16]}"
        _pg_admin_exec(self.admin_url, "CREATE DATABASE {}", name)
        return name

    def take(self) -> str:
        fut, self.next = self.next, None
        name = fut.result() if fut is not None else self._create()
        self.next = self.pool.submit(self._create)
        return name

    def drop(self, name: str) -> None:
        sql = "DROP DATABASE IF EXISTS {} WITH (FORCE)"
        self.drops.append((name, self.pool.submit(_pg_admin_exec, self.admin_url, sql, name)))

    def close(self) -> None:
        if self.next is not None:
            with contextlib.suppress(Exception):
                self.drop(self.next.result())
        self.pool.shutdown(wait=True)
        for name, fut in self.drops:
            if fut.exception() is not None:
                print(
                    f"\nwarning: could not drop test database {name}: {fut.exception()}",
                    file=sys.stderr,
                )


@pytest.fixture(scope="session")
def _pg_databases(pg_admin_url: str) -> Iterator[_PgDatabases]:
    dbs = _PgDatabases(pg_admin_url)
    yield dbs
    dbs.close()


@pytest.fixture
def pg_database(request: pytest.FixtureRequest, pg_admin_url: str) -> Iterator[str]:
    """A fresh Postgres database (postgresql:// URL), dropped after the test."""
    problem = _pg_problem(pg_admin_url)
    if problem is not None:
        msg = f"no Postgres at {pg_admin_url} ({problem}); run the suite with scripts/test.sh"
        if os.environ.get("WF_TEST_PG_URL"):
            pytest.fail(msg)
        pytest.skip(msg)
    dbs: _PgDatabases = request.getfixturevalue("_pg_databases")
    name = dbs.take()
    try:
        yield _with_database(pg_admin_url, name)
    finally:
        _shutdown_wf()
        dbs.drop(name)


@pytest.fixture
def sqlite_database(tmp_path: Path) -> str:
    """A sqlite:/// URL of a fresh file (absolute path, so four slashes)."""
    path = tmp_path / "wf-system.sqlite"
    return "sqlite:///" + str(path)


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty system database on each backend."""
    if request.param == "sqlite":
        return str(request.getfixturevalue("sqlite_database"))
    return str(request.getfixturevalue("pg_database"))


@pytest.fixture
def backend(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgres"


# -- runtime and environment isolation ----------------------------------------------


def _shutdown_wf() -> None:
    wf = sys.modules.get("wf")
    if wf is not None and hasattr(wf, "shutdown"):
        wf.shutdown()
    # forget wf.configure(...) too, so the next test resolves its own URLs
    executor_module = sys.modules.get("wf._root")
    if executor_module is not None and hasattr(executor_module, "_configured"):
        vars(executor_module)["_configured"] = None
        vars(executor_module)["_create"] = True


@pytest.fixture(autouse=True)
def _isolate_wf(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No wf configuration leaks in from the environment or between tests;
    the runtime is shut down after each test. The CWD is a fresh directory so
    a default sqlite:///wf.sqlite never lands in the repo."""
    for var in WF_ENV_VARS:
        monkeypatch.delenv(var, raising=False)
    for var in list(os.environ):
        if var.startswith("WF_TEST_") and var != "WF_TEST_PG_URL":
            monkeypatch.delenv(var, raising=False)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    try:
        yield
    finally:
        _shutdown_wf()


@pytest.fixture
def observe(db_url: str) -> str:
    """Point wf's management calls (get_workflow, list_steps, ...) at ``db_url``
    without launching an executor in the test process (so the test process never
    competes with the app processes it watches)."""
    import wf

    wf.configure(database_url=db_url)
    return db_url


@pytest.fixture
def launched(db_url: str) -> Iterator[str]:
    """wf launched in this process on a fresh system database; yields its URL."""
    import wf

    wf.launch(database_url=db_url)
    yield db_url
    wf.shutdown()
