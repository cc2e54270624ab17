"""A queue/schedule worker process for the comm_* tests:

    python -m tests.apps.comm_worker MODULE READY_FILE

imports MODULE (its workflows, queues and schedules), launches wf as a worker
(WF_DATABASE_URL; every queue), touches READY_FILE and serves until SIGTERM or
SIGINT, then shuts down cleanly (running workflows are left to recovery)."""

from __future__ import annotations

import importlib
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import wf


def main(argv: list[str]) -> int:
    module, ready = argv
    importlib.import_module(module)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    wf.launch(worker=True)
    Path(ready).touch()
    while not stop.wait(0.1):
        pass
    wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))


# -- used by the tests: start and stop worker processes ------------------------------------


def spawn_workers(
    module: str, db_url: str, directory: Path, n: int = 1, env: dict[str, str] | None = None
) -> list[Any]:
    """Start ``n`` worker processes for ``module`` and wait until each has
    launched (its ready file exists). Returns their Popen objects."""
    import subprocess

    from tests.helpers import REPO, child_env, wait_for_file

    procs: list[Any] = []
    readies: list[Path] = []
    for _ in range(n):
        ready = (
            directory / f"worker-ready-{len(list(directory.glob('worker-ready-*'))) + len(readies)}"
        )
        readies.append(ready)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "tests.apps.comm_worker", module, str(ready)],
                env=child_env(db_url, env),
                cwd=str(REPO),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc, ready in zip(procs, readies, strict=True):
        wait_for_file(ready, timeout=60, proc=proc)
    return procs


def stop_workers(procs: list[Any]) -> list[Any]:
    """SIGTERM every worker still running and reap them all; returns their results."""
    from tests.helpers import finish

    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    return [finish(p, timeout=30) for p in procs]
