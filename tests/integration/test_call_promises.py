"""Issue 10, part A: the promises about calls, cancellation and transactions.

- gathered async calls (steps, transactions, children, sleeps, events) each get
  their own record, at positions in call order, and a replay reuses them; a
  step called from another thread that carries the workflow's context is refused;
- a cancel is seen before the next call (step, transaction, child, send), and
  the call that was running when it came is recorded, so a resume never runs a
  completed step twice; a child called after its parent was cancelled never runs;
- a @wf.transaction cannot end its own transaction (commit/rollback/COMMIT);
- wf.logger inside a transaction neither hangs nor loses or doubles its line;
- wf.set_event inside a step is allowed; a sleep's record spans the sleep.

Counters (CALLS, marker files, the counter table) catch any body run twice."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import wf

from tests.helpers import (
    count,
    counters,
    create_counter_table,
    error_line,
    finish,
    kill_hard,
    marker_lines,
    outcome,
    raw_rows,
    run_app,
    spawn_app,
    wait_for,
    wait_for_file,
)

APP = "tests.apps.t1_calls"

CALLS: Counter[str] = Counter()
_calls_lock = threading.Lock()


def _called(name: str) -> None:
    with _calls_lock:
        CALLS[name] += 1


@dataclass
class Gate:
    """Holds a body until the test releases it; ``exited`` is set when the
    workflow body has returned or raised (its run is over)."""

    entered: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)


GATES: dict[str, Gate] = {}


@pytest.fixture(autouse=True)
def _clear_state() -> Iterator[None]:
    CALLS.clear()
    GATES.clear()
    yield
    for g in GATES.values():  # never leave a body blocked for the next test
        g.release.set()


class Flaky(Exception):
    pass


def _short(name: str) -> str:
    return name.rpartition(":")[2].rpartition(".")[2]


def _names(wid: str) -> list[tuple[int, str, str]]:
    return [(s.position, _short(s.name), s.kind) for s in wf.list_steps(wid)]


def _bump(conn: Any, key: str) -> int:
    conn.execute(
        sa.text(
            "INSERT INTO wf_test_counters (name, n) VALUES (:k, 1) "
            "ON CONFLICT (name) DO UPDATE SET n = wf_test_counters.n + 1"
        ),
        {"k": key},
    )
    return int(
        conn.execute(
            sa.text("SELECT n FROM wf_test_counters WHERE name = :k"), {"k": key}
        ).scalar_one()
    )


def _inline(fn: Callable[..., Any], wid: str, *args: Any, timeout: float = 30) -> Any:
    """Call a workflow directly (sync, or awaited in asyncio.run) under ID
    ``wid``, in a thread of its own so a hang fails the test instead of
    blocking it for ever."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            with wf.set_workflow_id(wid):
                value = fn(*args)
                if inspect.iscoroutine(value):
                    value = asyncio.run(value)
            box["value"] = value
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            box["error"] = e

    t = threading.Thread(target=run, name=f"inline-{wid}", daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), f"workflow {wid} called inline did not end in {timeout}s"
    if "error" in box:
        raise box["error"]
    return box["value"]


# -- 1: gathered async calls ---------------------------------------------------------------


@wf.step(retries=0)
async def g_step_a(x: int) -> tuple[str, int]:
    _called("g_step_a")
    await asyncio.sleep(0.15)  # the first call ends last: positions follow calls, not ends
    return ("a", x)


@wf.step(retries=0)
async def g_step_b(x: int) -> tuple[str, int]:
    _called("g_step_b")
    await asyncio.sleep(0.08)
    return ("b", x)


@wf.step(retries=0)
async def g_step_c(x: int) -> tuple[str, int]:
    _called("g_step_c")
    return ("c", x)


@wf.step(retries=0)
async def g_after(tag: str) -> str:
    _called("g_after")
    return f"after-{tag}"


@wf.workflow()
async def gathered_steps() -> dict[str, Any]:
    values = await asyncio.gather(g_step_a(1), g_step_b(2), g_step_c(3))
    return {"values": list(values), "after": await g_after("steps")}


