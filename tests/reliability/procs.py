"""Subprocesses for the reliability tests: app processes and workers whose
output goes to a log file each, all killed when the test ends."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO, child_env, wait_for_file


class Procs:
    """Subprocesses of one test, all killed at its end."""

    def __init__(self, db_url: str, tmp: Path, env: dict[str, str]) -> None:
        self.db_url = db_url
        self.tmp = tmp
        self.env = env
        self.procs: list[subprocess.Popen[str]] = []
        self.log_of: dict[int, Path] = {}

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        path = self.tmp / f"proc-{len(self.procs)}.log"
        with open(path, "w") as log:
            p = subprocess.Popen(
                [sys.executable, "-m", *args],
                env=child_env(self.db_url, {**self.env, **(env or {})}),
                cwd=str(REPO),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.procs.append(p)
        self.log_of[p.pid] = path
        return p

    def output(self, p: subprocess.Popen[str]) -> str:
        return self.log_of[p.pid].read_text(errors="replace")

    def worker(
        self, module: str, executor_id: str, env: dict[str, str] | None = None
    ) -> subprocess.Popen[str]:
        """A queue/recovery worker (tests/apps/comm_worker.py) for ``module``,
        once it has launched."""
        ready = self.tmp / f"ready-{executor_id}"
        p = self.spawn(
            "tests.apps.comm_worker",
            module,
            str(ready),
            env={"WF_EXECUTOR_ID": executor_id, **(env or {})},
        )
        wait_for_file(ready, timeout=60, proc=p)
        return p

    def logs(self) -> str:
        return "\n".join(
            f"--- {f.name}\n{f.read_text(errors='replace')[-3000:]}"
            for f in sorted(self.tmp.glob("proc-*.log"))
        )

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGCONT)
                p.kill()
            p.wait(timeout=30)
