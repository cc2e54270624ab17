"""Per-call state: which workflow is running in this thread/task and where it is."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._errors import WfError

if TYPE_CHECKING:
    from ._sysdb import StepRow


@dataclass
class StepState:
    """The step or transaction running now in this task or thread. Kept in a
    context variable, not on the workflow, so steps started together
    (``asyncio.gather``) each have their own."""

    name: str
    position: int
    log_seq: int = 0  # its durable log lines, keyed (position, seq)
    # inside a transaction, log rows wait here and are written after it ends:
    # written beside it they would queue behind its own write lock on SQLite
    held_logs: list[tuple[Any, ...]] | None = None
    attempts: int = 1  # a retried step's attempt number, recorded with it


_step: ContextVar[StepState | None] = ContextVar("wf_step", default=None)


def current_step() -> StepState | None:
    return _step.get()


@contextlib.contextmanager
def in_step(name: str, position: int) -> Iterator[StepState]:
    state = StepState(name, position)
    token = _step.set(state)
    try:
        yield state
    finally:
        _step.reset(token)


@dataclass
class WorkflowContext:
    workflow_id: str
    name: str
    executor_id: str
    # the row this run was started on: its created_at. Every write of the run
    # is conditional on it (and on executor_id), so a run whose workflow was
    # deleted writes nothing into a workflow recorded later under its ID
    run_token: int | None = None
    # recorded calls by 0-based position; None for a fresh workflow (nothing to
    # look up, so the hot path skips the lookup entirely)
    recorded: dict[int, StepRow] | None = None
    deadline_ms: int | None = None
    next_position: int = 0
    # durable-log keys: (position, seq) is unique per workflow, so a replayed
    # log line maps onto the row it wrote the first time
    log_position: int = 0
    log_seq: int = 0
    depth: int = 0  # how many parent workflows call this one inline
    # the executor running this workflow: its calls go through it even if the
    # process has shut it down (then they stop) or launched another since
    executor: Any = None
    # the thread the body runs in (the event loop's, for an async workflow):
    # positions are taken there, in call order, so a replay maps each call
    # onto its record
    owner_thread: int = 0
    # armed when the run starts; fires when a cancel of this workflow is
    # announced (in-process, or by NOTIFY from another process)
    cancel_watch: Any = None
    cancelled: bool = False  # seen cancelled: every later call refuses at once
    # a dry replay (wf.replay): recorded calls replay, nothing runs or is written
    dry: bool = False

    def take_position(self) -> int:
        p = self.next_position
        self.next_position += 1
        self.log_position = p + 1
        self.log_seq = 0
        return p

    def recorded_at(self, position: int) -> StepRow | None:
        return self.recorded.get(position) if self.recorded else None


current: ContextVar[WorkflowContext | None] = ContextVar("wf_workflow", default=None)
_next_id: ContextVar[str | None] = ContextVar("wf_next_workflow_id", default=None)


def workflow_here() -> WorkflowContext | None:
    """The workflow whose body runs here: None outside any workflow and inside
    a step or transaction (whose calls are plain, unrecorded calls)."""
    ctx = current.get()
    if ctx is None or _step.get() is not None:
        return None
    return ctx


# the connection of the @wf.transaction running here, for wf.db()
tx_connection: ContextVar[Any] = ContextVar("wf_tx_conn", default=None)


def workflow_id() -> str:
    """The ID of the workflow running here."""
    ctx = current.get()
    if ctx is None:
        raise WfError("wf.workflow_id() called outside a workflow")
    return ctx.workflow_id


@contextlib.contextmanager
def set_workflow_id(workflow_id: str) -> Iterator[None]:
    """Give the next workflow started in this block the ID ``workflow_id``."""
    if not isinstance(workflow_id, str) or not workflow_id:
        raise WfError("workflow IDs are non-empty strings")
    token = _next_id.set(workflow_id)
    try:
        yield
    finally:
        _next_id.reset(token)


def take_assigned_id() -> str | None:
    """The ID set by set_workflow_id, consumed by the first workflow started."""
    wid = _next_id.get()
    if wid is not None:
        _next_id.set(None)
    return wid