@pytest.mark.parametrize("how", ["start", "inline"])
def test_gathered_async_steps_each_recorded_in_call_order(launched: str, how: str) -> None:
    wid = f"gather-steps-{how}"
    if how == "start":
        out = wf.start(gathered_steps, workflow_id=wid).result(timeout=30)
    else:
        out = _inline(gathered_steps, wid)
    assert out == {"values": [("a", 1), ("b", 2), ("c", 3)], "after": "after-steps"}
    assert _names(wid) == [
        (1, "g_step_a", "step"),
        (2, "g_step_b", "step"),
        (3, "g_step_c", "step"),
        (4, "g_after", "step"),
    ]
    assert [s.output for s in wf.list_steps(wid)][:3] == [("a", 1), ("b", 2), ("c", 3)]
    assert CALLS == {"g_step_a": 1, "g_step_b": 1, "g_step_c": 1, "g_after": 1}

    # a replay of the group maps each call onto its own record: nothing runs again
    again = wf.restart(wid, from_step=4).result(timeout=30)
    assert again == out
    assert CALLS == {"g_step_a": 1, "g_step_b": 1, "g_step_c": 1, "g_after": 2}


@wf.transaction()
async def g_tx(key: str, delay: float) -> str:
    _called(key)
    await asyncio.sleep(delay)
    return f"{key}:{_bump(wf.db(), key)}"


@wf.workflow()
async def gathered_transactions() -> dict[str, Any]:
    values = await asyncio.gather(g_tx("ta", 0.15), g_tx("tb", 0.08), g_tx("tc", 0.0))
    return {"values": list(values), "after": await g_after("tx")}


def test_gathered_async_transactions_each_recorded_in_call_order(launched: str) -> None:
    create_counter_table(launched)
    wid = "gather-tx"
    out = wf.start(gathered_transactions, workflow_id=wid).result(timeout=30)
    assert out == {"values": ["ta:1", "tb:1", "tc:1"], "after": "after-tx"}
    assert _names(wid) == [
        (1, "g_tx", "transaction"),
        (2, "g_tx", "transaction"),
        (3, "g_tx", "transaction"),
        (4, "g_after", "step"),
    ]
    assert [s.output for s in wf.list_steps(wid)][:3] == ["ta:1", "tb:1", "tc:1"]
    assert counters(launched) == {"ta": 1, "tb": 1, "tc": 1}

    again = wf.restart(wid, from_step=4).result(timeout=30)
    assert again == out
    assert counters(launched) == {"ta": 1, "tb": 1, "tc": 1}  # no transaction committed twice
    assert CALLS == {"ta": 1, "tb": 1, "tc": 1, "g_after": 2}


@wf.workflow()
async def g_child(tag: str, delay: float) -> str:
    _called(f"child {tag}")
    await asyncio.sleep(delay)
    return f"child-{tag}"


@wf.workflow()
async def gathered_children() -> dict[str, Any]:
    values = await asyncio.gather(g_child("x", 0.15), g_child("y", 0.08), g_child("z", 0.0))
    return {"values": list(values), "after": await g_after("children")}


def test_gathered_async_children_each_recorded_in_call_order(launched: str) -> None:
    wid = "gather-children"
    out = wf.start(gathered_children, workflow_id=wid).result(timeout=30)
    assert out == {"values": ["child-x", "child-y", "child-z"], "after": "after-children"}
    steps = wf.list_steps(wid)
    assert _names(wid) == [
        (1, "g_child", "child"),
        (2, "g_child", "child"),
        (3, "g_child", "child"),
        (4, "g_after", "step"),
    ]
    assert [s.output for s in steps[:3]] == ["child-x", "child-y", "child-z"]
    child_ids = [s.child_workflow_id for s in steps[:3]]
    assert len(set(child_ids)) == 3 and None not in child_ids
    for cid, tag in zip(child_ids, "xyz", strict=True):
        assert cid is not None
        info = wf.get_workflow(cid)
        assert info.parent_workflow_id == wid
        assert info.inputs["args"][0] == tag  # the call at that position is the one recorded
        assert info.status == wf.Status.SUCCESS
    assert CALLS == {"child x": 1, "child y": 1, "child z": 1, "g_after": 1}

    again = wf.restart(wid, from_step=4).result(timeout=30)
    assert again == out
    assert CALLS == {"child x": 1, "child y": 1, "child z": 1, "g_after": 2}


