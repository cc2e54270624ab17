"""Issue 10, part B: statements that ran while their answer was lost with the
connection, through the TCP proxy of tests/reliability/netproxy.py (which
forwards to the test Postgres server and drops the answer on purpose).

- Item 3: a transaction's COMMIT lands on a separate application database but
  its answer is lost: the retry must not run the body again (exactly once).
- Item 17: the answer to the INSERT that starts a workflow is lost: the start
  must recognise its own row and run it, not wait for ever (Postgres only).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
import sqlalchemy as sa
import wf

from tests.helpers import (
    REPO,
    AppResult,
    app_command,
    child_env,
    count,
    counters,
    create_counter_table,
    finish,
    marker_lines,
    outcome,
)
from tests.reliability.netproxy import NetProxy

pytestmark = pytest.mark.timeout(180)


def _proxy_for(admin_url: str) -> NetProxy:
    parts = urlsplit(admin_url)
    return NetProxy(parts.hostname or "127.0.0.1", parts.port or 5432)


# -- item 3: a lost COMMIT answer on a separate application database -------------------------

COUNTER_TABLE = "wf_test_counters"  # tests/helpers.py's counter table
BUMP_SQL = (
    f"INSERT INTO {COUNTER_TABLE} (name, n) VALUES (:k, 1) "
    f"ON CONFLICT (name) DO UPDATE SET n = {COUNTER_TABLE}.n + 1"
)


@wf.transaction()
def bump(name: str) -> int:
    conn = wf.db()
    conn.execute(sa.text(BUMP_SQL), {"k": name})
    n = conn.execute(
        sa.text(f"SELECT n FROM {COUNTER_TABLE} WHERE name = :k"), {"k": name}
    ).scalar_one()
    return int(n)


@wf.transaction()
async def abump(name: str) -> int:
    conn = wf.db()
    conn.execute(sa.text(BUMP_SQL), {"k": name})
    n = conn.execute(
        sa.text(f"SELECT n FROM {COUNTER_TABLE} WHERE name = :k"), {"k": name}
    ).scalar_one()
    return int(n)


@wf.workflow()
def bumps_once(name: str) -> int:
    return bump(name)


@wf.workflow()
async def abumps_once(name: str) -> int:
    return await abump(name)


@pytest.fixture
def app_db(pg_admin_url: str) -> Iterator[tuple[str, NetProxy]]:
    """A fresh application database on the test server (its direct URL) and a
    proxy in front of that server. wf is shut down before both go away."""
    name = f"wf_t2_app_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(pg_admin_url)
    direct = parts._replace(path="/" + name).geturl()
    proxy = _proxy_for(pg_admin_url)
    try:
        yield direct, proxy
    finally:
        wf.shutdown()
        proxy.close()
        with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize(
    ("flavour", "configured_by"),
    [("sync", "argument"), ("sync", "environment"), ("async", "argument")],
)
def test_lost_commit_answer_on_the_application_database_commits_once(
    db_url: str,
    app_db: tuple[str, NetProxy],
    monkeypatch: pytest.MonkeyPatch,
    flavour: str,
    configured_by: str,
) -> None:
    """The system database is the backend under test; the application
    database is another Postgres database reached through the proxy. The
    transaction's COMMIT (its writes and its recorded output) lands, but the
    answer is lost. Today the retry runs the body again, the duplicate output
    row is swallowed and the second increment commits: counter 2."""
    direct, proxy = app_db
    create_counter_table(direct)
    app_url = proxy.url(urlsplit(direct).path.lstrip("/"))
    if configured_by == "argument":
        wf.launch(database_url=db_url, app_database_url=app_url)
    else:
        monkeypatch.setenv("WF_APP_DATABASE_URL", app_url)
        wf.launch(database_url=db_url)
    # the next COMMIT through the proxy is the transaction's (the launch's
    # migrations of the application database are done)
    proxy.drop_answer_to(b"COMMIT")
    wid = f"lost-commit-{flavour}-{configured_by}"
    fn: Any = bumps_once if flavour == "sync" else abumps_once
    handle = wf.start(fn, "c", workflow_id=wid)
    assert handle.result(timeout=60) == 1
    assert proxy.trap_sprung.is_set(), "the COMMIT's answer was never dropped"
    assert counters(direct) == {"c": 1}
    assert wf.get_workflow(wid).status == wf.Status.SUCCESS
    txs = [s for s in wf.list_steps(wid) if s.kind == "transaction"]
    assert [(s.output, s.error) for s in txs] == [(1, None)], txs


# -- item 17: a lost answer to the start INSERT -------------------------------------------

# the start's INSERT is a prepared statement: its text goes in the Parse
# message, and it runs on the message after, whose answer the proxy drops
START_INSERT = b"INSERT INTO wf.workflows"


def _wf_executable() -> list[str]:
    exe = Path(sys.executable).parent / "wf"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wf.cli.main"]


@pytest.fixture
def sys_proxy(pg_database: str, pg_admin_url: str) -> Iterator[tuple[str, NetProxy]]:
    """The test's system database, migrated here first (so the only
    ``INSERT INTO wf.workflows`` through the proxy is the start's), and a proxy."""
    wf.migrate(pg_database)
    proxy = _proxy_for(pg_admin_url)
    try:
        yield pg_database, proxy
    finally:
        proxy.close()


