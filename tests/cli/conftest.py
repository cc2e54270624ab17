"""Fixtures for the CLI tests: run the real ``wf`` executable in a subprocess
against the fresh database of tests/conftest.py's ``db_url`` (SQLite and
Postgres), from a scratch working directory."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, child_env

APPS = "tests.cli.apps.basic"


def wf_executable() -> list[str]:
    """The installed console script next to this Python (the real ``wf``)."""
    exe = Path(sys.executable).parent / "wf"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("wf")
    if found:
        return [found]
    pytest.fail("the wf console script is not installed: pip install -e .")


@dataclass
class Result:
    args: Sequence[str]
    code: int
    out: str
    err: str

    def json(self) -> Any:
        try:
            return json.loads(self.out)
        except ValueError as e:
            raise AssertionError(
                f"stdout is not one JSON document ({e}):\n{self.describe()}"
            ) from None

    def describe(self) -> str:
        return f"$ wf {' '.join(self.args)}\nexit {self.code}\n--- stdout\n{self.out}\n--- stderr\n{self.err}"

    def ok(self) -> Result:
        assert self.code == 0, self.describe()
        return self

    def expect(self, code: int) -> Result:
        assert self.code == code, self.describe()
        return self

    def one_line_error(self, *needles: str) -> Result:
        """Bad input: one clear line on stderr, no traceback."""
        lines = [ln for ln in self.err.splitlines() if ln.strip()]
        assert len(lines) == 1, f"expected one line on stderr:\n{self.describe()}"
        assert "Traceback" not in self.err, self.describe()
        for n in needles:
            assert n in lines[0], f"{n!r} not in the error line:\n{self.describe()}"
        return self


class Wf:
    """Runs ``wf`` with WF_DATABASE_URL set to the test's database."""

    def __init__(self, db_url: str | None, cwd: Path) -> None:
        self.db_url = db_url
        self.cwd = cwd

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = child_env(self.db_url)
        for var in (
            "WF_JSON",
            "WF_DEBUG",
            "WF_WORKER_QUEUES",
            "WF_WORKER_CONCURRENCY",
            "WF_LOG_LEVEL",
        ):
            env.pop(var, None)
        env["COLUMNS"] = "80"
        env.update(extra or {})
        return env

    def __call__(
        self,
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 120,
        db: bool = True,
    ) -> Result:
        e = self.env(env)
        if not db:
            e.pop("WF_DATABASE_URL", None)
        proc = subprocess.run(
            [*wf_executable(), *args],
            env=e,
            cwd=str(self.cwd),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    def spawn(self, *args: str, env: Mapping[str, str] | None = None) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*wf_executable(), *args],
            env=self.env(env),
            cwd=str(self.cwd),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )

    @staticmethod
    def finish(
        proc: subprocess.Popen[str], args: Sequence[str] = (), timeout: float = 60
    ) -> Result:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"wf {' '.join(args)} did not finish in {timeout}s\n{out}\n{err}"
            ) from None
        return Result(args, proc.returncode, out, err)

    def start(self, *args: str) -> str:
        """``wf start --json ...`` that must succeed; returns the workflow ID."""
        res = self("start", "--json", *args).ok()
        return str(res.json()["workflow_id"])

    def status(self, workflow_id: str) -> dict[str, Any]:
        return dict(self("status", "--json", workflow_id).ok().json())

    def wait_status(
        self,
        workflow_id: str,
        *statuses: str,
        timeout: float = 30,
        proc: subprocess.Popen[str] | None = None,
    ) -> dict[str, Any]:
        """Poll ``wf status`` until the workflow is in one of ``statuses``; with
        ``proc`` (the process expected to get it there), fail at once if it
        ends, and show its output on failure."""
        deadline = time.monotonic() + timeout
        while True:
            res = self("status", "--json", workflow_id)
            if res.code == 0 and res.json()["status"] in statuses:
                return dict(res.json())
            ended = proc is not None and proc.poll() is not None
            if ended or time.monotonic() > deadline:
                why = "its process ended" if ended else f"not in {timeout}s"
                shown = ""
                if proc is not None:
                    if not ended:
                        proc.kill()
                    shown = "\n" + self.finish(proc, timeout=10).describe()
                raise AssertionError(
                    f"{workflow_id} never reached {statuses} ({why}):\n{res.describe()}{shown}"
                )
            time.sleep(0.2)


@pytest.fixture
def cwd() -> Path:
    """The scratch working directory tests/conftest.py chdir'ed into."""
    return Path(os.getcwd())


@pytest.fixture
def wf_cli(db_url: str, cwd: Path) -> Wf:
    return Wf(db_url, cwd)


@pytest.fixture
def sqlite_cli(sqlite_database: str, cwd: Path) -> Wf:
    return Wf(sqlite_database, cwd)


def wait_for_path(
    path: Path, proc: subprocess.Popen[str] | None = None, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc is not None and proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(
                f"process ended (exit {proc.returncode}) before {path} appeared\n{out}\n{err}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {path}")
        time.sleep(0.05)


def kill9(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)


def database_untouched(db_url: str) -> bool:
    """True when wf has written nothing at all to the database: no SQLite file,
    or no ``wf`` schema in the Postgres database."""
    if db_url.startswith("sqlite"):
        path = db_url.split(":///", 1)[1]
        return not Path(path).exists()
    import psycopg

    with psycopg.connect(db_url, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'wf'"
        ).fetchone()
    return row is not None and row[0] == 0


@pytest.fixture
def marker(tmp_path: Path) -> Iterator[Path]:
    """A path a crashable workflow blocks on (created to release it)."""
    path = tmp_path / "marker"
    yield path
    path.touch()  # release any workflow still blocked on it


WORKFLOW_KEYS = {
    "workflow_id",
    "status",
    "name",
    "inputs",
    "output",
    "error",
    "created_at",
    "updated_at",
    "executor_id",
    "queue",
    "recovery_attempts",
    # issue 13
    "parent_workflow_id",
    "app_version",
    "started_at",
    "deadline",
    "cancel_reason",
    "forked_from",
    "forked_from_step",
    "child_count",
    # issue 16
    "priority",
    "dedup_id",
    "partition_key",
    "delayed_until",
}
STEP_KEYS = {
    "position",
    "name",
    "kind",
    "output",
    "error",
    "started_at",
    "ended_at",
    "child_workflow_id",
    "attempts",
    "detail",
}
LOG_KEYS = {"workflow_id", "time", "level", "step", "message"}

__all__ = ["APPS", "REPO", "Result", "Wf"]
