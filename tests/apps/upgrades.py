"""A workflow whose code changes between releases (wf.patched, app versions,
wf.replay). WF_TEST_CODE picks the release's code (module state CODE for
in-process tests):

- v1: a, b, c
- v2: a, then b2 where ``wf.patched("use-b2")`` (else the old b), c
- v3: a, ``wf.deprecated_patch("use-b2")``, b2, c
- v4: a, b2, c (the patch check deleted once no old run is left)
- bad: a, b2, c without any patch (an unguarded change)

Each step writes a marker line "<step> <workflow id>" (WF_TEST_MARKERS);
WF_TEST_KILL_AT=after_a (after_b) SIGKILLs the process after step a (b); WF_TEST_GATE=FILE
makes step a wait until FILE exists."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import wf

CODE = os.environ.get("WF_TEST_CODE", "v1")
# in-process tests: step c fails while this is set
FAIL_C: list[bool] = []


def mark(line: str) -> None:
    path = os.environ.get("WF_TEST_MARKERS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


@wf.step()
def a(x: int) -> int:
    gate = os.environ.get("WF_TEST_GATE")
    while gate and not Path(gate).exists():
        time.sleep(0.01)
    mark(f"a {wf.workflow_id()}")
    return x + 1


@wf.step()
def b(x: int) -> int:
    mark(f"b {wf.workflow_id()}")
    return x * 10


@wf.step()
def b2(x: int) -> int:
    mark(f"b2 {wf.workflow_id()}")
    return x * 100


@wf.step(retries=0)
def c(x: int) -> str:
    mark(f"c {wf.workflow_id()}")
    if FAIL_C:
        raise RuntimeError("c fails")
    return f"{CODE}:{x}"


def _kill_point(name: str) -> None:
    if os.environ.get("WF_TEST_KILL_AT") == name:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)


@wf.workflow()
def flow(x: int) -> str:
    y = a(x)
    _kill_point("after_a")
    if CODE == "v1":
        z = b(y)
    elif CODE == "v2":
        z = b2(y) if wf.patched("use-b2") else b(y)
    elif CODE == "v3":
        wf.deprecated_patch("use-b2")
        z = b2(y)
    else:  # v4, bad
        z = b2(y)
    _kill_point("after_b")
    return c(z)


@wf.step()
async def a_async(x: int) -> int:
    return x + 1


@wf.step()
async def b_async(x: int) -> int:
    mark(f"b_async {wf.workflow_id()}")
    return x * 10


@wf.step()
async def b2_async(x: int) -> int:
    mark(f"b2_async {wf.workflow_id()}")
    return x * 100


@wf.workflow()
async def flow_async(x: int) -> int:
    y = await a_async(x)
    await asyncio.sleep(0)
    if CODE == "v2" and wf.patched("use-b2"):
        return await b2_async(y)
    return await b_async(y)


def main(argv: list[str]) -> int:
    """``python -m tests.apps.upgrades enqueue ID...``: put each ID on queue
    "default" (a process that only enqueues: no queue of its own served)."""
    command, *ids = argv
    assert command == "enqueue", command
    wf.launch(queues=[], recovery=False)
    try:
        queue = wf.Queue("default")
        for i, wid in enumerate(ids):
            queue.enqueue(flow, i, workflow_id=wid)
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
