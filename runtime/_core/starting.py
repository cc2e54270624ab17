"""Starting a workflow: recording it (or finding it recorded — the ID is the
idempotency key), as a child of the workflow calling it or on its own, and
handing a fresh one to the executor to run."""

from __future__ import annotations

import logging
import uuid
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._context import (
    WorkflowContext,
    take_assigned_id,
    workflow_here,
)
from .._errors import (
    ConfigurationError,
    WfError,
    WorkflowConflictError,
)
from .._records import Status
from .._registry import WorkflowSpec
from .._serialization import dumps, loads
from .._sysdb import StepRow, now_ms
from .recording import (
    Finished,
    begin_call,
    check_determinism,
    record,
    resolve_refused,
)
from .runs import Outcome
from .wakeups import wake_dequeuers

if TYPE_CHECKING:
    from .._sysdb import SystemDatabase
    from .runtime import Runtime

log = logging.getLogger("wf")


@dataclass
class Started:
    """A workflow row we inserted: we run the body."""

    ctx: WorkflowContext
    parent: WorkflowContext | None
    parent_position: int | None
    inputs: str

    def decoded_args(self) -> tuple[list[Any], dict[str, Any]]:
        """The inputs as recorded and read back: the body sees on its first
        run exactly what it will see on a replay."""
        d = loads(self.inputs)
        return list(d["args"]), dict(d["kwargs"])


@dataclass
class Existing:
    """The ID was recorded already (or the call is replayed): no new run."""

    workflow_id: str
    outcome: Outcome | None  # known now (replayed child), else wait for it
    parent: WorkflowContext | None = None
    parent_position: int | None = None
    recorded: bool = False  # the parent already holds this call's record


@dataclass(frozen=True)
class Debounce:
    """Enqueues with one ``key`` on a queue collapse into the workflow that
    waits for them: each pushes its start ``window_ms`` later (never past
    ``max_wait_ms`` after the first) and gives it its arguments."""

    key: str
    window_ms: int
    max_wait_ms: int | None = None

    @staticmethod
    def of(
        key: str | None,
        window: float | None,
        max_wait: float | None,
        delay: float | None,
        dedup_id: str | None,
    ) -> Debounce:
        if not isinstance(key, str) or not key:
            raise ConfigurationError("debounce needs a debounce_key (a non-empty string)")
        if window is None or window <= 0:
            raise ConfigurationError("debounce_key needs debounce=SECONDS (> 0)")
        if max_wait is not None and max_wait < window:
            raise ConfigurationError("debounce_max_wait must be >= debounce")
        if delay is not None or dedup_id is not None:
            raise ConfigurationError("a debounced enqueue takes neither delay nor dedup_id")
        return Debounce(key, int(window * 1000), None if max_wait is None else int(max_wait * 1000))


def enqueue_options(
    on_duplicate: str,
    partition_key: str | None,
    debounce_key: str | None,
    debounce: float | None,
    debounce_max_wait: float | None,
    delay: float | None,
    dedup_id: str | None,
) -> Debounce | None:
    """The checks of an enqueue's partition, debounce and duplicate options
    (``Queue.enqueue`` and ``wf.Client.enqueue`` alike); the debounce, if any."""
    if on_duplicate not in ("raise", "return"):
        raise ConfigurationError(f"on_duplicate is 'raise' or 'return', not {on_duplicate!r}")
    if partition_key is not None and (not isinstance(partition_key, str) or not partition_key):
        raise ConfigurationError("a partition_key is a non-empty string")
    if debounce_key is None and debounce is None:
        return None
    return Debounce.of(debounce_key, debounce, debounce_max_wait, delay, dedup_id)


MAX_ID_BYTES = 1024
MAX_CHILD_DEPTH = 100
# a debounced or deduplicated enqueue that keeps losing races to peers gives up
MAX_ENQUEUE_RACES = 20