@pytest.mark.parametrize("how", ["cli", "api", "direct"])
def test_lost_answer_to_the_start_insert_does_not_hang(
    sys_proxy: tuple[str, NetProxy], tmp_path: Path, how: str
) -> None:
    """The INSERT that records a new workflow commits, its answer is lost; the
    retried INSERT finds the row. Today the starter takes it for someone
    else's workflow and waits for ever (``wf start`` has no sweep to rescue
    it). Must: finish within 30 s with the right result, the body run once.

    WF_RECOVERY_INTERVAL=60 puts the orphan sweep (after 4 intervals) far
    outside the test's window in the launched processes: the start itself
    must know its own row, not wait minutes for the backstop."""
    db, proxy = sys_proxy
    url = proxy.url(urlsplit(db).path.lstrip("/"))
    markers = tmp_path / "markers.txt"
    env = child_env(
        url if how != "cli" else None,
        {"WF_TEST_MARKERS": str(markers), "WF_RECOVERY_INTERVAL": "60"},
    )
    wid = f"lost-start-{how}"
    if how == "cli":
        cmd = [*_wf_executable(), "start", "tests.apps.t2_lost:t2_once", "21"]
        cmd += ["--id", wid, "--db", url, "--json"]
    elif how == "api":
        cmd = [sys.executable, "-m", "tests.apps.t2_lost", "api", wid, "21"]
    else:
        cmd = app_command("tests.apps.t2_lost", "start", wid, "t2_once", "[21]")
    proxy.drop_answer_after(START_INSERT)
    t0 = time.monotonic()
    proc = subprocess.Popen(
        cmd, env=env, cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    res: AppResult = finish(proc, timeout=40)
    elapsed = time.monotonic() - t0
    assert proxy.trap_sprung.is_set(), f"the INSERT's answer was never dropped\n{res.describe()}"
    assert res.returncode == 0, res.describe()
    if how == "cli":
        doc = json.loads(res.stdout)
        assert (doc["status"], doc["output"]) == ("SUCCESS", 42), res.describe()
    else:
        assert outcome(res) == 42
    assert elapsed < 30, f"took {elapsed:.1f}s\n{res.describe()}"
    assert count(marker_lines(markers), "t2_once body") == 1, marker_lines(markers)
    with psycopg.connect(db, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT status FROM wf.workflows WHERE workflow_id = %s", (wid,)
        ).fetchall()
    assert rows == [("SUCCESS",)], rows