@wf.workflow()
async def gathered_sleeps_and_events() -> str:
    await asyncio.gather(
        wf.sleep_async(0.05),
        wf.set_event_async("k1", "v1"),
        wf.sleep_async(0.05),
        wf.set_event_async("k2", "v2"),
    )
    return await g_after("sleeps")


def test_gathered_sleeps_and_set_events_each_recorded_in_call_order(launched: str) -> None:
    wid = "gather-sleep-event"
    assert wf.start(gathered_sleeps_and_events, workflow_id=wid).result(timeout=30) == (
        "after-sleeps"
    )
    kinds = [(s.position, s.kind) for s in wf.list_steps(wid)]
    assert kinds == [(1, "sleep"), (2, "event"), (3, "sleep"), (4, "event"), (5, "step")]
    assert wf.get_event(wid, "k1", timeout=1) == "v1"
    assert wf.get_event(wid, "k2", timeout=1) == "v2"

    assert wf.restart(wid, from_step=5).result(timeout=30) == "after-sleeps"
    assert CALLS == {"g_after": 2}


@wf.workflow()
async def gathered_mixed() -> dict[str, Any]:
    values = await asyncio.gather(
        g_step_a(7),
        g_tx("tm", 0.0),
        g_child("m", 0.0),
        wf.sleep_async(0.05),
        wf.set_event_async("km", "vm"),
    )
    return {"values": list(values), "after": await g_after("mixed")}


def test_gathered_calls_of_every_kind_each_recorded_in_call_order(launched: str) -> None:
    """One of each kind in one group: a step running does not turn the calls
    started beside it into unrecorded (or refused) ones."""
    create_counter_table(launched)
    wid = "gather-mixed"
    out = wf.start(gathered_mixed, workflow_id=wid).result(timeout=30)
    assert out == {"values": [("a", 7), "tm:1", "child-m", None, None], "after": "after-mixed"}
    assert _names(wid) == [
        (1, "g_step_a", "step"),
        (2, "g_tx", "transaction"),
        (3, "g_child", "child"),
        (4, "sleep", "sleep"),
        (5, "set_event", "event"),
        (6, "g_after", "step"),
    ]
    assert wf.get_event(wid, "km", timeout=1) == "vm"
    child_id = wf.list_steps(wid)[2].child_workflow_id
    assert child_id is not None and wf.get_workflow(child_id).parent_workflow_id == wid

    assert wf.restart(wid, from_step=6).result(timeout=30) == out
    assert CALLS == {"g_step_a": 1, "tm": 1, "child m": 1, "g_after": 2}
    assert counters(launched) == {"tm": 1}


