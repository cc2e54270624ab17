"""The public surface of `import wf`: what users and the CLI rely on. A name
removed or renamed here is a breaking change and should fail loudly."""

from __future__ import annotations

import inspect

import wf

EXPECTED = {
    # decorators and context
    "workflow", "step", "communicator", "transaction", "scheduled", "db", "logger",
    "workflow_id", "set_workflow_id",
    # running and handles
    "start", "start_async", "retrieve", "WorkflowHandle", "sleep",
    "send", "recv", "set_event", "get_event", "Queue",
    "sleep_async", "send_async", "recv_async", "set_event_async", "get_event_async",
    # management (the CLI's calls)
    "cancel", "resume", "restart", "recover", "RecoveryResult", "list_workflows", "list_steps",
    "list_logs", "list_queues", "get_workflow", "migrate", "schema_status",
    "count_workflows", "list_events", "list_executors", "list_schedules",
    "launch", "shutdown", "configure",
    # clients without the workflow code
    "Client", "AsyncClient",
    # retention and moving workflows
    "delete", "gc", "export_workflows", "import_workflows",
    "WorkflowActiveError", "InvalidExportError",
    # upgrading code under in-flight workflows
    "patched", "deprecated_patch", "replay", "ReplayInfo",
    # streams
    "write_stream", "close_stream", "read_stream", "write_stream_async", "close_stream_async",
    "read_stream_async", "StreamReader", "StreamEntry",
    # schedules stored at run time
    "create_schedule", "pause_schedule", "resume_schedule", "delete_schedule",
    "trigger_schedule", "backfill_schedule",
    # records
    "WorkflowInfo", "StepInfo", "LogRecord", "QueueInfo", "SchemaStatus", "ErrorInfo", "Status",
    "EventInfo", "ExecutorInfo", "ScheduleInfo",
    # errors
    "WfError", "WorkflowConflictError", "NonDeterminismError", "WorkflowCancelledError",
    "WorkflowNotFoundError", "SerializationError", "RetriesExceededError", "AwaitTimeoutError",
    "ConfigurationError", "DatabaseUnreachableError", "WorkflowFailedError", "QueueDedupError",
    "NoDatabaseError",
}  # fmt: skip


def test_all_is_exactly_the_public_surface() -> None:
    assert set(wf.__all__) == EXPECTED
    for name in EXPECTED:
        assert hasattr(wf, name), name


def test_errors_are_wf_errors() -> None:
    for name in EXPECTED:
        obj = getattr(wf, name)
        if inspect.isclass(obj) and issubclass(obj, Exception):
            assert issubclass(obj, wf.WfError), name


def test_communicator_is_step() -> None:
    assert wf.communicator is wf.step


def test_signatures_from_spec() -> None:
    start = inspect.signature(wf.start)
    assert {"workflow_id", "queue", "timeout"} <= set(start.parameters)
    restart = inspect.signature(wf.restart)
    assert {"from_step", "workflow_id"} <= set(restart.parameters)
    lw = inspect.signature(wf.list_workflows)
    assert list(lw.parameters) == [
        "status", "name", "queue", "since", "until", "limit", "offset",
        "parent", "top_level", "child_counts", "app_version", "partition_key",
    ]  # fmt: skip
    assert lw.parameters["limit"].default == 20
    launch = inspect.signature(wf.launch)
    assert list(launch.parameters)[:3] == ["database_url", "app_database_url", "executor_id"]
    step = inspect.signature(wf.step)
    assert {
        p: step.parameters[p].default for p in ("retries", "interval", "backoff", "max_interval")
    } == {
        "retries": 3,
        "interval": 1.0,
        "backoff": 2.0,
        "max_interval": 60.0,
    }
    assert inspect.signature(wf.recv).parameters["timeout"].default == 60
    assert inspect.signature(wf.get_event).parameters["timeout"].default == 60


def test_statuses() -> None:
    assert set(wf.Status.ALL) == {
        "ENQUEUED",
        "DELAYED",  # shown, not stored: ENQUEUED with its delay not passed
        "PENDING",
        "SUCCESS",
        "ERROR",
        "CANCELLED",
        "RETRIES_EXCEEDED",
    }


def test_private_modules_are_not_reexported() -> None:
    assert not [n for n in wf.__all__ if n.startswith("_")]
