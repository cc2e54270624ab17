"""Durable sleep, messages and events: each a recorded call in its workflow.

Each call has a sync form and an ``*_async`` twin. The twin takes the call's
position on the workflow's event loop (so calls started together keep call
order) and then waits in a worker thread, so the loop runs on meanwhile."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

from . import _root
from ._context import WorkflowContext, current, current_step, tx_connection, workflow_here
from ._core import (
    Finished,
    NotRecorded,
    Runtime,
    Waiter,
    begin_call,
    check_determinism,
    check_live,
    ensure_listener,
    notify_local,
    record,
    replay,
    resolve_unrecorded,
    wake_key,
)
from ._errors import WfError, WorkflowCancelledError, WorkflowNotFoundError, _OwnershipLost
from ._records import Status
from ._serialization import dumps, dumps_error, loads
from ._sysdb import StepRow, SystemDatabase, now_ms
from ._sysdb.engine import is_connection_error
from ._sysdb.rows import event_record

# a call's place in its workflow: (executor, workflow, position, its record on replay)
Slot = tuple[Runtime, WorkflowContext, int, StepRow | None]


def _reserve(name: str, kind: str) -> Slot | None:
    """Inside a workflow body: take the call's position now, in this thread."""
    ctx = workflow_here()
    if ctx is None:
        return None
    ex = _root.for_call()
    pos, rec = begin_call(ex, ctx, name, kind)
    return ex, ctx, pos, rec


def _topic(topic: str | None) -> str:
    return "" if topic is None else str(topic)


# -- durable sleep -------------------------------------------------------------------------------


def sleep(seconds: float) -> None:
    """Durable sleep: after a restart only the remainder is slept."""
    _sleep(_reserve("sleep", "sleep"), seconds)


def _sleep(slot: Slot | None, seconds: float) -> None:
    if slot is None:
        time.sleep(seconds)
        return
    ex, ctx, pos, rec = slot
    if rec is not None:
        check_determinism(ctx, pos, rec, "sleep", "sleep")
        wake = float(loads(rec.output))
    else:
        wake = time.time() + max(0.0, seconds)
        started = now_ms()
        # written before sleeping (the wake-up time is what a restart needs);
        # its end is when the sleep ends
        done = Finished("sleep", "sleep", dumps(wake), None, started)
        found = record(ex, ctx, pos, done, ended_at=max(started, int(wake * 1000)))
        if found is not None:
            wake = float(replay(ctx, pos, found, "sleep", "sleep"))
    if ctx.dry:
        return  # a dry replay (wf.replay) sleeps for nobody
    with _waiting(ex), Waiter(wake_key("c", ctx.workflow_id)) as waiter:
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
                raise WorkflowCancelledError(f"workflow {ctx.workflow_id} was cancelled")


# -- writes recorded with the call -------------------------------------------------------------


def _recorded_write(
    slot: Slot,
    name: str,
    kind: str,
    write: Callable[[Any, Any], str | None],
    detail: str | None = None,
) -> Any:
    """A workflow's write (``write(executor, conn)`` → the call's recorded
    output) and its record in one transaction, so it happens exactly once: a
    replay skips it, and a dropped connection runs the transaction again.
    ``write`` raising a WfError records that error instead (same transaction)."""
    ex, ctx, pos, rec = slot
    if rec is not None:
        return replay(ctx, pos, rec, name, kind)
    started = now_ms()
    outage: float | None = None
    while True:
        failure: WfError | None = None
        try:
            with ex.sysdb.transaction() as conn:
                try:
                    output, error = write(ex, conn), None
                except WfError as e:
                    failure, output, error = e, None, dumps_error(e)
                if not ex.sysdb.record_step(
                    ctx.workflow_id,
                    ctx.executor_id,
                    pos,
                    name,
                    kind,
                    output,
                    error,
                    started,
                    conn=conn,
                    detail=detail,
                    run_token=ctx.run_token,
                ):
                    raise NotRecorded()
        except NotRecorded:
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), name, kind)
        except Exception as e:
            if not is_connection_error(e):
                raise
            outage = ex.sysdb.wait_for_database(outage, e)
            continue
        if failure is not None:
            raise failure
        return loads(output)


# -- messages ----------------------------------------------------------------------------------