def test_gathered_steps_are_not_run_again_after_sigkill(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    """A process dies after a gathered group completed: recovery in a fresh
    process replays all three records instead of running any of them again."""
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    env_block = {**env, "WF_TEST_BLOCK": "1"}
    proc = spawn_app(
        APP, "start", "gather-crash", "gather_then_block", db_url=db_url, env=env_block
    )
    wait_for_file(tmp_path / "blocking", timeout=60, proc=proc)
    assert kill_hard(proc).killed
    assert wf.get_workflow("gather-crash").status == wf.Status.PENDING
    assert _names("gather-crash")[:3] == [
        (1, "gathered_a", "step"),
        (2, "gathered_b", "step"),
        (3, "gathered_c", "step"),
    ]

    res = run_app(APP, "recover", "gather-crash", db_url=db_url, env=env)
    assert outcome(res) == {"values": [10, 20, 30], "last": "done"}
    lines = marker_lines(markers)
    for name in ("gathered_a", "gathered_b", "gathered_c"):
        assert count(lines, f"{name} start") == 1, (name, lines)
    assert count(lines, "gathered_block start") == 2, lines  # the interrupted one ran again
    assert wf.get_workflow("gather-crash").status == wf.Status.SUCCESS


# -- 1: steps called from other threads --------------------------------------------------


@wf.step(retries=0)
def threaded_step(x: int) -> int:
    _called("threaded_step")
    return x + 1


def _attempt(results: dict[str, str], label: str, call: Callable[[], Any]) -> None:
    try:
        results[label] = f"ok {call()}"
    except wf.WfError as e:
        results[label] = f"WfError {e}"
    except Exception as e:  # noqa: BLE001 - reported to the test
        results[label] = f"{type(e).__name__} {e}"


@wf.workflow()
def calls_steps_from_threads() -> dict[str, str]:
    results: dict[str, str] = {"main": f"ok {threaded_step(1)}"}
    # a thread running in a copy of the workflow's context
    ctx = contextvars.copy_context()
    t = threading.Thread(
        target=ctx.run, args=(_attempt, results, "thread", lambda: threaded_step(2))
    )
    t.start()
    t.join()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(
            contextvars.copy_context().run, _attempt, results, "pool", lambda: threaded_step(3)
        ).result()
    # a plain thread (it starts with an empty context): no workflow there
    t = threading.Thread(target=_attempt, args=(results, "plain", lambda: threaded_step(4)))
    t.start()
    t.join()
    return results


def test_step_from_a_thread_carrying_the_workflow_context_is_refused(launched: str) -> None:
    wid = "threads-sync"
    out = wf.start(calls_steps_from_threads, workflow_id=wid).result(timeout=30)
    assert out["main"] == "ok 2"
    for label in ("thread", "pool"):
        assert out[label].startswith("WfError "), out
        assert "thread" in out[label].lower(), out
    assert out["plain"] == "ok 5"  # a plain function call outside any workflow
    assert _names(wid) == [(1, "threaded_step", "step")]  # neither refused nor plain is recorded
    assert CALLS == {"threaded_step": 2}  # the refused calls ran nothing
    assert wf.get_workflow(wid).status == wf.Status.SUCCESS


@wf.workflow()
async def async_calls_sync_step_in_a_thread() -> str:
    try:
        value = await asyncio.to_thread(threaded_step, 5)
    except wf.WfError as e:
        return f"WfError {e}"
    return f"ok {value}"


def test_sync_step_through_to_thread_in_an_async_workflow_is_refused(launched: str) -> None:
    wid = "threads-async"
    out = wf.start(async_calls_sync_step_in_a_thread, workflow_id=wid).result(timeout=30)
    assert out.startswith("WfError ") and "thread" in out.lower(), out
    assert wf.list_steps(wid) == []
    assert CALLS == {}


# -- 2: cancellation is seen before the next call -------------------------------------------


@wf.step(retries=0)
def blocking_step(key: str) -> str:
    _called("blocking_step")
    gate = GATES[key]
    gate.entered.set()
    if not gate.release.wait(30):
        raise RuntimeError("the test never released the step")
    return "one"


@wf.step(retries=0)
def next_step(key: str) -> str:
    _called("next_step")
    return "two"


@wf.transaction()
def next_tx(key: str) -> str:
    _called("next_tx")
    return f"n={_bump(wf.db(), key)}"


@wf.workflow()
def next_child(key: str) -> str:
    _called("next_child")
    return "child"


@wf.workflow()
def inbox(topic: str) -> Any:
    return wf.recv(topic, timeout=60)


@wf.workflow()
def cancelled_while_blocked(key: str, nxt: str, target: str) -> str:
    try:
        first = blocking_step(key)
        if nxt == "step":
            second = next_step(key)
        elif nxt == "transaction":
            second = next_tx(key)
        elif nxt == "child":
            second = next_child(key)
        else:
            wf.send(target, "hello", topic="t1")
            second = "sent"
        return f"{first}:{second}"
    finally:
        GATES[key].exited.set()


NEXT_CALL = {"step": "next_step", "transaction": "next_tx", "child": "next_child", "send": None}
RESUMED = {"step": "one:two", "transaction": "one:n=1", "child": "one:child", "send": "one:sent"}


@pytest.mark.parametrize("nxt", list(NEXT_CALL))
def test_cancel_is_seen_before_the_next_call(launched: str, nxt: str) -> None:
    """wf.cancel returns while step 1 runs; step 1 then ends. Its result is
    kept, the next call never begins, and a resume runs each call once."""
    key = f"cancel-{nxt}"
    gate = GATES[key] = Gate()
    target = ""
    if nxt == "transaction":
        create_counter_table(launched)
    if nxt == "send":
        target = wf.start(inbox, "t1", workflow_id=f"{key}-inbox").workflow_id
    h = wf.start(cancelled_while_blocked, key, nxt, target, workflow_id=key)
    assert gate.entered.wait(30)
    wf.cancel(key)
    gate.release.set()
    assert gate.exited.wait(30), "the cancelled run did not stop"
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=30)
    assert wf.get_workflow(key).status == wf.Status.CANCELLED
    assert CALLS["blocking_step"] == 1
    name = NEXT_CALL[nxt]
    if name is not None:
        assert CALLS[name] == 0, f"{name} began after wf.cancel returned"
    if nxt == "transaction":
        assert key not in counters(launched)
    if nxt == "child":
        _children_never_succeeded("next_child")
    if nxt == "send":
        assert [m for m in raw_rows(launched, "messages") if m["destination_id"] == target] == []
        assert wf.get_workflow(target).status == wf.Status.PENDING

    assert wf.resume(key).result(timeout=30) == RESUMED[nxt]
    assert wf.get_workflow(key).status == wf.Status.SUCCESS
    assert CALLS["blocking_step"] == 1, "a completed step ran again on resume"
    if name is not None:
        assert CALLS[name] == 1
    if nxt == "transaction":
        assert counters(launched) == {key: 1}
    if nxt == "send":
        assert wf.retrieve(target).result(timeout=30) == "hello"


