"""``wf.start(...).result()`` of a run in this process: a SUCCESS is taken
from the run itself (no read of the row it wrote), and every other end,
a cancel, a timeout and a resume still come from the database exactly as
for any other handle. Both backends."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from typing import Any

import pytest
import wf
from wf._sysdb import SystemDatabase

from tests.cli.conftest import wf_executable
from tests.helpers import child_env

GATE = threading.Event()
STATE: dict[str, Any] = {}


@wf.step()
def shaped(x: int) -> tuple[int, dict[int, str]]:
    return (x, {x: "v"})


@wf.workflow()
def returns_shapes(x: int) -> Any:
    shaped(x)
    return (x, {x: "v"}, [x])


@wf.workflow()
def fails(x: int) -> int:
    raise ValueError(f"bad {x}")


@wf.step()
def wait_at_gate() -> str:
    GATE.wait(30)
    return "through"


@wf.workflow()
def gated() -> str:
    return wait_at_gate()


@wf.workflow()
def fails_until_fixed() -> str:
    # the body, not a step: a step's error is recorded and replayed on resume
    if STATE.get("fail", True):
        raise RuntimeError("not yet")
    return "fixed"


@wf.workflow()
async def async_shapes(x: int) -> Any:
    return {"x": x, "t": (x, x)}


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The workflow IDs whose outcome was read from the system database."""
    seen: list[str] = []
    real = SystemDatabase.get_outcome

    def counted(self: SystemDatabase, workflow_id: str) -> Any:
        seen.append(workflow_id)
        return real(self, workflow_id)

    monkeypatch.setattr(SystemDatabase, "get_outcome", counted)
    return seen


@pytest.fixture(autouse=True)
def _reset() -> Any:
    GATE.clear()
    STATE.clear()
    yield
    GATE.set()


def test_success_is_the_recorded_value_without_a_read(launched: str, reads: list[str]) -> None:
    h = wf.start(returns_shapes, 7)
    got = h.result()
    assert reads == []
    # exactly what a handle reading the row returns (JSON: tuples become lists)
    again = wf.retrieve(h.workflow_id).result()
    assert got == again == (7, {7: "v"}, [7])
    assert wf.get_workflow(h.workflow_id).status == "SUCCESS"


def test_async_success_without_a_read(launched: str, reads: list[str]) -> None:
    async def main() -> Any:
        h = await wf.start_async(async_shapes, 3)
        return h.workflow_id, await h.result_async()

    wid, got = asyncio.run(main())
    assert reads == []
    assert got == {"x": 3, "t": (3, 3)} == wf.retrieve(wid).result()


def test_error_is_read_and_rebuilt_as_for_any_handle(launched: str, reads: list[str]) -> None:
    h = wf.start(fails, 2)
    with pytest.raises(ValueError, match="bad 2") as local:
        h.result()
    assert h.workflow_id in reads  # an error may be resumed since: read
    with pytest.raises(ValueError, match="bad 2") as other:
        wf.retrieve(h.workflow_id).result()
    assert type(local.value) is type(other.value) and str(local.value) == str(other.value)


def test_timeout_reports_the_recorded_status(launched: str) -> None:
    h = wf.start(gated)
    t = time.monotonic()
    with pytest.raises(wf.AwaitTimeoutError, match="still PENDING after 0.2s"):
        h.result(timeout=0.2)
    assert time.monotonic() - t < 2
    GATE.set()
    assert h.result(timeout=30) == "through"


def test_cancel_in_this_process_ends_the_wait_while_the_step_runs(launched: str) -> None:
    h = wf.start(gated)
    wf.cancel(h.workflow_id)
    t = time.monotonic()
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=10)
    assert time.monotonic() - t < 2.5  # the step is still waiting at the gate
    assert not GATE.is_set()
    GATE.set()  # (before wf.shutdown, which waits for the step)


def test_cancel_from_another_process_ends_the_wait(launched: str) -> None:
    h = wf.start(gated)
    res = subprocess.run(
        [*wf_executable(), "cancel", h.workflow_id],
        env=child_env(launched),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    t = time.monotonic()
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=10)
    assert time.monotonic() - t < 2.5
    assert not GATE.is_set()
    GATE.set()


def test_a_resumed_error_gives_the_new_outcome(launched: str) -> None:
    h = wf.start(fails_until_fixed)
    with pytest.raises(RuntimeError, match="not yet"):
        h.result()
    STATE["fail"] = False
    wf.resume(h.workflow_id).result()
    # the old handle's run ended in ERROR: its wait reads the row, now SUCCESS
    assert h.result() == "fixed"