def send(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """Send a message to a workflow (exactly once from inside a workflow; once
    per ``idempotency_key`` from anywhere)."""
    payload = dumps(message)
    _send(_reserve("send", "send"), destination_id, payload, topic, idempotency_key)


def send_from_outside(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> bool:
    """``send`` from outside any workflow; False when this idempotency key
    was sent to that workflow before (nothing is sent again)."""
    return _send(None, destination_id, dumps(message), topic, idempotency_key)


def send_in(
    db: SystemDatabase,
    destination_id: str,
    message: Any,
    topic: str | None = None,
    idempotency_key: str | None = None,
) -> bool:
    """``send`` from outside any workflow, on a given system database (a
    wf.Client's); the message is encoded before anything is written."""
    return _send(None, destination_id, dumps(message), topic, idempotency_key, db=db)


def _no_workflow(workflow_id: str) -> WorkflowNotFoundError:
    return WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")


def _send(
    slot: Slot | None,
    destination_id: str,
    payload: str,
    topic: str | None,
    idempotency_key: str | None,
    db: SystemDatabase | None = None,
) -> bool:
    """Send it; False when the idempotency key was used before (from outside
    a workflow; a workflow's send is recorded and so happens once anyway).
    ``db``: from outside, the system database to send on (None: the process's)."""
    t = _topic(topic)
    fresh = True
    if slot is None:
        db = db or _root.client()
        if db.get_outcome(destination_id) is None:
            raise _no_workflow(destination_id)
        with db.transaction() as conn:
            fresh = db.insert_message(destination_id, t, payload, idempotency_key, conn)
    else:

        def write(ex: Any, conn: Any) -> str:
            # an unknown destination is this call's recorded error, as from outside
            if not ex.sysdb.workflow_exists(destination_id, conn):
                raise _no_workflow(destination_id)
            ex.sysdb.insert_message(destination_id, t, payload, idempotency_key, conn)
            return "null"

        detail = f"to {destination_id}" + (f" topic {t}" if t else "")
        _recorded_write(slot, "send", "send", write, detail)
    if fresh:
        notify_local(wake_key("m", destination_id, t))
    return fresh


def recv(topic: str | None = None, timeout: float = 60) -> Any:
    """The oldest unread message on ``topic`` for this workflow, or None after
    ``timeout`` seconds. Each message is delivered once."""
    return _recv(_reserve("recv", "recv"), topic, timeout)


def _recv(slot: Slot | None, topic: str | None, timeout: float) -> Any:
    if slot is None:
        raise WfError("wf.recv() is only available inside a workflow")
    ex, ctx, pos, rec = slot
    if rec is not None:
        return replay(ctx, pos, rec, "recv", "recv")
    started = now_ms()
    t = _topic(topic)
    ensure_listener(ex.sysdb.listen_url)
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.005
    outage: float | None = None
    with _waiting(ex), Waiter(wake_key("m", ctx.workflow_id, t)) as waiter:
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
                            detail=f"topic {t}" if t else None,
                            run_token=ctx.run_token,
                        ):
                            raise NotRecorded()
                        return loads(out)
            except NotRecorded:
                return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), "recv", "recv")
            except Exception as e:
                if not is_connection_error(e):
                    raise
                outage = ex.sysdb.wait_for_database(outage, e)
                # the take may have committed with only its answer lost: the
                # message is gone from the queue and its receipt is recorded
                got = ex.sysdb.get_step(ctx.workflow_id, pos)
                if got is not None:
                    return replay(ctx, pos, got, "recv", "recv")
                continue
            if ex.stopping.is_set():
                raise _OwnershipLost()
            check_live(ex, ctx)  # a cancel ends the wait
            waiter.wait(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)


# -- events ------------------------------------------------------------------------------------


def set_event(key: str, value: Any) -> None:
    """Publish a value under ``key`` for this workflow (last value wins).
    Inside a step it is a plain write for the step's workflow (a re-run step
    sets it again)."""
    _set_event(_reserve("set_event", "event"), key, value)


