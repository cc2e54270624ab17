"""Cancellation and deadlines: cancelling a tree of workflows, and the cheap
check before every call (shutdown, deadline, an announced cancel)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._context import (
    WorkflowContext,
)
from .._errors import (
    WorkflowCancelledError,
    _OwnershipLost,
)
from .._records import Status
from .._sysdb import now_ms, wake_key
from .wakeups import notify_local

if TYPE_CHECKING:
    from .._sysdb import SystemDatabase
    from .runtime import Runtime

log = logging.getLogger("wf")


# -- cancellation and deadlines ---------------------------------------------------------------


# the recorded reasons of cancels wf makes itself (a user's wf.cancel gives its own)
TIMED_OUT = "timeout: the workflow's deadline passed"
BY_API = "wf.cancel"


def cancel_tree(db: SystemDatabase, workflow_id: str, reason: str = BY_API) -> None:
    """Cancel a workflow and, recursively, its children, recording why; runs
    in this process see it before their next call (other processes through
    NOTIFY)."""
    todo = [(workflow_id, reason)]
    seen: set[str] = set()
    while todo:
        wid, why = todo.pop()
        if wid in seen:
            continue
        seen.add(wid)
        db.cancel_workflow(wid, why)
        notify_local(wake_key("w", wid))
        notify_local(wake_key("c", wid))
        todo.extend((child, f"parent {wid} was cancelled") for child in db.children_of(wid))


def check_live(ex: Runtime, ctx: WorkflowContext) -> None:
    """Before a call: shutdown, the deadline, and a cancel announced for this
    workflow. No round trip unless a cancel was announced."""
    if ex.stopping.is_set():
        raise _OwnershipLost()
    if ctx.cancelled:  # the body caught the cancellation and called on
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
    if ctx.deadline_ms is not None and now_ms() > ctx.deadline_ms:
        cancel_tree(ex.sysdb, ctx.workflow_id, TIMED_OUT)
        ctx.cancelled = True
        raise WorkflowCancelledError(f"workflow {ctx.workflow_id} timed out")
    watch = ctx.cancel_watch
    if watch is not None and watch.fired():
        watch.arm()
        out = ex.sysdb.get_outcome(ctx.workflow_id)
        if out is not None and out[0] == Status.CANCELLED:
            ctx.cancelled = True
            raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")