@wf.step(retries=0)
async def ablocking_step(key: str) -> str:
    _called("ablocking_step")
    gate = GATES[key]
    gate.entered.set()
    deadline = time.monotonic() + 30
    while not gate.release.is_set():
        if time.monotonic() > deadline:
            raise RuntimeError("the test never released the step")
        await asyncio.sleep(0.005)
    return "one"


@wf.step(retries=0)
async def anext_step(key: str) -> str:
    _called("anext_step")
    return "two"


@wf.workflow()
async def acancelled_while_blocked(key: str) -> str:
    try:
        first = await ablocking_step(key)
        second = await anext_step(key)
        return f"{first}:{second}"
    finally:
        GATES[key].exited.set()


def test_cancel_is_seen_before_the_next_call_of_an_async_workflow(launched: str) -> None:
    key = "cancel-async"
    gate = GATES[key] = Gate()
    h = wf.start(acancelled_while_blocked, key, workflow_id=key)
    assert gate.entered.wait(30)
    wf.cancel(key)
    gate.release.set()
    assert gate.exited.wait(30), "the cancelled run did not stop"
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=30)
    assert wf.get_workflow(key).status == wf.Status.CANCELLED
    assert CALLS == {"ablocking_step": 1}, "the next step began after wf.cancel returned"

    assert wf.resume(key).result(timeout=30) == "one:two"
    assert CALLS == {"ablocking_step": 1, "anext_step": 1}
    assert wf.get_workflow(key).status == wf.Status.SUCCESS


def test_cancel_from_another_process_never_runs_a_step_twice(
    db_url: str, observe: str, backend: str, tmp_path: Path
) -> None:
    """The workflow runs in a subprocess; this process cancels it while step 1
    runs, then lets step 1 end. On Postgres (NOTIFY) step 2 never starts; on
    both backends a resume runs no completed step again."""
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    wid = "xp-cancel"
    proc = spawn_app(APP, "start", wid, "xp_cancelled", db_url=db_url, env=env)
    wait_for_file(tmp_path / "in_step1", timeout=60, proc=proc)
    wf.cancel(wid)
    (tmp_path / "release").touch()
    res = finish(proc, timeout=60)
    assert error_line(res).startswith("WorkflowCancelledError"), res.describe()
    assert wf.get_workflow(wid).status == wf.Status.CANCELLED
    if backend == "postgres":
        assert count(marker_lines(markers), "xp_step2 start") == 0, marker_lines(markers)

    assert outcome(run_app(APP, "resume", wid, db_url=db_url, env=env)) == [1, 2, 3]
    lines = marker_lines(markers)
    for name in ("xp_step1", "xp_step2", "xp_step3"):
        assert count(lines, f"{name} start") == 1, (name, lines)
    assert wf.get_workflow(wid).status == wf.Status.SUCCESS


