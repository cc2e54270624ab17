"""The core: how one workflow call runs and is recorded.

- ``runtime``: the Protocol of what the core needs from an executor
- ``recording``: positions, the record written or refused, the one place a
  refusal is resolved, replay and determinism
- ``starting``: a workflow recorded (or found: the ID is the idempotency key),
  as a child or on its own, and handed to the executor
- ``runs``: a workflow's body, its end, a child's outcome, waiting for outcomes
- ``calls``: one retry policy for sync and async steps; transactions
- ``control``: cancellation and deadlines
- ``dry_run``: ``wf.replay``, a recorded workflow checked against today's code
- ``patching``: ``wf.patched``/``wf.deprecated_patch``, code changed under in-flight runs
- ``wakeups``: waking waiters (in-process at once; Postgres NOTIFY relayed)

The core imports only the system database layer and the leaves; the worker
and the public API import it. Its executor is passed in (``Runtime``)."""

from .._sysdb import wake_key
from .calls import RetryPolicy, run_transaction, run_with_retries, run_with_retries_async
from .control import BY_API, TIMED_OUT, cancel_tree, check_live
from .dry_run import dry_replay
from .patching import deprecated_patch, patched
from .recording import (
    Finished,
    NotRecorded,
    begin_call,
    check_determinism,
    record,
    replay,
    resolve_unrecorded,
    step_record,
)
from .runs import Outcome, record_child, run_body, run_body_async, wait_outcome
from .runtime import Runtime
from .starting import (
    ChildSlot,
    Debounce,
    Existing,
    Started,
    begin_workflow,
    check_workflow_id,
    encode_inputs,
    enqueue_options,
    record_started,
    reserve_child,
    start_workflow,
)
from .wakeups import Waiter, ensure_listener, notify_local, wake_dequeuers

__all__ = [
    "enqueue_options",
    "ChildSlot",
    "Debounce",
    "Existing",
    "Finished",
    "NotRecorded",
    "Outcome",
    "RetryPolicy",
    "Runtime",
    "Started",
    "Waiter",
    "BY_API",
    "TIMED_OUT",
    "begin_call",
    "begin_workflow",
    "cancel_tree",
    "check_determinism",
    "check_live",
    "check_workflow_id",
    "deprecated_patch",
    "dry_replay",
    "encode_inputs",
    "ensure_listener",
    "notify_local",
    "patched",
    "record",
    "record_child",
    "record_started",
    "replay",
    "reserve_child",
    "resolve_unrecorded",
    "run_body",
    "run_body_async",
    "run_transaction",
    "run_with_retries",
    "run_with_retries_async",
    "start_workflow",
    "step_record",
    "wait_outcome",
    "wake_dequeuers",
    "wake_key",
]
