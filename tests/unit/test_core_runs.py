"""Starting a workflow, without a database: a replayed child, the ID as the
idempotency key (and its conflicts), the deadline a child inherits, and a
child called after its parent stopped running here. The system database is
the in-memory fake of tests/unit/fakes.py (same guards as the SQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from wf._context import WorkflowContext
from wf._core import (
    ChildSlot,
    Existing,
    Started,
    begin_workflow,
    encode_inputs,
    reserve_child,
    start_workflow,
    wait_outcome,
)
from wf._core.runs import running
from wf._errors import (
    AwaitTimeoutError,
    NonDeterminismError,
    SerializationError,
    WorkflowCancelledError,
    WorkflowConflictError,
    WorkflowNotFoundError,
    _OwnershipLost,
)
from wf._records import Status
from wf._registry import WorkflowSpec
from wf._serialization import dumps, dumps_error
from wf._sysdb import StepRow, now_ms

from tests.unit.fakes import FakeRuntime

PARENT = "parent-1"


def _child_fn(x: int) -> int:
    return x


CHILD = WorkflowSpec("tests.unit:child", _child_fn, False, 7)
OTHER = WorkflowSpec("tests.unit:other", _child_fn, False, 7)


class Boom(Exception):
    pass


@pytest.fixture
def rt() -> FakeRuntime:
    rt = FakeRuntime()
    rt.db.add_workflow(PARENT, executor_id=rt.executor_id, name="tests.unit:parent")
    return rt


def parent_ctx(rt: FakeRuntime, recorded: dict[int, StepRow] | None = None) -> WorkflowContext:
    ctx = WorkflowContext(
        workflow_id=PARENT,
        name="tests.unit:parent",
        executor_id=rt.executor_id,
        recorded=recorded,
    )
    ctx.executor = rt
    return ctx


@pytest.fixture
def parent(rt: FakeRuntime) -> Iterator[WorkflowContext]:
    ctx = parent_ctx(rt)
    with running(ctx):
        yield ctx


def child_record(
    position: int, name: str = CHILD.name, output: Any = None, error: str | None = None
) -> StepRow:
    return StepRow(position, name, "child", output, error, f"{PARENT}-{position + 1}", 1, 2)


def begin_child(rt: FakeRuntime, slot: ChildSlot, *args: Any, **kw: Any) -> Started | Existing:
    return begin_workflow(rt.sysdb, rt.executor_id, CHILD, args, {}, slot=slot, **kw)


# -- a fresh workflow ------------------------------------------------------------------------


def test_fresh_workflow_is_recorded_pending_and_owned(rt: FakeRuntime) -> None:
    before = now_ms()
    plan = begin_workflow(
        rt.sysdb, rt.executor_id, CHILD, [{"a": (1, 2)}], {"k": 3}, workflow_id="w", timeout=10
    )
    assert isinstance(plan, Started)
    row = rt.db.workflows["w"]
    assert (row.status, row.executor_id, row.name) == (Status.PENDING, "exec-A", CHILD.name)
    assert row.inputs == encode_inputs([{"a": (1, 2)}], {"k": 3})
    assert row.max_recovery_attempts == 7
    assert row.deadline is not None and before + 10_000 <= row.deadline <= now_ms() + 10_000
    assert plan.ctx.deadline_ms == row.deadline and plan.ctx.executor_id == "exec-A"
    assert plan.decoded_args() == ([{"a": (1, 2)}], {"k": 3})


def test_unserializable_inputs_write_nothing(rt: FakeRuntime) -> None:
    with pytest.raises(SerializationError):
        begin_workflow(rt.sysdb, rt.executor_id, CHILD, [object()], {}, workflow_id="w")
    assert rt.db.calls["insert_workflow"] == 0


def test_same_id_same_function_is_the_recorded_workflow(rt: FakeRuntime) -> None:
    rt.db.add_workflow("w", name=CHILD.name, status=Status.SUCCESS)
    plan = begin_workflow(rt.sysdb, rt.executor_id, CHILD, [1], {}, workflow_id="w")
    assert isinstance(plan, Existing) and plan.workflow_id == "w" and plan.outcome is None
    assert rt.db.workflows["w"].status == Status.SUCCESS  # nothing run or rewritten


def test_another_function_under_the_same_id_conflicts(rt: FakeRuntime) -> None:
    rt.db.add_workflow("w", name=OTHER.name)
    with pytest.raises(WorkflowConflictError, match="tests.unit:other"):
        begin_workflow(rt.sysdb, rt.executor_id, CHILD, [1], {}, workflow_id="w")


# -- children: replay --------------------------------------------------------------------------


def test_replayed_child_returns_its_recorded_outcome(rt: FakeRuntime) -> None:
    ctx = parent_ctx(rt, {0: child_record(0, output=dumps(5))})
    with running(ctx):
        slot = reserve_child(rt, CHILD.name)
        assert slot is not None and slot.position == 0
        plan = begin_child(rt, slot, 5)
    assert isinstance(plan, Existing)
    assert plan.recorded and plan.workflow_id == f"{PARENT}-1"
    assert plan.outcome is not None and plan.outcome.status == Status.SUCCESS
    assert plan.outcome.result(plan.workflow_id) == 5
    assert sum(rt.db.calls.values()) == 0  # from the parent's loaded rows: no round trip


def test_replayed_child_reraises_its_recorded_error(rt: FakeRuntime) -> None:
    ctx = parent_ctx(rt, {0: child_record(0, error=dumps_error(Boom("child failed")))})
    slot = ChildSlot(ctx, 0, ctx.recorded_at(0))
    plan = begin_child(rt, slot, 5)
    assert isinstance(plan, Existing) and plan.outcome is not None
    assert plan.outcome.status == Status.ERROR
    with pytest.raises(Boom, match="child failed"):
        plan.outcome.result(plan.workflow_id)


def test_replayed_started_child_is_a_handle(rt: FakeRuntime) -> None:
    ctx = parent_ctx(rt, {0: child_record(0)})  # recorded by wf.start: an ID, no result
    plan = begin_child(rt, ChildSlot(ctx, 0, ctx.recorded_at(0)), 5)
    assert isinstance(plan, Existing) and plan.recorded
    assert plan.workflow_id == f"{PARENT}-1" and plan.outcome is None


def test_replayed_child_of_another_function_is_nondeterminism(rt: FakeRuntime) -> None:
    ctx = parent_ctx(rt, {0: child_record(0, name=OTHER.name, output=dumps(1))})
    with pytest.raises(NonDeterminismError, match="position 1"):
        begin_child(rt, ChildSlot(ctx, 0, ctx.recorded_at(0)), 5)
    assert rt.db.calls["insert_workflow"] == 0


# -- children: the derived ID -------------------------------------------------------------------


def test_child_takes_the_derived_id(rt: FakeRuntime, parent: WorkflowContext) -> None:
    reserve_child(rt, "a step's worth")  # position 0 is another call
    slot = reserve_child(rt, CHILD.name)
    assert slot is not None
    plan = begin_child(rt, slot, 5)
    assert isinstance(plan, Started) and plan.ctx.workflow_id == f"{PARENT}-2"
    assert plan.ctx.depth == 1 and (plan.parent, plan.parent_position) == (parent, 1)
    assert rt.db.workflows[f"{PARENT}-2"].parent_workflow_id == PARENT


def test_derived_id_of_the_same_child_is_that_child(
    rt: FakeRuntime, parent: WorkflowContext
) -> None:
    # the child was inserted but the parent's record of it was lost: the
    # parent's next run finds the same child, not a new one
    rt.db.add_workflow(
        f"{PARENT}-1", name=CHILD.name, parent_workflow_id=PARENT, inputs=encode_inputs([5], {})
    )
    plan = begin_child(rt, ChildSlot(parent, 0, None), 5)
    assert isinstance(plan, Existing) and plan.workflow_id == f"{PARENT}-1"
    assert not plan.recorded and plan.outcome is None


@pytest.mark.parametrize(
    ("other_parent", "other_inputs"),
    [("someone-else", encode_inputs([5], {})), (PARENT, encode_inputs([6], {})), (None, None)],
    ids=["another parent", "other inputs", "started by hand"],
)
def test_derived_id_recorded_for_another_workflow_conflicts(
    rt: FakeRuntime, parent: WorkflowContext, other_parent: str | None, other_inputs: str | None
) -> None:
    rt.db.add_workflow(
        f"{PARENT}-1",
        name=CHILD.name,
        parent_workflow_id=other_parent,
        inputs=other_inputs or encode_inputs([5], {}),
    )
    with pytest.raises(WorkflowConflictError, match=rf"child 1 of {PARENT}"):
        begin_child(rt, ChildSlot(parent, 0, None), 5)


# -- children: the inherited deadline --------------------------------------------------------------


@pytest.mark.parametrize(
    ("parent_in", "timeout", "expect"),
    [
        (60_000, None, "parent"),  # no timeout of its own: the parent's
        (60_000, 3600.0, "parent"),  # the parent's is earlier
        (3_600_000, 60.0, "own"),  # its own is earlier
        (None, 60.0, "own"),
        (None, None, "none"),
    ],
)
def test_child_inherits_the_earlier_deadline(
    rt: FakeRuntime,
    parent: WorkflowContext,
    parent_in: int | None,
    timeout: float | None,
    expect: str,
) -> None:
    parent.deadline_ms = now_ms() + parent_in if parent_in is not None else None
    before = now_ms()
    plan = begin_child(rt, ChildSlot(parent, 0, None), 5, timeout=timeout)
    assert isinstance(plan, Started)
    deadline = rt.db.workflows[plan.ctx.workflow_id].deadline
    if expect == "parent":
        assert deadline == parent.deadline_ms
    elif expect == "own":
        assert timeout is not None and deadline is not None
        assert before + timeout * 1000 <= deadline <= now_ms() + timeout * 1000
    else:
        assert deadline is None
    assert plan.ctx.deadline_ms == deadline


def test_queued_child_inherits_the_parent_deadline(
    rt: FakeRuntime, parent: WorkflowContext
) -> None:
    parent.deadline_ms = now_ms() + 60_000
    plan = begin_child(rt, ChildSlot(parent, 0, None), 5, queue="q", timeout=3600)
    assert isinstance(plan, Started)
    row = rt.db.workflows[plan.ctx.workflow_id]
    assert row.status == Status.ENQUEUED and row.executor_id is None
    assert row.deadline == parent.deadline_ms  # its own timeout starts at its dequeue
    assert row.timeout_ms == 3_600_000
    assert plan.ctx.deadline_ms is None  # not run here


# -- children: the parent no longer running here -------------------------------------------------


def test_child_of_a_cancelled_parent_is_never_recorded(
    rt: FakeRuntime, parent: WorkflowContext
) -> None:
    rt.db.update(PARENT, status=Status.CANCELLED)
    with pytest.raises(WorkflowCancelledError, match=PARENT):
        begin_child(rt, ChildSlot(parent, 0, None), 5)
    assert f"{PARENT}-1" not in rt.db.workflows


@pytest.mark.parametrize(
    "change",
    [{"executor_id": "exec-B"}, {"status": Status.SUCCESS}],
    ids=["adopted", "ended"],
)
def test_child_of_a_parent_no_longer_ours_stops_quietly(
    rt: FakeRuntime, parent: WorkflowContext, change: dict[str, Any]
) -> None:
    rt.db.update(PARENT, **change)
    with pytest.raises(_OwnershipLost):
        begin_child(rt, ChildSlot(parent, 0, None), 5)
    assert f"{PARENT}-1" not in rt.db.workflows


# -- start_workflow: a started child is recorded in its parent as a handle ----------------------


def test_started_child_is_submitted_and_recorded_as_a_handle(
    rt: FakeRuntime, parent: WorkflowContext
) -> None:
    parent.deadline_ms = now_ms() + 60_000
    slot = reserve_child(rt, CHILD.name)
    wid, _ = start_workflow(rt, CHILD, [(1, 2)], {}, slot=slot)
    assert wid == f"{PARENT}-1"
    [sub] = rt.submitted
    assert (sub.workflow_id, sub.args, sub.deadline_ms) == (wid, [(1, 2)], parent.deadline_ms)
    rec = rt.db.steps[(PARENT, 0)]
    assert (rec.kind, rec.name, rec.child_workflow_id) == ("child", CHILD.name, wid)
    assert rec.output is None and rec.error is None
    # the parent's replay gets the same handle back, submitting nothing
    replay = parent_ctx(rt, {0: rec})
    with running(replay):
        again, _ = start_workflow(rt, CHILD, [(1, 2)], {}, slot=reserve_child(rt, CHILD.name))
    assert again == wid and len(rt.submitted) == 1


# -- waiting for an outcome ------------------------------------------------------------------------


def test_wait_outcome(rt: FakeRuntime) -> None:
    rt.db.add_workflow("done", status=Status.SUCCESS)
    rt.db.update("done", output=dumps([1]))
    out = wait_outcome(rt.sysdb, "done", None, rt)
    assert out.result("done") == [1] and rt.waits == 1  # its pool slot freed while it waits
    with pytest.raises(WorkflowNotFoundError):
        wait_outcome(rt.sysdb, "missing", 1, None)
    rt.db.add_workflow("running")
    with pytest.raises(AwaitTimeoutError):
        wait_outcome(rt.sysdb, "running", 0.05, None)