def check_workflow_id(workflow_id: str) -> None:
    """IDs are keys of indexed columns: bounded, so a huge one is refused
    up front instead of failing inside the database."""
    if not isinstance(workflow_id, str) or not workflow_id:
        raise ConfigurationError("a workflow ID is a non-empty string")
    n = len(workflow_id.encode("utf-8", "surrogatepass"))
    if n > MAX_ID_BYTES:
        raise ConfigurationError(f"workflow ID is too long ({n:,} bytes; at most {MAX_ID_BYTES:,})")


def encode_inputs(args: tuple[Any, ...] | list[Any], kwargs: dict[str, Any]) -> str:
    return dumps({"args": list(args), "kwargs": kwargs})


@dataclass
class ChildSlot:
    """The position a child workflow (or a restart) takes in its parent,
    reserved in the parent's own thread, in call order."""

    parent: WorkflowContext
    position: int
    recorded: StepRow | None

    @property
    def derived_id(self) -> str:
        return f"{self.parent.workflow_id}-{self.position + 1}"


def reserve_child(ex: Runtime | None, name: str) -> ChildSlot | None:
    """Inside a workflow body: the next position, for a child called ``name``.
    Outside one (or inside a step): None, the workflow is not a child."""
    parent = workflow_here()
    if parent is None or ex is None:
        return None
    pos, rec = begin_call(ex, parent, name, "child")
    return ChildSlot(parent, pos, rec)


def begin_workflow(
    sysdb: SystemDatabase,
    executor_id: str | None,
    spec: WorkflowSpec,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    slot: ChildSlot | None = None,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    priority: int = 0,
    dedup_id: str | None = None,
    delay: float | None = None,
    partition_key: str | None = None,
    debounce: Debounce | None = None,
    on_duplicate: str = "raise",
) -> Started | Existing:
    """Record a new workflow (or find the recorded one with this ID). A child
    (``slot``) is inserted only while its parent is still running here, so a
    child called after its parent was cancelled never runs. A debounced
    enqueue (``debounce``) may instead join the workflow waiting for its key;
    ``on_duplicate="return"``: a live workflow with ``dedup_id`` is returned."""
    inputs = encode_inputs(args, kwargs)  # SerializationError before anything is written
    parent = slot.parent if slot is not None else None
    parent_position = slot.position if slot is not None else None
    wid = workflow_id or take_assigned_id()
    if slot is not None and slot.recorded is not None:
        rec = slot.recorded
        check_determinism(slot.parent, slot.position, rec, spec.name, "child")
        cid = rec.child_workflow_id or slot.derived_id
        if rec.output is None and rec.error is None:  # recorded by wf.start: a handle
            return Existing(cid, None, parent, parent_position, recorded=True)
        status = Status.ERROR if rec.error is not None else Status.SUCCESS
        return Existing(
            cid, Outcome(status, rec.output, rec.error), parent, parent_position, recorded=True
        )
    derived = wid is None and slot is not None
    if slot is not None and wid is None:
        wid = slot.derived_id
    if wid is None:
        wid = str(uuid.uuid4())
    check_workflow_id(wid)
    if parent is not None and parent.depth >= MAX_CHILD_DEPTH:
        raise WfError(
            f"child workflows nested deeper than {MAX_CHILD_DEPTH} levels (runaway recursion?)"
        )
    status = Status.PENDING if queue is None else Status.ENQUEUED
    if status == Status.PENDING and executor_id is None:
        raise WfError("internal: a workflow run here needs an executor")
    now = now_ms()
    deadline = now + int(timeout * 1000) if timeout is not None and queue is None else None
    if parent is not None and parent.deadline_ms is not None:
        # SPEC §3: past its timeout a workflow *and its children* are cancelled,
        # also those still running or queued when the parent has ended
        deadline = parent.deadline_ms if deadline is None else min(deadline, parent.deadline_ms)

    def insert() -> bool:
        return sysdb.insert_workflow(
            workflow_id=wid,
            status=status,
            name=spec.name,
            inputs=inputs,
            executor_id=executor_id if status == Status.PENDING else None,
            queue=queue,
            priority=priority,
            dedup_id=dedup_id,
            parent_workflow_id=parent.workflow_id if parent else None,
            parent_executor_id=parent.executor_id if parent else None,
            parent_run_token=parent.run_token if parent else None,
            max_recovery_attempts=spec.max_recovery_attempts,
            timeout=timeout,
            deadline=deadline,
            delay=debounce.window_ms / 1000 if debounce is not None else delay,
            now=now,
            partition_key=partition_key,
            debounce_key=debounce.key if debounce is not None else None,
            debounce_until=(
                now + debounce.max_wait_ms
                if debounce is not None and debounce.max_wait_ms is not None
                else None
            ),
        )

    if debounce is not None or (dedup_id is not None and on_duplicate == "return"):
        assert queue is not None, "only a queued workflow is debounced or deduplicated"
        joined, inserted = _join_or_insert(
            sysdb, spec.name, queue, inputs, debounce, dedup_id, insert, partition_key, priority
        )
        if joined is not None:
            return Existing(joined, None, parent, parent_position)
    else:
        inserted = insert()
    if not inserted:
        row = sysdb.get_workflow(wid)
        if row is None:
            if parent is not None:  # refused: the parent is no longer running here
                resolve_refused(sysdb, parent)
            raise WfError(f"workflow {wid} vanished while starting")
        if row.name != spec.name:
            raise WorkflowConflictError(
                f"workflow ID {wid!r} is already recorded for {row.name}, not {spec.name}"
            )
        if (
            derived
            and parent is not None
            and (row.parent_workflow_id != parent.workflow_id or row.inputs != inputs)
        ):
            # the derived ID names another workflow (started by hand, or by
            # another parent): never hand its result to this call
            raise WorkflowConflictError(
                f"workflow ID {wid!r} (child {parent_position + 1 if parent_position is not None else '?'} "
                f"of {parent.workflow_id}) is already recorded for another workflow"
            )
        return Existing(wid, None, parent, parent_position)
    ctx = WorkflowContext(
        workflow_id=wid,
        name=spec.name,
        executor_id=executor_id or "",
        run_token=now,  # the row's created_at
        deadline_ms=deadline if status == Status.PENDING else None,
        depth=parent.depth + 1 if parent is not None else 0,
    )
    return Started(ctx, parent, parent_position, inputs)


