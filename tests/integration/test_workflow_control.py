"""SPEC §3: child workflow IDs, cancel (cascading), restart(from_step=...),
durable sleep (only the remainder after a crash), workflow timeouts, and
durable logs once each after a replay."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.helpers import (
    kill_hard,
    marker_lines,
    outcome,
    run_app,
    spawn_app,
    wait_for,
    wait_for_file,
)

APP = "tests.apps.crashy"

CALLS: dict[str, int] = {}


def _called(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


# -- child workflows ------------------------------------------------------------------


@wf.step()
def leaf_step(x: int) -> int:
    _called("leaf_step")
    return x * 2


@wf.workflow()
def child(x: int) -> int:
    return leaf_step(x)


@wf.workflow()
def parent(n: int) -> dict[str, Any]:
    a = leaf_step(n)
    b = child(n + 1)
    h = wf.start(child, n + 2)
    return {"a": a, "b": b, "started": h.workflow_id, "c": h.result(), "me": wf.workflow_id()}


def test_child_workflows_get_deterministic_ids(launched: str) -> None:
    out = wf.start(parent, 1, workflow_id="fam").result(timeout=30)
    assert out == {"a": 2, "b": 4, "started": "fam-3", "c": 6, "me": "fam"}
    steps = wf.list_steps("fam")
    kinds = [(s.position, s.kind) for s in steps]
    assert kinds[:3] == [(1, "step"), (2, "child"), (3, "child")]
    assert steps[1].child_workflow_id == "fam-2"
    assert steps[2].child_workflow_id == "fam-3"
    for cid in ("fam-2", "fam-3"):
        info = wf.get_workflow(cid)
        assert info.status == wf.Status.SUCCESS
        assert info.parent_workflow_id == "fam"
        assert info.name.endswith(":child")

    # a replay of the parent (restart reusing every call) finds the same children and runs nothing
    before = dict(CALLS)
    again = wf.restart("fam", from_step=len(steps) + 1, workflow_id="fam-again").result(timeout=30)
    assert again == {**out, "me": "fam-again"}
    assert CALLS == before


def test_wf_workflow_id_outside_a_workflow_raises() -> None:
    with pytest.raises(wf.WfError):
        wf.workflow_id()


# -- cancel -----------------------------------------------------------------------------


@wf.step()
def tick(i: int) -> int:
    _called("tick")
    time.sleep(0.02)
    return i


@wf.workflow()
def busy_child(n: int) -> int:
    total = 0
    for i in range(n):
        total += tick(i)
    return total


@wf.workflow()
def busy_parent(n: int) -> int:
    return busy_child(n)


@wf.workflow()
def sleepy_parent() -> str:
    wf.start(sleepy_child)
    wf.sleep(30)
    return "woke"


@wf.workflow()
def sleepy_child() -> str:
    wf.sleep(30)
    return "woke"


def _wait_status(wid: str, status: str, timeout: float = 20) -> None:
    def reached() -> bool:
        try:
            return wf.get_workflow(wid).status == status
        except wf.WorkflowNotFoundError:
            return False

    wait_for(reached, timeout=timeout, what=f"{wid} to be {status}")


def test_cancel_cascades_to_children(launched: str) -> None:
    h = wf.start(busy_parent, 5000, workflow_id="cx")
    _wait_status("cx-1", wf.Status.PENDING)
    wait_for(lambda: CALLS.get("tick", 0) >= 3, timeout=20)
    wf.cancel("cx")
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=20)
    _wait_status("cx-1", wf.Status.CANCELLED)
    assert wf.get_workflow("cx").status == wf.Status.CANCELLED
    # the child stopped at its next recorded call
    time.sleep(0.3)
    ticks = CALLS["tick"]
    time.sleep(0.3)
    assert CALLS["tick"] == ticks < 5000


def test_cancel_interrupts_durable_sleeps(launched: str) -> None:
    h = wf.start(sleepy_parent, workflow_id="sx")
    _wait_status("sx-1", wf.Status.PENDING)
    t0 = time.monotonic()
    wf.cancel("sx")
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=20)
    with pytest.raises(wf.WorkflowCancelledError):
        wf.retrieve("sx-1").result(timeout=20)
    assert time.monotonic() - t0 < 10
    assert wf.get_workflow("sx-1").status == wf.Status.CANCELLED


def test_cancel_unknown_id_raises_not_found(launched: str) -> None:
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.cancel("no-such-workflow")


def test_cancelled_workflow_can_be_resumed(launched: str) -> None:
    h = wf.start(busy_child, 40, workflow_id="resume-me")
    wait_for(lambda: CALLS.get("tick", 0) >= 2, timeout=20)
    wf.cancel("resume-me")
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=20)
    done_before = len(wf.list_steps("resume-me"))
    ticks_before = CALLS["tick"]
    assert wf.resume("resume-me").result(timeout=60) == sum(range(40))
    assert wf.get_workflow("resume-me").status == wf.Status.SUCCESS
    # the recorded ticks were not run again (at most the interrupted one ran twice)
    assert CALLS["tick"] - ticks_before <= 40 - done_before + 1


def test_resume_right_after_cancel_runs_to_the_end(launched: str) -> None:
    """The cancelled run may still be inside a step in this process when
    resume is called: the resumed run must not be lost to it (nor race it)."""
    for k in range(4):
        wid = f"quick-resume-{k}"
        CALLS.clear()
        wf.start(busy_child, 30, workflow_id=wid)
        wait_for(lambda: CALLS.get("tick", 0) >= 2, timeout=20)
        wf.cancel(wid)
        assert wf.resume(wid).result(timeout=60) == sum(range(30))
        steps = wf.list_steps(wid)
        assert [s.output for s in steps] == list(range(30))
        assert wf.get_workflow(wid).status == wf.Status.SUCCESS


# -- timeouts ---------------------------------------------------------------------------


def test_timeout_cancels_the_workflow_and_its_children(launched: str) -> None:
    t0 = time.monotonic()
    h = wf.start(busy_parent, 100_000, workflow_id="tx", timeout=1.0)
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=30)
    elapsed = time.monotonic() - t0
    assert 0.9 <= elapsed < 10, elapsed  # seconds, not milliseconds or minutes
    assert wf.get_workflow("tx").status == wf.Status.CANCELLED
    _wait_status("tx-1", wf.Status.CANCELLED)


def test_timeout_cancels_a_sleeping_workflow(launched: str) -> None:
    t0 = time.monotonic()
    h = wf.start(sleepy_child, workflow_id="tsleep", timeout=0.5)
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=30)
    assert time.monotonic() - t0 < 10
    assert wf.get_workflow("tsleep").status == wf.Status.CANCELLED


def test_timeout_not_reached_is_harmless(launched: str) -> None:
    assert wf.start(busy_child, 3, timeout=30).result(timeout=30) == 3


# -- restart ----------------------------------------------------------------------------


@wf.step()
def fresh_value(name: str) -> str:
    _called(name)
    return f"{name}-{uuid.uuid4().hex[:8]}"


@wf.workflow()
def three_steps() -> list[str]:
    return [fresh_value("s1"), fresh_value("s2"), fresh_value("s3")]


def test_restart_from_step_reuses_the_steps_before_it(launched: str) -> None:
    original = wf.start(three_steps, workflow_id="r0").result(timeout=30)
    assert CALLS == {"s1": 1, "s2": 1, "s3": 1}

    h = wf.restart("r0", from_step=3)
    assert h.workflow_id != "r0"
    again = h.result(timeout=30)
    assert again[:2] == original[:2]
    assert again[2] != original[2]
    assert CALLS == {"s1": 1, "s2": 1, "s3": 2}
    assert wf.get_workflow("r0").output == original  # the original is untouched

    h2 = wf.restart("r0", from_step=2, workflow_id="r0-from-2")
    assert h2.workflow_id == "r0-from-2"
    from2 = h2.result(timeout=30)
    assert from2[0] == original[0] and from2[1] != original[1]
    assert CALLS == {"s1": 1, "s2": 2, "s3": 3}

    everything = wf.restart("r0").result(timeout=30)
    assert all(a != b for a, b in zip(everything, original, strict=True))
    assert CALLS == {"s1": 2, "s2": 3, "s3": 4}


def test_a_detached_restart_dequeued_by_a_worker_replays_the_copied_calls(launched: str) -> None:
    original = wf.start(three_steps, workflow_id="rq0").result(timeout=30)
    # --detach: the copy waits on its queue with the first two calls copied
    h = wf.restart("rq0", from_step=3, workflow_id="rq0-q", detach=True)
    assert wf.get_workflow("rq0-q").status == wf.Status.ENQUEUED
    wf.shutdown()
    wf.launch(database_url=launched, queues=["default"])  # the one-statement dequeue
    again = h.result(timeout=30)
    assert again[:2] == original[:2] and again[2] != original[2]
    assert CALLS == {"s1": 1, "s2": 1, "s3": 2}


def test_restart_to_an_existing_id_is_a_conflict(launched: str) -> None:
    wf.start(three_steps, workflow_id="r1").result(timeout=30)
    with pytest.raises(wf.WorkflowConflictError):
        wf.restart("r1", workflow_id="r1")


def test_restart_of_unknown_id_raises_not_found(launched: str) -> None:
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.restart("nope")


# -- durable sleep ------------------------------------------------------------------------


@wf.workflow()
def nap(seconds: float) -> float:
    t0 = tick_time()
    wf.sleep(seconds)
    return tick_time() - t0


@wf.step()
def tick_time() -> float:
    return time.time()


def test_sleep_sleeps_seconds(launched: str) -> None:
    slept = wf.start(nap, 0.4).result(timeout=30)
    assert 0.39 <= slept < 3  # seconds, not milliseconds
    steps = wf.list_steps(wf.list_workflows(limit=1)[0].workflow_id)
    assert [s.kind for s in steps] == ["step", "sleep", "step"]


def test_sleep_after_a_crash_sleeps_only_the_remainder(db_url: str, tmp_path: Path) -> None:
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    seconds = 4.0
    proc = spawn_app(APP, "start", "nap-1", "sleeper", f"[{seconds}]", db_url=db_url, env=env)
    wait_for_file(tmp_path / "sleeping", timeout=60, proc=proc)
    time.sleep(1.5)  # well inside the sleep, whose wake-up time is recorded by now
    assert kill_hard(proc).killed
    assert not any(line.startswith("killed") for line in marker_lines(markers))

    spawned = time.time()
    res = run_app(APP, "recover", "nap-1", db_url=db_url, env=env)
    out = outcome(res)
    assert out["woke"] - out["started"] >= seconds - 0.05  # the whole sleep happened
    # only the remainder (about 2.5 s) was slept after the recovering process
    # started; a sleep started over would end >= 4 s after it (plus its start-up)
    assert out["woke"] - spawned < seconds - 0.5, (out, spawned)
