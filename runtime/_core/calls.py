"""Running calls: one retry policy for sync and async steps, and
transactions (their output recorded in the same commit: exactly once)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._context import (
    WorkflowContext,
    current_step,
    in_step,
    tx_connection,
)
from .._errors import (
    WfError,
    _OwnershipLost,
)
from .._serialization import dumps, loads
from .._sysdb import (
    StepRow,
    is_connection_error,
    is_database_error,
    is_serialization_failure,
    now_ms,
)
from .._tracing import call_span
from .recording import NotRecorded, begin_call, replay, resolve_unrecorded, step_record

if TYPE_CHECKING:
    from .runtime import Runtime

log = logging.getLogger("wf")


# -- steps ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 3
    interval: float = 1.0
    backoff: float = 2.0
    max_interval: float = 60.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (from 0)."""
        return min(self.interval * (self.backoff**attempt), self.max_interval)

    def retry_after(self, attempt: int, name: str, e: Exception) -> float | None:
        """The wait before the next attempt after ``e``, or None to give up;
        logs the retry. One rule for sync and async steps."""
        if attempt >= self.retries or isinstance(e, WfError):
            return None
        delay = self.delay(attempt)
        log.warning(
            "step %s failed (attempt %d of %d), retrying in %.3gs: %s",
            name,
            attempt + 1,
            self.retries + 1,
            delay,
            e,
        )
        return delay


def run_with_retries(
    ex: Runtime | None, policy: RetryPolicy, name: str, call: Callable[[], Any]
) -> Any:
    """``call()`` under ``policy``; the running step's state counts the attempts."""
    state = current_step() if ex is not None else None
    attempt = 0
    while True:
        try:
            return call()
        except Exception as e:
            delay = policy.retry_after(attempt, name, e)
            if delay is None:
                raise
            if ex is not None and ex.stopping.wait(delay):
                raise _OwnershipLost() from None
            if ex is None:
                time.sleep(delay)
            attempt += 1
            if state is not None:
                state.attempts = attempt + 1


async def run_with_retries_async(
    ex: Runtime | None, policy: RetryPolicy, name: str, call: Callable[[], Any]
) -> Any:
    state = current_step() if ex is not None else None
    attempt = 0
    while True:
        try:
            return await call()
        except Exception as e:
            delay = policy.retry_after(attempt, name, e)
            if delay is None:
                raise
            # wake on shutdown as the sync twin does: poll it while sleeping
            end = time.monotonic() + delay
            while True:
                if ex is not None and ex.stopping.is_set():
                    raise _OwnershipLost() from None
                left = end - time.monotonic()
                if left <= 0:
                    break
                await asyncio.sleep(min(left, 0.1))
            attempt += 1
            if state is not None:
                state.attempts = attempt + 1


# -- transactions ------------------------------------------------------------------------------


def run_transaction(
    ex: Runtime,
    ctx: WorkflowContext | None,
    name: str,
    call: Callable[[], Any],
    isolation: str,
    read_only: bool,
    slot: tuple[int, StepRow | None] | None = None,
) -> Any:
    """Run ``call`` inside a database transaction; inside a workflow, record
    its output in the same commit (exactly once). ``slot``: the position,
    already taken in the workflow's thread (an async transaction)."""
    pos = -1
    if ctx is not None:
        pos, rec = slot if slot is not None else begin_call(ex, ctx, name, "transaction")
        if rec is not None:
            return replay(ctx, pos, rec, name, "transaction")
        if not ex.same_db and ctx.recorded is not None:
            found, out = ex.appdb.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
            if found:
                return step_record(ex, ctx, pos, name, "transaction", now_ms(), loads(out), None)
    with call_span("transaction", name, ctx.workflow_id if ctx else None, pos):
        if ctx is None:
            return _transact(ex, ctx, name, call, isolation, read_only, pos)
        with in_step(name, pos) as state:
            state.held_logs = []
            try:
                return _transact(ex, ctx, name, call, isolation, read_only, pos)
            finally:
                held, state.held_logs = state.held_logs, None
                for row in held:
                    with contextlib.suppress(Exception):
                        ex.sysdb.insert_log(
                            *row, executor_id=ctx.executor_id, run_token=ctx.run_token
                        )