def test_resume_in_another_process_waits_for_the_cancelled_run_to_stop(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    """Process A runs the workflow and is inside step 1 when it is cancelled;
    process B resumes it at once. B must wait for A's run to stop (its step
    1 result is kept) instead of running step 1 again beside it."""
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    wid = "xp-resume-overlap"
    first = spawn_app(APP, "start", wid, "xp_cancelled", db_url=db_url, env=env)
    wait_for_file(tmp_path / "in_step1", timeout=60, proc=first)
    wf.cancel(wid)
    second = spawn_app(APP, "resume", wid, db_url=db_url, env=env)
    try:
        time.sleep(2.0)  # B has had time to take the workflow if it were going to
        assert count(marker_lines(markers), "xp_step1 start") == 1, marker_lines(markers)
    finally:
        (tmp_path / "release").touch()
    res = finish(first, timeout=60)
    assert error_line(res).startswith("WorkflowCancelledError"), res.describe()
    assert outcome(finish(second, timeout=60)) == [1, 2, 3]
    lines = marker_lines(markers)
    for name in ("xp_step1", "xp_step2", "xp_step3"):
        assert count(lines, f"{name} start") == 1, (name, lines)
    assert wf.get_workflow(wid).status == wf.Status.SUCCESS


# -- 16: a child called after its parent was cancelled never runs -------------------------


@wf.workflow()
def orphan_child(key: str) -> str:
    _called("orphan_child")
    return "child"


def _wait_in_body(key: str) -> None:
    gate = GATES[key]
    gate.entered.set()
    if not gate.release.wait(30):
        raise RuntimeError("the test never released the body")


@wf.workflow()
def parent_of_orphan(key: str, where: str, how: str) -> str:
    try:
        if where == "step":
            blocking_step(key)
        else:  # no recorded call between the cancel and the child
            _wait_in_body(key)
        if how == "direct":
            return orphan_child(key)
        return str(wf.start(orphan_child, key).result(timeout=30))
    finally:
        GATES[key].exited.set()


def _children_never_succeeded(name: str) -> None:
    """Every recorded workflow of ``name`` ends, and none in SUCCESS."""
    found = wf.list_workflows(name=name, limit=None)

    def all_ended() -> bool:
        return all(wf.get_workflow(w.workflow_id).status in wf.Status.ENDED for w in found)

    wait_for(all_ended, timeout=30, what=f"the {name} workflows to end")
    statuses = {w.workflow_id: wf.get_workflow(w.workflow_id).status for w in found}
    assert wf.Status.SUCCESS not in statuses.values(), statuses


@pytest.mark.parametrize("how", ["direct", "start"])
@pytest.mark.parametrize("where", ["step", "body"])
def test_child_called_after_its_parent_was_cancelled_never_runs(
    launched: str, where: str, how: str
) -> None:
    key = f"orphan-{where}-{how}"
    gate = GATES[key] = Gate()
    h = wf.start(parent_of_orphan, key, where, how, workflow_id=key)
    assert gate.entered.wait(30)
    wf.cancel(key)
    gate.release.set()
    assert gate.exited.wait(30), "the cancelled parent did not stop"
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=30)
    _children_never_succeeded("orphan_child")
    assert CALLS["orphan_child"] == 0, "the child's body ran after its parent was cancelled"
    assert wf.get_workflow(key).status == wf.Status.CANCELLED

    # resumed, the parent goes on from its last finished call: now the child runs, once
    assert wf.resume(key).result(timeout=30) == "child"
    assert CALLS["orphan_child"] == 1
    assert CALLS["blocking_step"] == (1 if where == "step" else 0)
    assert wf.get_workflow(key).status == wf.Status.SUCCESS


