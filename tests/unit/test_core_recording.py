"""The core's record-or-resolve decisions, without a database: replay from
recorded rows, positions in call order, what a refused record means, and the
cheap liveness check before every call. The system database is the
in-memory fake of tests/unit/fakes.py (same guards as the SQL)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import wf
from wf._context import WorkflowContext
from wf._core import begin_call, cancel_tree, check_live, replay, step_record, wake_key
from wf._core.runs import running
from wf._core.wakeups import notify_everyone, notify_local
from wf._errors import (
    NonDeterminismError,
    SerializationError,
    WfError,
    WorkflowCancelledError,
    _OwnershipLost,
)
from wf._records import Status
from wf._serialization import dumps, dumps_error
from wf._sysdb import StepRow, now_ms

from tests.unit.fakes import FakeRuntime, as_runtime

WID = "wf-1"


class Boom(Exception):
    pass


def recorded_step(
    position: int,
    name: str = "s",
    kind: str = "step",
    output: object = None,
    error: BaseException | None = None,
) -> StepRow:
    return StepRow(
        position=position,
        name=name,
        kind=kind,
        output=None if error is not None else dumps(output),
        error=dumps_error(error) if error is not None else None,
        child_workflow_id=None,
        started_at=1,
        ended_at=2,
    )


@pytest.fixture
def rt() -> FakeRuntime:
    rt = FakeRuntime()
    rt.db.add_workflow(WID, executor_id=rt.executor_id)
    return rt


def context(rt: FakeRuntime, recorded: dict[int, StepRow] | None = None) -> WorkflowContext:
    ctx = WorkflowContext(
        workflow_id=WID, name="tests.unit:wf", executor_id=rt.executor_id, recorded=recorded
    )
    ctx.executor = rt  # wf._root.for_call() hands calls in the body to it
    return ctx


@pytest.fixture
def ctx(rt: FakeRuntime) -> Iterator[WorkflowContext]:
    """A fresh workflow's body frame, as the executor sets it up (owner
    thread, cancel watch armed, current workflow)."""
    c = context(rt)
    with running(c):
        yield c


def test_fake_runtime_is_a_runtime(rt: FakeRuntime) -> None:
    assert as_runtime(rt) is rt  # the real check is mypy's


# -- replay and determinism ------------------------------------------------------------------


def test_replay_returns_recorded_values_without_running_the_step(rt: FakeRuntime) -> None:
    runs = []

    @wf.step(name="s")
    def s(x: int) -> object:
        runs.append(x)
        return "fresh"

    recorded = {0: recorded_step(0, "s", output={"k": [1, 2]}), 1: recorded_step(1, "s", output=7)}
    ctx = context(rt, recorded)
    with running(ctx):
        assert s(1) == {"k": [1, 2]}
        assert s(2) == 7
        assert s(3) == "fresh"  # past the recorded calls: runs, and is recorded
    assert runs == [3]
    assert rt.db.calls["record_step"] == 1
    assert rt.db.steps[(WID, 2)].output == dumps("fresh")


def test_replay_reraises_recorded_error_without_running(rt: FakeRuntime) -> None:
    runs = []

    @wf.step(retries=0, name="s")
    def s() -> None:
        runs.append(1)

    ctx = context(rt, {0: recorded_step(0, "s", error=Boom("recorded"))})
    with running(ctx), pytest.raises(Boom, match="recorded"):
        s()
    assert runs == []
    assert rt.db.calls["record_step"] == 0


@pytest.mark.parametrize(("name", "kind"), [("other", "step"), ("s", "transaction")])
def test_replay_of_another_call_is_nondeterminism_naming_position(
    rt: FakeRuntime, name: str, kind: str
) -> None:
    rec = recorded_step(2, "s", "step", output=1)
    ctx = context(rt)
    with pytest.raises(NonDeterminismError, match=r"position 3\b"):
        replay(ctx, 2, rec, name, kind)


# -- positions -------------------------------------------------------------------------------


def test_positions_are_taken_in_call_order(rt: FakeRuntime) -> None:
    recs = {0: recorded_step(0, "a"), 1: recorded_step(1, "b")}
    ctx = context(rt, recs)
    with running(ctx):
        assert begin_call(rt, ctx, "a", "step") == (0, recs[0])
        assert begin_call(rt, ctx, "b", "step") == (1, recs[1])
        assert begin_call(rt, ctx, "c", "step") == (2, None)
    assert ctx.next_position == 3
    assert rt.db.reads() == 0  # replayed positions come from the rows loaded once


def test_call_from_another_thread_is_refused(rt: FakeRuntime, ctx: WorkflowContext) -> None:
    ctx.owner_thread = threading.get_ident() + 1  # the body runs in some other thread
    with pytest.raises(WfError, match="thread"):
        begin_call(rt, ctx, "s", "step")
    assert ctx.next_position == 0  # no position taken: the body's own calls stay aligned


def test_refused_call_takes_no_position(rt: FakeRuntime, ctx: WorkflowContext) -> None:
    ctx.cancelled = True
    with pytest.raises(WorkflowCancelledError):
        begin_call(rt, ctx, "s", "step")
    assert ctx.next_position == 0


# -- step_record: a fresh write ---------------------------------------------------------------


def test_fresh_write_returns_the_value_as_recorded(rt: FakeRuntime, ctx: WorkflowContext) -> None:
    items = [3]
    value = {"t": (1, 2), "l": items}
    pos, _ = begin_call(rt, ctx, "s", "step")
    out = step_record(rt, ctx, pos, "s", "step", now_ms(), value, None)
    assert out == value and out is not value  # what a replay would see, not the live object
    items.append(4)
    assert out["l"] == [3]
    rec = rt.db.steps[(WID, 0)]
    assert (rec.name, rec.kind, rec.output, rec.error) == (
        "s",
        "step",
        dumps({"t": (1, 2), "l": [3]}),
        None,
    )
    assert rt.db.reads() == 0  # one write, nothing read


@pytest.mark.parametrize("value", [10**30, "a string", True, None])
def test_fresh_write_returns_scalars_identical(
    rt: FakeRuntime, ctx: WorkflowContext, value: object
) -> None:
    out = step_record(rt, ctx, 0, "s", "step", now_ms(), value, None)
    assert out is value


def test_fresh_write_of_an_error_records_and_raises_it(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    err = Boom("bad")
    with pytest.raises(Boom) as info:
        step_record(rt, ctx, 0, "s", "step", now_ms(), None, err)
    assert info.value is err
    rec = rt.db.steps[(WID, 0)]
    assert rec.output is None and rec.error == dumps_error(err)


def test_unserializable_value_is_recorded_as_the_error(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    with pytest.raises(SerializationError):
        step_record(rt, ctx, 0, "s", "step", now_ms(), object(), None)
    rec = rt.db.steps[(WID, 0)]
    assert rec.output is None and rec.error is not None and "SerializationError" in rec.error


# -- step_record: a refused write, resolved -----------------------------------------------------


def test_refused_as_our_own_earlier_write_returns_the_record(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    # the INSERT committed but its answer was lost; the retry found the row
    rt.db.lose_next_answer("record_step")
    out = step_record(rt, ctx, 0, "s", "step", now_ms(), [1, 2], None)
    assert out == [1, 2]
    assert len(rt.db.steps) == 1
    assert not ctx.cancelled


def test_refused_with_the_position_recorded_returns_the_recorded_value(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    rt.db.add_step(WID, recorded_step(0, "s", output="first"))
    assert step_record(rt, ctx, 0, "s", "step", now_ms(), "second", None) == "first"
    assert rt.db.steps[(WID, 0)].output == dumps("first")
    rt.db.add_step(WID, recorded_step(1, "s", error=Boom("first failed")))
    with pytest.raises(Boom, match="first failed"):
        step_record(rt, ctx, 1, "s", "step", now_ms(), "second", None)


def test_refused_own_record_of_another_call_is_nondeterminism(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    rt.db.add_step(WID, recorded_step(0, "other"))
    with pytest.raises(NonDeterminismError, match="position 1"):
        step_record(rt, ctx, 0, "s", "step", now_ms(), 1, None)


def test_refused_because_cancelled_keeps_the_finished_call(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    rt.db.update(WID, status=Status.CANCELLED)  # cancelled while the step ran
    with pytest.raises(WorkflowCancelledError):
        step_record(rt, ctx, 0, "s", "step", 123, {"done": 1}, None)
    rec = rt.db.steps[(WID, 0)]
    assert (rec.name, rec.kind, rec.output, rec.started_at) == (
        "s",
        "step",
        dumps({"done": 1}),
        123,
    )
    assert rt.db.calls["record_step_cancelled"] == 1
    assert ctx.cancelled
    reads = rt.db.reads()
    with pytest.raises(WorkflowCancelledError):  # the body caught it and calls on
        begin_call(rt, ctx, "next", "step")
    assert rt.db.reads() == reads  # refused at once, no round trip
    assert ctx.next_position == 0


def test_refused_because_cancelled_keeps_a_finished_error(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    rt.db.update(WID, status=Status.CANCELLED)
    with pytest.raises(WorkflowCancelledError):
        step_record(rt, ctx, 0, "s", "step", 1, None, Boom("failed"))
    assert rt.db.steps[(WID, 0)].error == dumps_error(Boom("failed"))


def test_cancelled_under_another_executor_writes_nothing(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    rt.db.update(WID, status=Status.CANCELLED, executor_id="exec-B")
    with pytest.raises(WorkflowCancelledError):
        step_record(rt, ctx, 0, "s", "step", 1, 1, None)
    assert rt.db.steps == {}
    assert rt.db.calls["record_step_cancelled"] == 0


@pytest.mark.parametrize(
    "change",
    [
        {"executor_id": "exec-B"},  # adopted by another executor
        {"status": Status.SUCCESS},  # ended
        {"status": Status.ENQUEUED, "executor_id": None},  # put back on its queue
    ],
    ids=["adopted", "ended", "requeued"],
)
def test_refused_because_no_longer_ours_stops_quietly(
    rt: FakeRuntime, ctx: WorkflowContext, change: dict[str, object]
) -> None:
    rt.db.update(WID, **change)
    with pytest.raises(_OwnershipLost):
        step_record(rt, ctx, 0, "s", "step", 1, 1, None)
    assert rt.db.steps == {}
    assert rt.db.calls["record_step_cancelled"] == 0
    assert not ctx.cancelled


def test_refused_because_the_workflow_is_gone_stops_quietly(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    del rt.db.workflows[WID]
    with pytest.raises(_OwnershipLost):
        step_record(rt, ctx, 0, "s", "step", 1, 1, None)
    assert rt.db.steps == {}


def test_adopted_even_with_the_position_recorded_stops_quietly(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    # the new owner's replay may record this position; this run must not take it
    rt.db.add_step(WID, recorded_step(0, "s", output="theirs"))
    rt.db.update(WID, executor_id="exec-B")
    with pytest.raises(_OwnershipLost):
        step_record(rt, ctx, 0, "s", "step", 1, "mine", None)


# -- check_live --------------------------------------------------------------------------------


def test_shutdown_stops_the_run(rt: FakeRuntime, ctx: WorkflowContext) -> None:
    rt.stopping.set()
    with pytest.raises(_OwnershipLost):
        check_live(rt, ctx)
    with pytest.raises(_OwnershipLost):
        begin_call(rt, ctx, "s", "step")
    assert ctx.next_position == 0
    assert rt.db.reads() == 0


def test_passed_deadline_cancels_the_tree(rt: FakeRuntime, ctx: WorkflowContext) -> None:
    db = rt.db
    db.add_workflow("child", parent_workflow_id=WID)
    db.add_workflow("grandchild", status=Status.ENQUEUED, parent_workflow_id="child")
    db.add_workflow("done-child", status=Status.SUCCESS, parent_workflow_id=WID)
    db.add_workflow("unrelated")
    ctx.deadline_ms = now_ms() - 1
    with pytest.raises(WorkflowCancelledError, match="timed out"):
        check_live(rt, ctx)
    status = {w: r.status for w, r in db.workflows.items()}
    assert status == {
        WID: Status.CANCELLED,
        "child": Status.CANCELLED,
        "grandchild": Status.CANCELLED,
        "done-child": Status.SUCCESS,  # an ended child keeps its outcome
        "unrelated": Status.PENDING,
    }
    assert ctx.cancelled


def test_deadline_not_passed_costs_nothing(rt: FakeRuntime, ctx: WorkflowContext) -> None:
    ctx.deadline_ms = now_ms() + 60_000
    for _ in range(5):
        check_live(rt, ctx)
    assert sum(rt.db.calls.values()) == 0


def test_cancel_watch_reads_only_when_a_cancel_was_announced(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    for _ in range(10):
        check_live(rt, ctx)
    assert rt.db.reads() == 0
    notify_local(wake_key("c", "another workflow"))
    check_live(rt, ctx)
    assert rt.db.reads() == 0
    # woken without a cancel (every waiter wakes after a missed notification)
    notify_everyone()
    check_live(rt, ctx)
    assert rt.db.calls["get_outcome"] == 1
    check_live(rt, ctx)  # re-armed: the next check is free again
    assert rt.db.reads() == 1
    # a cancel from elsewhere in this process announces itself to the watch
    cancel_tree(rt.sysdb, WID)
    reads = rt.db.reads()
    with pytest.raises(WorkflowCancelledError, match="cancelled"):
        check_live(rt, ctx)
    assert rt.db.calls["get_outcome"] == 2
    assert rt.db.reads() == reads + 1
    assert ctx.cancelled


def test_cancel_written_without_announcement_is_seen_at_the_record(
    rt: FakeRuntime, ctx: WorkflowContext
) -> None:
    # no announcement (e.g. a lost NOTIFY): the next record's guard still refuses
    rt.db.cancel_workflow(WID)
    check_live(rt, ctx)
    pos, _ = begin_call(rt, ctx, "s", "step")
    with pytest.raises(WorkflowCancelledError):
        step_record(rt, ctx, pos, "s", "step", 1, "done", None)
    assert rt.db.steps[(WID, 0)].output == dumps("done")
