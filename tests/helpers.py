"""Helpers for the tests: run apps in real subprocesses (that may be killed
with SIGKILL), wait for marker files, read counters."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent

# Environment variables that change what wf does; cleared around every test.
WF_ENV_VARS = (
    "WF_DATABASE_URL",
    "WF_APP_DATABASE_URL",
    "WF_EXECUTOR_ID",
    "WF_POOLER",
    "WF_LISTEN_URL",
    "WF_RETENTION",
    "WF_GC_INTERVAL",
)


def sqlalchemy_url(url: str) -> str:
    """A URL SQLAlchemy opens with the psycopg 3 driver."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def child_env(db_url: str | None = None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of an app subprocess: ours, minus wf settings, plus the
    repo on PYTHONPATH (so ``tests.apps.*`` imports) and WF_DATABASE_URL."""
    env = {
        k: v for k, v in os.environ.items() if k not in WF_ENV_VARS and not k.startswith("WF_TEST_")
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    if db_url is not None:
        env["WF_DATABASE_URL"] = db_url
    env.update(extra or {})
    return env


@dataclass
class AppResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def killed(self) -> bool:
        return self.returncode == -signal.SIGKILL

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


def app_command(module: str, *args: str) -> list[str]:
    """Run ``tests/apps/driver.py``'s way: python -m tests.apps.driver MODULE ARGS."""
    return [sys.executable, "-m", "tests.apps.driver", module, *args]


def run_app(
    module: str,
    *args: str,
    db_url: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 60,
) -> AppResult:
    """Run an app to its end (or its self-inflicted SIGKILL) in a subprocess."""
    proc = subprocess.run(
        app_command(module, *args),
        env=child_env(db_url, env),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return AppResult(proc.returncode, proc.stdout, proc.stderr)


def spawn_app(
    module: str,
    *args: str,
    db_url: str,
    env: Mapping[str, str] | None = None,
) -> subprocess.Popen[str]:
    """Start an app in the background; pair with wait_for_file and kill_hard."""
    return subprocess.Popen(
        app_command(module, *args),
        env=child_env(db_url, env),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> AppResult:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return AppResult(proc.returncode, out, err)


def kill_hard(proc: subprocess.Popen[str]) -> AppResult:
    """SIGKILL the process (no cleanup of any kind runs) and reap it."""
    os.kill(proc.pid, signal.SIGKILL)
    return finish(proc, timeout=30)


def wait_for(
    predicate: Callable[[], object], timeout: float = 30, interval: float = 0.02, what: str = ""
) -> None:
    """Poll ``predicate()`` until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


def wait_for_file(
    path: Path, timeout: float = 30, proc: subprocess.Popen[str] | None = None
) -> None:
    """Wait until ``path`` exists (a marker a child writes at the kill point)."""

    def ready() -> bool:
        if path.exists():
            return True
        if proc is not None and proc.poll() is not None:
            res = finish(proc)
            raise AssertionError(f"child ended before writing {path}: {res.describe()}")
        return False

    wait_for(ready, timeout=timeout, what=str(path))


def marker_lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- app outcomes ---------------------------------------------------------------------


def outcome(res: AppResult) -> Any:
    """The value a driver process printed (``RESULT <wf-json>``); fails the test
    with the process's output when it printed an error or nothing."""
    from wf._serialization import loads

    for line in reversed(res.stdout.splitlines()):
        if line.startswith("RESULT "):
            return loads(line[len("RESULT ") :])
        if line.startswith("ERROR "):
            raise AssertionError(f"the workflow failed: {line}\n{res.describe()}")
    raise AssertionError(f"no outcome printed\n{res.describe()}")


def error_line(res: AppResult) -> str:
    """The ``ERROR <type>: <message>`` line a driver process printed."""
    for line in reversed(res.stdout.splitlines()):
        if line.startswith("ERROR "):
            return line[len("ERROR ") :]
    raise AssertionError(f"no error printed\n{res.describe()}")


# -- the application's counter table ----------------------------------------------------


def _engine(db_url: str) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine(sqlalchemy_url(db_url), poolclass=NullPool)


def create_counter_table(db_url: str) -> None:
    import sqlalchemy as sa

    eng = _engine(db_url)
    try:
        with eng.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE IF NOT EXISTS wf_test_counters (name VARCHAR(100) PRIMARY KEY, n INTEGER NOT NULL)"
                )
            )
    finally:
        eng.dispose()


def counters(db_url: str) -> dict[str, int]:
    import sqlalchemy as sa

    eng = _engine(db_url)
    try:
        with eng.connect() as conn:
            rows = conn.execute(sa.text("SELECT name, n FROM wf_test_counters")).all()
    finally:
        eng.dispose()
    return {str(name): int(n) for name, n in rows}


def raw_rows(db_url: str, table: str) -> list[dict[str, Any]]:
    """Every row of a wf system table, as stored (schema ``wf`` on Postgres)."""
    import sqlalchemy as sa

    qualified = table if db_url.startswith("sqlite") else f"wf.{table}"
    eng = _engine(db_url)
    try:
        with eng.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.text(f"SELECT * FROM {qualified}"))]
    finally:
        eng.dispose()


def count(lines: list[str], line: str) -> int:
    return sum(1 for x in lines if x == line)


def skip_unless_ci(why: str) -> None:
    """A test whose tool is missing skips with one line on a developer's
    machine, but fails in CI: ``.ci/run`` installs every tool, so a skip
    there would hide that a guarantee went untested."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"{why} (CI installs it: a skip here would leave it untested)", pytrace=False)
    pytest.skip(why)
