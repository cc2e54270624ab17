"""Upgrading workflow code while runs of it are in flight: ``wf.patched`` and
``wf.deprecated_patch`` inside a workflow, and ``wf.replay``, which checks a
recorded workflow against today's code without running or writing anything.
(Application versions, the other half, are a setting: ``app_version``.)"""

from __future__ import annotations

from . import _root
from ._context import workflow_here
from ._core import deprecated_patch as _deprecated_patch
from ._core import dry_replay
from ._core import patched as _patched
from ._errors import ConfigurationError, WfError, WorkflowNotFoundError
from ._records import ReplayInfo
from ._registry import find_or_import_workflow


def patched(change_id: str) -> bool:
    """Inside a workflow: True where this code's change ``change_id`` applies
    (a run reaching this point for the first time, or a replay of one that
    did), False when replaying a run recorded before the change. Recorded
    (kind ``patch``), so replays and recovery take the same branch again."""
    ctx = workflow_here()
    if ctx is None:
        raise WfError("wf.patched() is called in a workflow's body")
    return _patched(_root.for_call(), ctx, change_id)


def deprecated_patch(change_id: str) -> None:
    """Inside a workflow, once the old branch of ``change_id`` is deleted: a
    run recorded before the change fails here with NonDeterminismError
    (instead of replaying into code it never ran); others go on."""
    ctx = workflow_here()
    if ctx is None:
        raise WfError("wf.deprecated_patch() is called in a workflow's body")
    _deprecated_patch(_root.for_call(), ctx, change_id)


def replay(workflow_id: str) -> ReplayInfo:
    """Run today's code against the recorded workflow ``workflow_id``: every
    recorded call returns its recorded value, no step runs, nothing is
    written. NonDeterminismError at the first difference (a call, the
    outcome, or recorded calls the code no longer makes)."""
    db = _root.client()
    row = db.get_workflow(workflow_id)
    if row is None:
        raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
    spec = find_or_import_workflow(row.name)
    if spec is None:
        raise ConfigurationError(
            f"workflow function {row.name} is not defined in module {row.name.partition(':')[0]}"
        )
    result = dry_replay(db, spec, row)
    return ReplayInfo(row.workflow_id, row.name, row.status, result.calls, result.complete)
