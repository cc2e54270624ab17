"""Durable sleep, messages and events: each a recorded call in its workflow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from . import _executor
from ._context import current
from ._errors import (
    WfError,
    WorkflowNotFoundError,
    _OwnershipLost,
)
from ._notify import Waiter, ensure_listener, notify_local, wake_key
from ._records import Status
from ._runner import (
    _NotRecorded,
    check_determinism,
    replay,
    resolve_unrecorded,
    step_begin,
)
from ._serialization import dumps, loads
from ._sysdb import now_ms
from ._sysdb.engine import is_connection_error

# -- durable sleep, messages, events -----------------------------------------------------------


def _in_workflow() -> Any:
    ctx = current.get()
    return ctx if ctx is not None and ctx.in_step is None else None


def sleep(seconds: float) -> None:
    """Durable sleep: after a restart only the remainder is slept."""
    ctx = _in_workflow()
    if ctx is None:
        time.sleep(seconds)
        return
    ex = _executor.for_call()
    pos, rec = step_begin(ex, ctx, "sleep", "sleep")
    if rec is not None:
        check_determinism(ctx, pos, rec, "sleep", "sleep")
        wake = float(loads(rec.output))
    else:
        wake = time.time() + max(0.0, seconds)
        if not ex.sysdb.record_step(
            ctx.workflow_id, ctx.executor_id, pos, "sleep", "sleep", dumps(wake), None, now_ms()
        ):
            wake = float(replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "sleep", "sleep"))
    waiter = Waiter(wake_key("c", ctx.workflow_id))
    while True:
        waiter.arm()
        remaining = wake - time.time()
        if remaining <= 0:
            return
        if ex.stopping.is_set():
            raise _OwnershipLost()
        waiter.wait(min(remaining, 1.0))
        out = ex.sysdb.get_outcome(ctx.workflow_id) if remaining > 1.0 else None
        if out is not None and out[0] == Status.CANCELLED:
            from ._errors import WorkflowCancelledError

            raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")


def _topic(topic: str | None) -> str:
    return "" if topic is None else str(topic)


def _recorded_write(ctx: Any, name: str, kind: str, write: Callable[[Any, Any], Any]) -> None:
    """A workflow's write (``write(executor, conn)``) and its record in one
    transaction, so it happens exactly once: a replay skips it, and a dropped
    connection runs the transaction again."""
    ex = _executor.for_call()
    pos, rec = step_begin(ex, ctx, name, kind)
    if rec is not None:
        replay(ctx, pos, rec, name, kind)
        return
    started = now_ms()
    outage: float | None = None
    while True:
        try:
            with ex.sysdb.transaction() as conn:
                write(ex, conn)
                if not ex.sysdb.record_step(
                    ctx.workflow_id,
                    ctx.executor_id,
                    pos,
                    name,
                    kind,
                    "null",
                    None,
                    started,
                    conn=conn,
                ):
                    raise _NotRecorded()
            return
        except _NotRecorded:
            replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), name, kind)
            return
        except Exception as e:
            if not is_connection_error(e):
                raise
            outage = ex.sysdb.wait_for_database(outage, e)


def send(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """Send a message to a workflow (exactly once from inside a workflow; once
    per ``idempotency_key`` from anywhere)."""
    payload = dumps(message)
    ctx = _in_workflow()
    if ctx is None:
        db = _executor.client()
        if db.get_outcome(destination_id) is None:
            raise WorkflowNotFoundError(f"no workflow with ID {destination_id!r}")
        with db.transaction() as conn:
            db.insert_message(destination_id, _topic(topic), payload, idempotency_key, conn)
    else:
        _recorded_write(
            ctx,
            "send",
            "send",
            lambda ex, conn: ex.sysdb.insert_message(
                destination_id, _topic(topic), payload, idempotency_key, conn
            ),
        )
    notify_local(wake_key("m", destination_id, _topic(topic)))


def recv(topic: str | None = None, timeout: float = 60) -> Any:
    """The oldest unread message on ``topic`` for this workflow, or None after
    ``timeout`` seconds. Each message is delivered once."""
    ctx = _in_workflow()
    if ctx is None:
        raise WfError("wf.recv() is only available inside a workflow")
    ex = _executor.for_call()
    pos, rec = step_begin(ex, ctx, "recv", "recv")
    if rec is not None:
        return replay(ctx, pos, rec, "recv", "recv")
    started = now_ms()
    t = _topic(topic)
    ensure_listener(ex.sysdb.url)
    deadline = time.monotonic() + max(0.0, timeout)
    waiter = Waiter(wake_key("m", ctx.workflow_id, t))
    delay = 0.005
    outage: float | None = None
    while True:
        waiter.arm()
        try:
            with ex.sysdb.transaction() as conn:
                msg = ex.sysdb.take_message(ctx.workflow_id, t, conn)
                if msg is not None or time.monotonic() >= deadline:
                    out = msg if msg is not None else "null"
                    if not ex.sysdb.record_step(
                        ctx.workflow_id,
                        ctx.executor_id,
                        pos,
                        "recv",
                        "recv",
                        out,
                        None,
                        started,
                        conn=conn,
                    ):
                        raise _NotRecorded()
                    return loads(out)
        except _NotRecorded:
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "recv", "recv")
        except Exception as e:
            if not is_connection_error(e):
                raise
            outage = ex.sysdb.wait_for_database(outage, e)
            continue
        if ex.stopping.is_set():
            raise _OwnershipLost()
        waiter.wait(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)


def set_event(key: str, value: Any) -> None:
    """Publish a value under ``key`` for this workflow (last value wins)."""
    ctx = _in_workflow()
    if ctx is None:
        raise WfError("wf.set_event() is only available inside a workflow")
    payload = dumps(value)
    _recorded_write(
        ctx,
        "set_event",
        "event",
        lambda ex, conn: ex.sysdb.set_event(ctx.workflow_id, str(key), payload, conn=conn),
    )
    notify_local(wake_key("e", ctx.workflow_id, str(key)))


def get_event(workflow_id: str, key: str, timeout: float = 60) -> Any:
    """The value a workflow published under ``key``, waiting up to ``timeout``
    seconds for it; None if it never came."""
    ctx = _in_workflow()
    ex = _executor.for_call() if ctx is not None else None
    db = ex.sysdb if ex is not None else _executor.client()
    pos = -1
    if ctx is not None and ex is not None:
        pos, rec = step_begin(ex, ctx, "get_event", "event")
        if rec is not None:
            return replay(ctx, pos, rec, "get_event", "event")
    started = now_ms()
    ensure_listener(db.url)
    deadline = time.monotonic() + max(0.0, timeout)
    waiter = Waiter(wake_key("e", workflow_id, str(key)))
    delay = 0.005
    while True:
        waiter.arm()
        value = db.get_event(workflow_id, str(key))
        if value is not None or time.monotonic() >= deadline:
            break
        waiter.wait(max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(delay * 2, 0.5)
    out = value if value is not None else "null"
    if ctx is not None and ex is not None:
        if not ex.sysdb.record_step(
            ctx.workflow_id, ctx.executor_id, pos, "get_event", "event", out, None, started
        ):
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "get_event", "event")
    return loads(out)


# -- the same calls for async workflows: waited out in a worker thread (which
# sees the workflow's context), so the event loop runs on meanwhile ------------------


async def sleep_async(seconds: float) -> None:
    """``wf.sleep`` for async code."""
    await asyncio.to_thread(sleep, seconds)


async def send_async(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """``wf.send`` for async code."""
    await asyncio.to_thread(send, destination_id, message, topic, idempotency_key)


async def recv_async(topic: str | None = None, timeout: float = 60) -> Any:
    """``wf.recv`` for async code."""
    return await asyncio.to_thread(recv, topic, timeout)


async def set_event_async(key: str, value: Any) -> None:
    """``wf.set_event`` for async code."""
    await asyncio.to_thread(set_event, key, value)


async def get_event_async(workflow_id: str, key: str, timeout: float = 60) -> Any:
    """``wf.get_event`` for async code."""
    return await asyncio.to_thread(get_event, workflow_id, key, timeout)