def _recorded_already(
    ex: Runtime, ctx: WorkflowContext, pos: int, name: str, started: int
) -> tuple[bool, Any]:
    """After a connection error: did the attempt commit (only its answer was
    lost)? Then its record is there, and the body must not run again."""
    if ex.same_db:
        rec = ex.sysdb.get_step(ctx.workflow_id, pos)
        if rec is not None:
            return True, replay(ctx, pos, rec, name, "transaction")
        return False, None
    found, out = ex.appdb.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
    if found:
        return True, step_record(ex, ctx, pos, name, "transaction", started, loads(out), None)
    return False, None


def _transact(
    ex: Runtime,
    ctx: WorkflowContext | None,
    name: str,
    call: Callable[[], Any],
    isolation: str,
    read_only: bool,
    pos: int,
) -> Any:
    """The transaction itself, retried through serialization failures and
    (inside a workflow) outages."""
    from .._sysdb.txguard import user_transaction  # SQLAlchemy: once a transaction runs

    db = ex.appdb
    # READ ONLY where the database enforces it (Postgres); there the call's
    # record cannot go in the transaction and is written after it
    read_only = read_only and db.backend.read_only_transactions
    # the step row goes in the user's commit when both live in one database
    in_commit = ctx is not None and ex.same_db and not read_only
    attempt = 0
    outage_wait: float | None = None
    started = now_ms()
    state = current_step() if ctx is not None else None
    while True:
        output: str | None = None
        if state is not None and state.held_logs is not None:
            # a retried attempt's lines replace the rolled-back attempt's
            state.log_seq = 0
            state.held_logs.clear()
        try:
            with db.user_transaction(isolation, read_only=read_only) as conn:
                token = tx_connection.set(conn)
                try:
                    with user_transaction(conn):
                        value = call()
                finally:
                    tx_connection.reset(token)
                output = dumps(value)
                if ctx is not None and in_commit:
                    if not ex.sysdb.record_step(
                        ctx.workflow_id,
                        ctx.executor_id,
                        pos,
                        name,
                        "transaction",
                        output,
                        None,
                        started,
                        conn=conn,
                        run_token=ctx.run_token,
                    ):
                        raise NotRecorded()
                elif ctx is not None and not ex.same_db:
                    # a refusal means this output is recorded already: our own
                    # earlier attempt committed and only its answer was lost
                    if not db.insert_tx_output(conn, ctx.workflow_id, pos, output):  # type: ignore[union-attr]
                        raise NotRecorded()
            break
        except NotRecorded:
            assert ctx is not None
            if not ex.same_db:
                found, out = db.get_tx_output(ctx.workflow_id, pos)  # type: ignore[union-attr]
                if found:
                    return step_record(ex, ctx, pos, name, "transaction", started, loads(out), None)
            return replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), name, "transaction")
        except Exception as e:
            if not is_database_error(e):
                if ctx is None:
                    raise
                return step_record(ex, ctx, pos, name, "transaction", started, None, e)
            if is_serialization_failure(e) and attempt < 20:
                attempt += 1
                time.sleep(min(0.001 * 2**attempt, 0.5))
                continue
            if is_connection_error(e) and ctx is not None:
                # the transaction rolled back with its connection, or it
                # committed and only the answer was lost: wait for the
                # database, look for its record, and only then run it again
                outage_wait = db.wait_for_database(outage_wait, e)
                done, value = _recorded_already(ex, ctx, pos, name, started)
                if done:
                    return value
                continue
            if ctx is None:
                raise
            return step_record(ex, ctx, pos, name, "transaction", started, None, e)
    if ctx is None:
        return loads(output)
    if in_commit:
        return loads(output)
    return step_record(ex, ctx, pos, name, "transaction", started, loads(output), None)