@pytest.mark.parametrize("how", ["direct", "start"])
@pytest.mark.parametrize("where", ["step", "body"])
def test_child_of_a_parent_cancelled_from_another_process_never_runs(
    pg_database: str, tmp_path: Path, where: str, how: str
) -> None:
    wf.configure(database_url=pg_database)
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    wid = f"xp-orphan-{where}-{how}"
    args = f'["{where}", "{how}"]'
    proc = spawn_app(APP, "start", wid, "xp_parent", args, db_url=pg_database, env=env)
    wait_for_file(tmp_path / "in_step1", timeout=60, proc=proc)
    wf.cancel(wid)
    (tmp_path / "release").touch()
    res = finish(proc, timeout=60)
    assert error_line(res).startswith("WorkflowCancelledError"), res.describe()
    _children_never_succeeded("xp_child")
    assert count(marker_lines(markers), "xp_child start") == 0, marker_lines(markers)

    assert outcome(run_app(APP, "resume", wid, db_url=pg_database, env=env)) == "child"
    lines = marker_lines(markers)
    assert count(lines, "xp_child start") == 1, lines
    assert count(lines, "xp_parent_step1 start") == (1 if where == "step" else 0), lines


# -- 4: a transaction cannot end its own transaction ------------------------------------------


@wf.transaction()
def ends_itself(key: str, how: str, catch: bool) -> str:
    conn = wf.db()
    _bump(conn, key)
    try:
        if how == "commit":
            conn.commit()
        elif how == "rollback":
            conn.rollback()
        else:
            conn.execute(sa.text("COMMIT"))
    except wf.WfError as e:
        if catch:
            raise Flaky(f"mine, after: {e}") from e
        raise
    return "ended it"


@wf.workflow()
def calls_ends_itself(key: str, how: str, catch: bool) -> str:
    return ends_itself(key, how, catch)


ENDINGS = ["commit", "rollback", "sql_commit"]


def _check_refusal(e: BaseException, how: str) -> None:
    assert isinstance(e, wf.WfError), repr(e)
    if how != "rollback":
        assert "commit" in str(e).lower(), str(e)


@pytest.mark.parametrize("how", ENDINGS)
def test_transaction_cannot_end_itself_in_a_workflow(launched: str, how: str) -> None:
    create_counter_table(launched)
    key = f"end-{how}"
    h = wf.start(calls_ends_itself, key, how, False, workflow_id=key)
    with pytest.raises(wf.WfError) as caught:
        h.result(timeout=30)
    _check_refusal(caught.value, how)
    assert wf.get_workflow(key).status == wf.Status.ERROR
    assert key not in counters(launched), "the row was committed by the transaction itself"


@pytest.mark.parametrize("how", ENDINGS)
def test_transaction_that_catches_the_refusal_and_fails_commits_nothing(
    launched: str, how: str
) -> None:
    create_counter_table(launched)
    key = f"end-caught-{how}"
    h = wf.start(calls_ends_itself, key, how, True, workflow_id=key)
    with pytest.raises(Flaky, match="mine, after") as caught:
        h.result(timeout=30)
    if how != "rollback":
        assert "commit" in str(caught.value).lower()
    assert wf.get_workflow(key).status == wf.Status.ERROR
    assert key not in counters(launched)


@pytest.mark.parametrize("how", ENDINGS)
def test_transaction_cannot_end_itself_outside_a_workflow(launched: str, how: str) -> None:
    create_counter_table(launched)
    key = f"end-plain-{how}"
    with pytest.raises(wf.WfError) as caught:
        ends_itself(key, how, False)
    _check_refusal(caught.value, how)
    with pytest.raises(Flaky, match="mine, after"):
        ends_itself(key, how, True)
    assert key not in counters(launched)


# -- 6: wf.logger inside a transaction ----------------------------------------------------


