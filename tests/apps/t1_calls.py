"""Workflows for tests/integration/test_call_promises.py that run in subprocesses
(through tests/apps/driver.py): issue 10's gathered async steps, cancellation
before the next call, and children of a cancelled parent.

- Every body appends ``<name> start`` to the file named by WF_TEST_MARKERS, so
  the test counts how often each one ran (across processes).
- Files beside the marker file are the signals: a body touches ``in_step1``
  (or ``blocking``) when it reaches its wait, and waits for ``release``, which
  the test creates.
- ``WF_TEST_BLOCK=1`` makes ``gathered_block`` hang (until the test SIGKILLs
  the process); without it, as in the recovering process, it returns at once.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import wf

from tests.apps.comm_common import mark


def _signal_dir() -> Path:
    return Path(os.environ["WF_TEST_MARKERS"]).parent


def touch(name: str) -> None:
    (_signal_dir() / name).touch()


def wait_file(name: str, timeout: float = 60) -> None:
    path = _signal_dir() / name
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.01)


# -- 1: three gathered async steps, then a step the process is killed in ----------------


@wf.step(retries=0)
async def gathered_a(x: int) -> int:
    mark("gathered_a start")
    await asyncio.sleep(0.15)  # the slowest first: records must not follow completion order
    return x * 10


@wf.step(retries=0)
async def gathered_b(x: int) -> int:
    mark("gathered_b start")
    await asyncio.sleep(0.08)
    return x * 10


@wf.step(retries=0)
async def gathered_c(x: int) -> int:
    mark("gathered_c start")
    return x * 10


@wf.step(retries=0)
async def gathered_block() -> str:
    mark("gathered_block start")
    if os.environ.get("WF_TEST_BLOCK"):
        touch("blocking")
        await asyncio.sleep(120)  # SIGKILLed in here
    return "done"


@wf.workflow()
async def gather_then_block() -> dict[str, Any]:
    values = await asyncio.gather(gathered_a(1), gathered_b(2), gathered_c(3))
    last = await gathered_block()
    return {"values": list(values), "last": last}


# -- 2: cancelled from another process while step 1 runs ---------------------------------


@wf.step(retries=0)
def xp_step1() -> int:
    mark("xp_step1 start")
    touch("in_step1")
    wait_file("release")
    return 1


@wf.step(retries=0)
def xp_step2() -> int:
    mark("xp_step2 start")
    return 2


@wf.step(retries=0)
def xp_step3() -> int:
    mark("xp_step3 start")
    return 3


@wf.workflow()
def xp_cancelled() -> list[int]:
    return [xp_step1(), xp_step2(), xp_step3()]


# -- 16: a child called after its parent was cancelled from another process ----------------


@wf.workflow()
def xp_child() -> str:
    mark("xp_child start")
    return "child"


@wf.step(retries=0)
def xp_parent_step1() -> int:
    mark("xp_parent_step1 start")
    touch("in_step1")
    wait_file("release")
    return 1


@wf.workflow()
def xp_parent(where: str, how: str) -> str:
    """Waits for ``release`` in step 1 (``where="step"``) or in its own body
    (``"body"``: no recorded call between the cancel and the child), then
    calls a child directly (``how="direct"``) or with wf.start (``"start"``)."""
    if where == "step":
        xp_parent_step1()
    else:
        touch("in_step1")
        wait_file("release")
    if how == "direct":
        return xp_child()
    return str(wf.start(xp_child).result(timeout=60))
