"""wf: durable workflows for Python.

The public surface is re-exported here from private implementation modules
(``tests/unit/test_public_api.py`` guards it). Names load on first use, so
``import wf`` (and ``wf --help``) does not import SQLAlchemy or psycopg."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._api import (
        RecoveryResult,
        cancel,
        migrate,
        recover,
        restart,
        resume,
        retrieve,
        schema_status,
        start,
        start_async,
    )
    from ._comm import (
        get_event,
        get_event_async,
        recv,
        recv_async,
        send,
        send_async,
        set_event,
        set_event_async,
        sleep,
        sleep_async,
    )
    from ._context import (
        set_workflow_id,
        workflow_id,
    )
    from ._decorators import (
        communicator,
        db,
        step,
        transaction,
        workflow,
    )
    from ._errors import (
        AwaitTimeoutError,
        ConfigurationError,
        DatabaseUnreachableError,
        NoDatabaseError,
        NonDeterminismError,
        QueueDedupError,
        RetriesExceededError,
        SerializationError,
        WfError,
        WorkflowCancelledError,
        WorkflowConflictError,
        WorkflowFailedError,
        WorkflowNotFoundError,
    )
    from ._handles import (
        WorkflowHandle,
    )
    from ._inspect import (
        count_workflows,
        get_workflow,
        list_events,
        list_executors,
        list_logs,
        list_queues,
        list_schedules,
        list_steps,
        list_workflows,
    )
    from ._logging import (
        logger,
    )
    from ._queues import (
        Queue,
    )
    from ._records import (
        ErrorInfo,
        EventInfo,
        ExecutorInfo,
        LogRecord,
        QueueInfo,
        ScheduleInfo,
        SchemaStatus,
        Status,
        StepInfo,
        WorkflowInfo,
    )
    from ._root import (
        configure,
        launch,
        shutdown,
    )
    from ._schedules import (
        scheduled,
    )

_SOURCES: dict[str, str] = {
    "count_workflows": "._inspect",
    "list_events": "._inspect",
    "list_executors": "._inspect",
    "list_schedules": "._inspect",
    "EventInfo": "._records",
    "ExecutorInfo": "._records",
    "ScheduleInfo": "._records",
    "NoDatabaseError": "._errors",
    "AwaitTimeoutError": "._errors",
    "ConfigurationError": "._errors",
    "DatabaseUnreachableError": "._errors",
    "ErrorInfo": "._records",
    "LogRecord": "._records",
    "NonDeterminismError": "._errors",
    "Queue": "._queues",
    "QueueDedupError": "._errors",
    "QueueInfo": "._records",
    "RecoveryResult": "._api",
    "RetriesExceededError": "._errors",
    "SchemaStatus": "._records",
    "SerializationError": "._errors",
    "Status": "._records",
    "StepInfo": "._records",
    "WfError": "._errors",
    "WorkflowCancelledError": "._errors",
    "WorkflowConflictError": "._errors",
    "WorkflowFailedError": "._errors",
    "WorkflowHandle": "._handles",
    "WorkflowInfo": "._records",
    "WorkflowNotFoundError": "._errors",
    "cancel": "._api",
    "communicator": "._decorators",
    "configure": "._root",
    "db": "._decorators",
    "get_event": "._comm",
    "get_event_async": "._comm",
    "recv_async": "._comm",
    "send_async": "._comm",
    "set_event_async": "._comm",
    "sleep_async": "._comm",
    "get_workflow": "._inspect",
    "launch": "._root",
    "list_logs": "._inspect",
    "list_queues": "._inspect",
    "list_steps": "._inspect",
    "list_workflows": "._inspect",
    "logger": "._logging",
    "migrate": "._api",
    "recover": "._api",
    "recv": "._comm",
    "restart": "._api",
    "resume": "._api",
    "retrieve": "._api",
    "scheduled": "._schedules",
    "schema_status": "._api",
    "send": "._comm",
    "set_event": "._comm",
    "set_workflow_id": "._context",
    "shutdown": "._root",
    "sleep": "._comm",
    "start": "._api",
    "start_async": "._api",
    "step": "._decorators",
    "transaction": "._decorators",
    "workflow": "._decorators",
    "workflow_id": "._context",
}

__all__ = [
    "AwaitTimeoutError",
    "ConfigurationError",
    "DatabaseUnreachableError",
    "ErrorInfo",
    "EventInfo",
    "ExecutorInfo",
    "LogRecord",
    "NoDatabaseError",
    "NonDeterminismError",
    "Queue",
    "QueueDedupError",
    "QueueInfo",
    "RecoveryResult",
    "RetriesExceededError",
    "ScheduleInfo",
    "SchemaStatus",
    "SerializationError",
    "Status",
    "StepInfo",
    "WfError",
    "WorkflowCancelledError",
    "WorkflowConflictError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowNotFoundError",
    "cancel",
    "communicator",
    "configure",
    "count_workflows",
    "db",
    "get_event",
    "get_event_async",
    "get_workflow",
    "launch",
    "list_events",
    "list_executors",
    "list_logs",
    "list_queues",
    "list_schedules",
    "list_steps",
    "list_workflows",
    "logger",
    "migrate",
    "recover",
    "recv",
    "recv_async",
    "restart",
    "resume",
    "retrieve",
    "scheduled",
    "schema_status",
    "send",
    "send_async",
    "set_event",
    "set_event_async",
    "set_workflow_id",
    "shutdown",
    "sleep",
    "sleep_async",
    "start",
    "start_async",
    "step",
    "transaction",
    "workflow",
    "workflow_id",
]


def __getattr__(name: str) -> Any:
    source = _SOURCES.get(name)
    if source is None:
        raise AttributeError(f"module 'wf' has no attribute {name!r}")
    value = getattr(importlib.import_module(source, __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