def _join_or_insert(
    sysdb: SystemDatabase,
    name: str,
    queue: str,
    inputs: str,
    debounce: Debounce | None,
    dedup_id: str | None,
    insert: Any,
    partition_key: str | None = None,
    priority: int = 0,
) -> tuple[str | None, bool]:
    """(the live workflow this enqueue joins, or None and whether ``insert``
    inserted). A peer may insert, dequeue or end the workflow at any moment:
    each attempt is one conditional statement, retried on a lost race. The
    live workflow must be of the same function (a debounced one also of the
    same partition and priority): else WorkflowConflictError."""
    from .._errors import QueueDedupError

    for _ in range(MAX_ENQUEUE_RACES):
        if debounce is not None:
            found = sysdb.extend_debounced(
                queue, debounce.key, name, inputs, debounce.window_ms, partition_key, priority
            )
            if found is not None:
                return found, False
        elif dedup_id is not None:
            live = sysdb.live_dedup(queue, dedup_id)
            if live is not None:
                if live[1] != name:
                    raise WorkflowConflictError(
                        f"dedup_id {dedup_id!r} on queue {queue!r} belongs to live workflow "
                        f"{live[0]} of {live[1]}, not {name}"
                    )
                return live[0], False
        try:
            return None, insert()
        except QueueDedupError:
            if debounce is not None:
                waiting = sysdb.debounce_waiting(queue, debounce.key)
                if waiting is not None:
                    conflict = _not_joinable(
                        queue, debounce.key, name, partition_key, priority, waiting
                    )
                    if conflict is not None:
                        raise conflict from None
            continue  # a peer inserted first: join it
    raise WfError(f"enqueue on queue {queue!r} kept losing races to other enqueuers; try again")


