"""The public error hierarchy: every error wf raises on purpose is a WfError."""

from __future__ import annotations


class WfError(Exception):
    """Base class of all wf errors."""


class WorkflowConflictError(WfError):
    """A workflow ID is already recorded for another function."""


class NonDeterminismError(WfError):
    """On replay, a call differs from the one recorded at that position."""


class WorkflowCancelledError(WfError):
    """The workflow was cancelled (by wf.cancel, a parent's cancel, or its timeout)."""


class WorkflowNotFoundError(WfError):
    """No workflow is recorded under this ID."""


class SerializationError(WfError):
    """A value cannot be stored as wf's JSON."""


class RetriesExceededError(WfError):
    """The workflow was recovered more than max_recovery_attempts times."""


class DatabaseUnreachableError(WfError):
    """The system database cannot be reached."""


class NoDatabaseError(DatabaseUnreachableError):
    """A read found no wf database (or no wf schema) at the URL; reads never create one."""


class ConfigurationError(WfError):
    """Bad configuration: a malformed URL, an unknown option value."""


class WorkflowFailedError(WfError):
    """Stands in for a recorded error whose class cannot be rebuilt in this process."""

    def __init__(self, type_name: str, message: str) -> None:
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message


class QueueDedupError(WfError):
    """A workflow with this dedup_id is already enqueued or running on the queue."""


class AwaitTimeoutError(WfError, TimeoutError):
    """handle.result(timeout=...) ran out of time; the workflow goes on."""


class _OwnershipLost(BaseException):
    """Internal: another executor owns this workflow now; stop quietly.

    A BaseException so a user's ``except Exception`` cannot swallow it."""


class _ReplayEnd(BaseException):
    """Internal: a dry replay (``wf.replay``) reached a call its record does
    not have; it stops there instead of running it. A BaseException so the
    workflow's own ``except Exception`` cannot swallow it."""

    def __init__(self, position: int, name: str, kind: str) -> None:
        super().__init__(position, name, kind)
        self.position, self.name, self.kind = position, name, kind
