"""Many one-step workflows left PENDING by a killed process, and the process
that recovers them: ``python -m tests.apps.herd start N`` starts N workflows
whose steps block, then SIGKILLs itself once every one is recorded;
``python -m tests.apps.herd recover N`` launches (which adopts them), waits
for every one and prints ``HERD <json>``: how many adopted runs were inside
their step at once at most, and the results."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import wf

_lock = threading.Lock()
_inside = 0
max_inside = 0
_hold = threading.Event()  # never set: the first process's steps block


def workflow_id(i: int) -> str:
    return f"herd-{i:05d}"


@wf.step()
def herd_step(i: int) -> int:
    global _inside, max_inside
    if os.environ.get("WF_TEST_HERD_HOLD"):
        _hold.wait()
    with _lock:
        _inside += 1
        max_inside = max(max_inside, _inside)
    try:
        time.sleep(0.002)  # long enough for concurrent runs to overlap here
        return i * 2
    finally:
        with _lock:
            _inside -= 1


@wf.workflow()
def herd(i: int) -> int:
    return herd_step(i)


def main(argv: list[str]) -> int:
    command, n = argv[0], int(argv[1])
    wf.launch()
    if command == "start":
        for i in range(n):
            wf.start(herd, i, workflow_id=workflow_id(i))
        os.kill(os.getpid(), signal.SIGKILL)
    results = [wf.retrieve(workflow_id(i)).result(timeout=120) for i in range(n)]
    print("HERD " + json.dumps({"max_inside": max_inside, "results": results}), flush=True)
    wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
