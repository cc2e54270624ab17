"""Patches: changing a workflow's code while runs recorded by the old code are
in flight (``wf.patched`` / ``wf.deprecated_patch``).

A patch is a recorded call of kind ``patch`` named by its change ID. A run
that reaches ``patched(id)`` with nothing recorded there records the marker
and takes the new branch; a replay finds the marker and takes it again. A
replay that finds another call recorded there was recorded before the change:
it takes the old branch, and the check takes no position, so the old run's
records stay where its calls expect them. Every other kind of call steps over
patch markers (``begin_call``), so a patch check can be deleted from the code
once no run that predates it is left."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._context import WorkflowContext
from .._errors import NonDeterminismError, WfError, _ReplayEnd
from .._serialization import dumps
from .._sysdb import now_ms
from .control import check_live
from .recording import PATCH, Finished, record

if TYPE_CHECKING:
    from .runtime import Runtime


def _check_id(change_id: str) -> None:
    if not isinstance(change_id, str) or not change_id.strip():
        raise WfError("a patch's change ID is a non-empty string")


def _find_marker(ctx: WorkflowContext, change_id: str) -> int | None:
    """The position of ``change_id``'s marker among the patch markers recorded
    from the next position on (consecutive ones only), else None."""
    pos = ctx.next_position
    while True:
        rec = ctx.recorded_at(pos)
        if rec is None or rec.kind != PATCH:
            return None
        if rec.name == change_id:
            return pos
        pos += 1


def patched(ex: Runtime, ctx: WorkflowContext, change_id: str) -> bool:
    """True: take the new code's branch (a first run through here, or a
    replay of a run that did); False: the run was recorded before the change."""
    _check_id(change_id)
    check_live(ex, ctx)
    found = _find_marker(ctx, change_id)
    if found is not None:
        while ctx.next_position <= found:
            ctx.take_position()
        return True
    if ctx.recorded_at(ctx.next_position) is not None:
        return False  # another call is recorded here: the old code's run
    _mark(ex, ctx, change_id)
    return True


def deprecated_patch(ex: Runtime, ctx: WorkflowContext, change_id: str) -> None:
    """The old branch of ``change_id`` is gone: a replay of a run recorded
    before the change cannot go on, and says so."""
    _check_id(change_id)
    check_live(ex, ctx)
    found = _find_marker(ctx, change_id)
    if found is not None:
        while ctx.next_position <= found:
            ctx.take_position()
        return
    rec = ctx.recorded_at(ctx.next_position)
    if rec is not None:
        raise NonDeterminismError(
            f"workflow {ctx.workflow_id} position {ctx.next_position + 1}: recorded "
            f"{rec.kind} {rec.name!r} by code older than change {change_id!r}, whose old branch "
            f"this code no longer has (wf.deprecated_patch({change_id!r})): run it on the "
            "release that has wf.patched() for this change, or cancel it"
        )
    _mark(ex, ctx, change_id)


def _mark(ex: Runtime, ctx: WorkflowContext, change_id: str) -> None:
    pos = ctx.take_position()
    if ctx.dry:
        raise _ReplayEnd(pos, change_id, PATCH)
    found = record(ex, ctx, pos, Finished(change_id, PATCH, dumps(True), None, now_ms()))
    if found is not None and (found.kind != PATCH or found.name != change_id):
        raise NonDeterminismError(
            f"workflow {ctx.workflow_id} position {pos + 1}: recorded {found.kind} "
            f"{found.name!r}, this code called patch {change_id!r}"
        )
