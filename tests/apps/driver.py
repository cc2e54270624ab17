"""Runs a test app in its own process: ``python -m tests.apps.driver MODULE COMMAND ...``.

Commands (each launches wf from WF_DATABASE_URL first, which also recovers the
workflows of dead executors):

- ``start ID FUNCTION [JSON_ARGS]``: run ``MODULE.FUNCTION(*args)`` under
  workflow ID ``ID`` and wait for it.
- ``recover ID...``: just launch, then wait for each ID's outcome.
- ``resume ID``: ``wf.resume(ID)`` and wait.
- ``wait ID...``: launch, touch the file named by WF_TEST_READY (if set), wait
  until each ID is recorded (by another process) and then for its outcome:
  a live executor that adopts a dead one's workflow by periodic recovery.

Each outcome is printed as one line ``RESULT <wf-json>`` or ``ERROR <type>: <message>``
(exit 0 either way; a crash shows as the process's own exit status).

``WF_TEST_BARRIER=DIR`` makes ``start`` write ``DIR/ready-<pid>`` after launch and
wait for ``DIR/go`` before starting the workflow, so several processes start
it at the same moment.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import wf
from wf._serialization import dumps


def _print_outcome(fn: Any) -> None:
    try:
        result = fn()
    except BaseException as e:  # noqa: BLE001 - report every outcome
        print(f"ERROR {type(e).__name__}: {e}", flush=True)
    else:
        print(f"RESULT {dumps(result)}", flush=True)


def _barrier() -> None:
    d = os.environ.get("WF_TEST_BARRIER")
    if not d:
        return
    Path(d, f"ready-{os.getpid()}").touch()
    deadline = time.monotonic() + 60
    while not Path(d, "go").exists():
        if time.monotonic() > deadline:
            raise SystemExit("barrier: no go signal")
        time.sleep(0.002)


def _wait_recorded(wid: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            wf.get_workflow(wid)
            return
        except wf.WorkflowNotFoundError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def main(argv: list[str]) -> int:
    module_name, command, *rest = argv
    module = importlib.import_module(module_name)
    wf.launch()
    try:
        if command == "start":
            wid, func, *args_json = rest
            args = json.loads(args_json[0]) if args_json else []
            fn = getattr(module, func)
            _barrier()

            def run() -> Any:
                with wf.set_workflow_id(wid):
                    result = fn(*args)
                    if inspect.iscoroutine(result):  # an async def workflow
                        result = asyncio.run(result)
                    return result

            _print_outcome(run)
        elif command == "recover":
            for wid in rest:
                _print_outcome(lambda wid=wid: wf.retrieve(wid).result(timeout=60))
        elif command == "wait":
            ready = os.environ.get("WF_TEST_READY")
            if ready:
                Path(ready).touch()
            for wid in rest:
                _wait_recorded(wid)
                _print_outcome(lambda wid=wid: wf.retrieve(wid).result(timeout=60))
        elif command == "resume":
            (wid,) = rest
            _print_outcome(lambda: wf.resume(wid).result(timeout=60))
        else:
            print(f"unknown command {command!r}", file=sys.stderr)
            return 2
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
