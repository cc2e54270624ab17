"""Workflows and entry points for tests/integration/test_lifecycle_promises.py
that run in subprocesses.

Workflows (run through tests/apps/driver.py):

- ``t2_other(x)``: a trivial workflow that the others restart.
- ``t2_restarter(other_id)``: ``wf.restart(other_id)``, marks ``restarted <new ID>``,
  then a step that blocks (touching ``blocked`` beside the marker file) when
  WF_TEST_BLOCK=1, so the test can SIGKILL it there; returns the new ID.

Entry points (``python -m tests.apps.t2_lifecycle COMMAND ...``), each printing
``RESULT <wf-json>`` like the driver:

- ``many N``: launch from WF_DATABASE_URL and run N trivial workflows by direct call.
- ``launch-race URL BARRIER_DIR``: write ``BARRIER_DIR/ready-<pid>``, wait for
  ``BARRIER_DIR/go``, then ``wf.launch(database_url=URL)`` (all processes at
  the same moment) and run one workflow.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import wf
from wf._serialization import dumps

from tests.apps.comm_common import mark


def touch(name: str) -> None:
    """Create ``name`` beside the marker file (a signal to the test)."""
    path = os.environ.get("WF_TEST_MARKERS")
    if path:
        Path(path).with_name(name).touch()


@wf.workflow()
def t2_other(x: int) -> int:
    return x + 1


@wf.step()
def t2_block() -> str:
    if os.environ.get("WF_TEST_BLOCK") == "1":
        touch("blocked")
        time.sleep(120)  # the test kills the process here
    return "unblocked"


@wf.workflow()
def t2_restarter(other_id: str) -> str:
    handle = wf.restart(other_id)
    mark(f"restarted {handle.workflow_id}")
    t2_block()
    return handle.workflow_id


@wf.workflow()
def t2_trivial(i: int) -> int:
    return i


def _many(n: int) -> int:
    wf.launch()
    try:
        for i in range(n):
            t2_trivial(i)
    finally:
        wf.shutdown()
    return n


def _launch_race(url: str, barrier: str) -> int:
    # load the database drivers before the barrier, so the launches race
    import psycopg  # noqa: F401
    import sqlalchemy  # noqa: F401
    from wf import _root  # noqa: F401

    Path(barrier, f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not Path(barrier, "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier: no go signal")
        time.sleep(0.002)
    wf.launch(database_url=url)
    try:
        with wf.set_workflow_id(f"race-{os.getpid()}"):
            return int(t2_trivial(os.getpid()))
    finally:
        wf.shutdown()


def main(argv: list[str]) -> int:
    command, *rest = argv
    if command == "many":
        result = _many(int(rest[0]))
    elif command == "launch-race":
        result = _launch_race(rest[0], rest[1])
    else:
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    print(f"RESULT {dumps(result)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