def _set_event(slot: Slot | None, key: str, value: Any) -> None:
    payload = dumps(value)
    k = str(key)
    if slot is None:
        ctx = current.get()
        if ctx is None or current_step() is None:
            raise WfError("wf.set_event() is only available inside a workflow")
        # inside a step: not a recorded call, the step's own write (inside a
        # transaction on the system database, part of that transaction),
        # made only while this run may write into its workflow
        ex = _root.for_call()
        conn = tx_connection.get() if ex.same_db else None
        ex.sysdb.set_event_of_run(
            ctx.workflow_id,
            k,
            payload,
            executor_id=ctx.executor_id,
            run_token=ctx.run_token,
            conn=conn,
        )
        workflow_id = ctx.workflow_id
    else:
        workflow_id = slot[1].workflow_id

        def write(ex: Any, conn: Any) -> str:
            ex.sysdb.set_event(workflow_id, k, payload, conn=conn)
            return event_record(k, payload)

        _recorded_write(slot, "set_event", "event", write, f"key {k}")
    notify_local(wake_key("e", workflow_id, k))


def get_event(workflow_id: str, key: str, timeout: float = 60) -> Any:
    """The value a workflow published under ``key``, waiting up to ``timeout``
    seconds for it; None if it never came."""
    return _get_event(_reserve("get_event", "event"), workflow_id, key, timeout)


def get_event_in(db: SystemDatabase, workflow_id: str, key: str, timeout: float = 60) -> Any:
    """``get_event`` from outside any workflow, on a given system database (a wf.Client's)."""
    return _get_event(None, workflow_id, key, timeout, db=db)


def _get_event(
    slot: Slot | None,
    workflow_id: str,
    key: str,
    timeout: float,
    db: SystemDatabase | None = None,
) -> Any:
    if slot is not None:
        ex, ctx, pos, rec = slot
        if rec is not None:
            return replay(ctx, pos, rec, "get_event", "event")
        db = ex.sysdb
    else:
        db = db or _root.client()
    started = now_ms()
    ensure_listener(db.listen_url)
    deadline = time.monotonic() + max(0.0, timeout)
    delay = 0.005
    with (
        _waiting(slot[0] if slot is not None else None),
        Waiter(wake_key("e", workflow_id, str(key))) as waiter,
    ):
        while True:
            waiter.arm()
            value = db.get_event(workflow_id, str(key))
            if value is not None or time.monotonic() >= deadline:
                break
            if slot is not None:
                check_live(slot[0], slot[1])  # a cancel or shutdown ends the wait
            waiter.wait(max(0.0, min(delay, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)
    out = value if value is not None else "null"
    if slot is not None:
        ex, ctx, pos, _ = slot
        detail = f"{workflow_id} key {key}"
        found = record(
            ex, ctx, pos, Finished("get_event", "event", out, None, started, detail=detail)
        )
        if found is not None:
            return replay(ctx, pos, found, "get_event", "event")
    return loads(out)


def _waiting(ex: Any) -> contextlib.AbstractContextManager[Any]:
    """While blocked waiting, this run's pool thread does not count against
    the pool's limit: what it waits for must be able to run."""
    return ex.waiting() if ex is not None else contextlib.nullcontext()


# -- the same calls for async code: the position is taken here on the loop, the
# waiting happens in a worker thread ------------------------------------------------------------


async def sleep_async(seconds: float) -> None:
    """``wf.sleep`` for async code."""
    slot = _reserve("sleep", "sleep")
    if slot is None:
        await asyncio.sleep(seconds)
        return
    await asyncio.to_thread(_sleep, slot, seconds)


async def send_async(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> None:
    """``wf.send`` for async code."""
    payload = dumps(message)
    slot = _reserve("send", "send")
    await asyncio.to_thread(_send, slot, destination_id, payload, topic, idempotency_key)


async def recv_async(topic: str | None = None, timeout: float = 60) -> Any:
    """``wf.recv`` for async code."""
    slot = _reserve("recv", "recv")
    return await asyncio.to_thread(_recv, slot, topic, timeout)


async def set_event_async(key: str, value: Any) -> None:
    """``wf.set_event`` for async code."""
    slot = _reserve("set_event", "event")
    await asyncio.to_thread(_set_event, slot, key, value)


async def get_event_async(workflow_id: str, key: str, timeout: float = 60) -> Any:
    """``wf.get_event`` for async code."""
    slot = _reserve("get_event", "event")
    return await asyncio.to_thread(_get_event, slot, workflow_id, key, timeout)