@wf.transaction()
def logging_tx(tag: str, fail: bool) -> str:
    wf.logger.info("tx line %s", tag)
    if fail:
        raise Flaky(f"failed {tag}")
    return tag


@wf.transaction()
async def alogging_tx(tag: str, fail: bool) -> str:
    wf.logger.info("tx line %s", tag)
    if fail:
        raise Flaky(f"failed {tag}")
    return tag


@wf.workflow()
def logs_in_tx(tag: str, fail: bool) -> str:
    try:
        return logging_tx(tag, fail)
    except Flaky:
        return "caught"


@wf.workflow()
async def alogs_in_tx(tag: str, fail: bool) -> str:
    try:
        return await alogging_tx(tag, fail)
    except Flaky:
        return "caught"


@pytest.mark.parametrize("run", ["start", "inline"])
@pytest.mark.parametrize("fail", [False, True], ids=["ok", "raises"])
@pytest.mark.parametrize("kind", ["sync", "async"])
def test_logger_inside_a_transaction_records_the_line_once(
    launched: str, kind: str, fail: bool, run: str
) -> None:
    tag = f"{kind}-{'raises' if fail else 'ok'}-{run}"
    wid = f"txlog-{tag}"
    fn = logs_in_tx if kind == "sync" else alogs_in_tx
    t0 = time.monotonic()
    if run == "start":
        out = wf.start(fn, tag, fail, workflow_id=wid).result(timeout=30)
    else:
        out = _inline(fn, wid, tag, fail)
    assert time.monotonic() - t0 < 20, "the workflow took too long (a log write waited on a lock)"
    assert out == ("caught" if fail else tag)
    lines = [r.message for r in wf.list_logs(workflow_id=wid)]
    assert lines.count(f"tx line {tag}") == 1, lines


# -- 13: set_event inside a step ------------------------------------------------------------


@wf.step()
def publish(key: str, value: Any) -> str:
    wf.set_event(key, value)
    return "published"


@wf.workflow()
def publishes(value: Any) -> str:
    return publish("k", value)


@wf.workflow()
def parent_of_publisher(value: Any) -> str:
    return publishes(value)


@wf.step()
async def apublish(key: str, value: Any) -> str:
    await wf.set_event_async(key, value)
    return "published"


@wf.workflow()
async def apublishes(value: Any) -> str:
    return await apublish("k", value)


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_set_event_inside_a_step_is_allowed(launched: str, kind: str) -> None:
    wid = f"step-event-{kind}"
    value = {"n": 1, "kind": kind}
    fn = publishes if kind == "sync" else apublishes
    assert wf.start(fn, value, workflow_id=wid).result(timeout=30) == "published"
    assert wf.get_event(wid, "k", timeout=1) == value
    assert [s.kind for s in wf.list_steps(wid)] == ["step"]


def test_set_event_inside_a_childs_step_belongs_to_the_child(launched: str) -> None:
    wid = "step-event-parent"
    assert wf.start(parent_of_publisher, 42, workflow_id=wid).result(timeout=30) == "published"
    child_id = wf.list_steps(wid)[0].child_workflow_id
    assert child_id is not None
    assert wf.get_event(child_id, "k", timeout=1) == 42
    assert wf.get_event(wid, "k", timeout=0.2) is None


# -- 14: a sleep's record spans the sleep ------------------------------------------------------


@wf.workflow()
def sleeps_one_second() -> str:
    wf.sleep(1)
    return "woke"


@wf.workflow()
async def asleeps_one_second() -> str:
    await wf.sleep_async(1)
    return "woke"


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_sleep_step_records_when_the_sleep_ended(launched: str, kind: str) -> None:
    wid = f"sleep-duration-{kind}"
    fn = sleeps_one_second if kind == "sync" else asleeps_one_second
    assert wf.start(fn, workflow_id=wid).result(timeout=30) == "woke"
    (step,) = wf.list_steps(wid)
    assert step.kind == "sleep"
    assert step.started_at is not None and step.ended_at is not None
    took = (step.ended_at - step.started_at).total_seconds()
    assert 0.9 <= took < 30, (step.started_at, step.ended_at)
