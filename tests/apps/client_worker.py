"""Helpers of the wf.Client tests (integration and CLI): the workflow code
(tests/apps/client_jobs.py) copied into a directory of its own as module
``clientjobs``, and a real ``wf worker clientjobs`` subprocess running there.
Only that directory has the module, so neither the test process nor the
client subprocesses can import it."""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import REPO, child_env

MODULE = "clientjobs"


@dataclass
class WorkerCode:
    """Where the worker's code and its step-run counters live."""

    code_dir: Path
    count_dir: Path

    def runs(self, tag: str) -> int:
        """How many times ``count_step(tag)`` ran, in every process."""
        path = self.count_dir / f"{tag}.count"
        return len(path.read_text().splitlines()) if path.exists() else 0


def worker_code(tmp: Path) -> WorkerCode:
    code = tmp / "worker-code"
    counts = tmp / "counts"
    code.mkdir()
    counts.mkdir()
    shutil.copy(REPO / "tests" / "apps" / "client_jobs.py", code / f"{MODULE}.py")
    return WorkerCode(code, counts)


def wf_command() -> list[str]:
    exe = Path(sys.executable).parent / "wf"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "wf.cli.main"]


def registered(db_url: str, name: str) -> bool:
    """Has a live executor recorded that it registered ``name``?"""
    import wf

    wf.configure(database_url=db_url)
    return any(e.alive and name in (e.workflows or []) for e in wf.list_executors())


@contextlib.contextmanager
def running_worker(
    code: WorkerCode, db_url: str, *args: str, timeout: float = 60
) -> Iterator[subprocess.Popen[str]]:
    """``wf worker clientjobs ARGS`` in the code's directory (so it imports
    the module from there), up once it has recorded what it registered;
    stopped with SIGTERM at the end (its output shown if it failed)."""
    proc = subprocess.Popen(
        [*wf_command(), "worker", MODULE, *args],
        cwd=str(code.code_dir),
        env=child_env(db_url, {"CLIENT_COUNT_DIR": str(code.count_dir), "WF_SHUTDOWN_GRACE": "2"}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not registered(db_url, f"{MODULE}:add"):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                out, err = proc.communicate(timeout=30)
                raise AssertionError(
                    f"the worker never came up (exit {proc.returncode})\n{out}\n{err}"
                )
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=30)
