"""Workflows for the stream tests (tests/integration/test_streams.py and
tests/cli/test_stream_cli.py), run in subprocesses by tests/apps/driver.py or
in the test process.

- ``WF_TEST_KILL_AT=after_write3`` SIGKILLs the writer right after its 4th
  write committed, ``before_write3`` right before it (after the step that
  made the value); tests/apps/crashy.py's kill points and marker file.
- ``WF_TEST_GATE=PATH``: ``gated`` writes its first values, then waits for
  PATH to exist before the rest (the test reads what is there meanwhile)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import wf

from tests.apps.crashy import kill_point, mark


@wf.step()
def work(i: int) -> dict[str, Any]:
    """A piece of the long job: its result is what the stream carries."""
    mark(f"work {i}")
    return {"i": i, "square": i * i}


@wf.workflow()
def producer(n: int, pause: float = 0.0) -> int:
    """Streams ``n`` results of steps to "out", then closes it."""
    for i in range(n):
        value = work(i)
        kill_point(f"before_write{i}")  # the step is recorded, the write is not
        wf.write_stream("out", value)
        kill_point(f"after_write{i}")
        if pause:
            time.sleep(pause)
    wf.close_stream("out")
    return n


@wf.workflow()
def unclosed(n: int) -> int:
    """Writes and ends without closing: readers stop at the workflow's end."""
    for i in range(n):
        wf.write_stream("out", i)
    return n


@wf.workflow()
def two_streams(n: int) -> str:
    """Interleaves two streams; writes after a close fail (recorded)."""
    for i in range(n):
        wf.write_stream("a", i)
        wf.write_stream("b", -i)
    wf.close_stream("a")
    wf.close_stream("a")  # closing twice does nothing
    try:
        wf.write_stream("a", "late")
    except wf.WfError as e:
        return f"refused: {e}"
    return "written"


@wf.workflow()
def gated(first: int, rest: int) -> int:
    """``first`` values, then (once WF_TEST_GATE exists) ``rest`` more, then the close."""
    for i in range(first):
        wf.write_stream("out", i)
    gate = Path(os.environ["WF_TEST_GATE"])
    wait_gate(str(gate))
    for i in range(first, first + rest):
        wf.write_stream("out", i)
    wf.close_stream("out")
    return first + rest


@wf.step()
def wait_gate(path: str) -> None:
    deadline = time.monotonic() + 60
    while not Path(path).exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {path}")
        time.sleep(0.02)


@wf.workflow()
def bad_value() -> str:
    """A value that cannot be stored is refused before anything is written."""
    try:
        wf.write_stream("out", object())
    except wf.SerializationError:
        pass
    wf.write_stream("out", "ok")
    wf.close_stream("out")
    return "done"


@wf.workflow()
def reads_in_body(workflow_id: str) -> str:
    try:
        wf.read_stream(workflow_id, "out")
    except wf.WfError as e:
        return f"refused: {e}"
    return "read"


@wf.workflow()
async def async_producer(n: int) -> int:
    """Writes started together (gather) still land in call order."""
    await asyncio.gather(*(wf.write_stream_async("out", i) for i in range(n)))
    await wf.write_stream_async("out", "last")
    await wf.close_stream_async("out")
    return n