def _not_joinable(
    queue: str,
    key: str,
    name: str,
    partition_key: str | None,
    priority: int,
    waiting: tuple[str, str | None, int],
) -> WorkflowConflictError | None:
    """Why this debounced enqueue may not join the ``waiting`` workflow (its
    function, partition key, priority), if it may not: a joining enqueue
    keeps those, taking only the last call's arguments."""
    w_name, w_partition, w_priority = waiting
    if w_name != name:
        return WorkflowConflictError(
            f"debounce_key {key!r} on queue {queue!r} is waiting for {w_name}, not {name}"
        )
    differs = []
    if w_partition != partition_key:
        differs.append(f"partition_key {w_partition!r} (not {partition_key!r})")
    if w_priority != priority:
        differs.append(f"priority {w_priority} (not {priority})")
    if not differs:
        return None
    return WorkflowConflictError(
        f"debounce_key {key!r} on queue {queue!r} is waiting with {' and '.join(differs)}: "
        "an enqueue joining it keeps its partition_key and priority, so it must pass the "
        "same ones (or another debounce_key)"
    )


def start_workflow(
    ex: Runtime | None,
    spec: WorkflowSpec,
    args: tuple[Any, ...] | list[Any],
    kwargs: dict[str, Any],
    *,
    sysdb: SystemDatabase | None = None,
    slot: ChildSlot | None = None,
    workflow_id: str | None = None,
    queue: str | None = None,
    timeout: float | None = None,
    priority: int = 0,
    dedup_id: str | None = None,
    delay: float | None = None,
    partition_key: str | None = None,
    debounce: Debounce | None = None,
    on_duplicate: str = "raise",
) -> tuple[str, Future[Outcome | None] | None]:
    """Record a workflow and run it in the background on ``ex`` (or leave it
    on ``queue``); returns its ID and the run it began here, if it began one
    (a handle awaits a SUCCESS there without reading it back). Inside a
    workflow (``slot``) the parent records the started child's ID, so a
    replay gets the same handle back. ``ex`` may be None only to enqueue
    (``sysdb`` then says where)."""
    run: Future[Outcome | None] | None = None
    db = ex.sysdb if ex is not None else sysdb
    assert db is not None
    plan = begin_workflow(
        db,
        ex.executor_id if ex is not None else None,
        spec,
        args,
        kwargs,
        slot=slot,
        workflow_id=workflow_id,
        queue=queue,
        timeout=timeout,
        priority=priority,
        dedup_id=dedup_id,
        delay=delay,
        partition_key=partition_key,
        debounce=debounce,
        on_duplicate=on_duplicate,
    )
    if isinstance(plan, Existing):
        wid = plan.workflow_id
        parent, pos, recorded = plan.parent, plan.parent_position, plan.recorded
    else:
        wid = plan.ctx.workflow_id
        parent, pos, recorded = plan.parent, plan.parent_position, False
        if queue is None:
            assert ex is not None
            a, kw = plan.decoded_args()
            run = ex.submit(
                spec, wid, a, kw, deadline_ms=plan.ctx.deadline_ms, run_token=plan.ctx.run_token
            )
    if parent is not None and pos is not None and not recorded:
        assert ex is not None
        recorded_id = record_started(ex, parent, pos, spec.name, wid)
        if recorded_id != wid:
            wid, run = recorded_id, None  # the parent holds another child here
    if queue is not None:
        wake_dequeuers()
    return wid, run


def record_started(ex: Runtime, parent: WorkflowContext, pos: int, name: str, wid: str) -> str:
    """The parent records a started child's (or a restart's) ID, no result:
    a replay gets the handle back. Returns the recorded ID."""
    found = record(ex, parent, pos, Finished(name, "child", None, None, now_ms(), wid))
    return wid if found is None else found.child_workflow_id or wid
