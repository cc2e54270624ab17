"""The decorators: @workflow, @step (alias communicator), @transaction, and wf.db()."""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast, overload

from . import _root
from ._context import (
    StepState,
    WorkflowContext,
    _step,
    in_step,
    take_assigned_id,
    tx_connection,
    workflow_here,
)
from ._core import (
    ChildSlot,
    Existing,
    Outcome,
    RetryPolicy,
    Started,
    begin_call,
    begin_workflow,
    record_child,
    replay,
    reserve_child,
    run_body,
    run_body_async,
    run_transaction,
    run_with_retries,
    run_with_retries_async,
    step_record,
    wait_outcome,
)
from ._errors import ConfigurationError, WfError, _OwnershipLost
from ._registry import WorkflowSpec, qualified_name, register_workflow
from ._sysdb import now_ms
from ._tracing import call_span

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

F = TypeVar("F", bound=Callable[..., Any])


def db() -> Connection:
    """The SQLAlchemy Connection of the running @wf.transaction."""
    conn = tx_connection.get()
    if conn is None:
        raise WfError("wf.db() is only available inside a @wf.transaction function")
    return cast("Connection", conn)


def _mark(wrapper: Any, fn: Callable[..., Any], kind: str, name: str) -> Any:
    functools.update_wrapper(wrapper, fn)
    wrapper.wf_kind = kind
    wrapper.wf_name = name
    return wrapper


# -- workflows ----------------------------------------------------------------------------


def _call_workflow(spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    ex = _root.for_call()
    slot = reserve_child(ex, spec.name)
    plan = begin_workflow(ex.sysdb, ex.executor_id, spec, args, kwargs, slot=slot)
    if isinstance(plan, Existing):
        return _finish_existing(ex, spec, plan)
    plan.ctx.executor = ex
    a, kw = plan.decoded_args()
    try:
        with ex.running_inline(plan.ctx.workflow_id):
            outcome = run_body(ex, spec, plan.ctx, a, kw)
    except _OwnershipLost:
        outcome = _after_lost(ex, plan.ctx)
    if plan.parent is not None and plan.parent_position is not None:
        record_child(
            ex, plan.parent, plan.parent_position, spec.name, plan.ctx.workflow_id, outcome
        )
    return outcome.result(plan.ctx.workflow_id)


def _begin(
    ex: _root.Executor,
    spec: WorkflowSpec,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    workflow_id: str | None,
    slot: ChildSlot | None,
) -> Started | Existing:
    return begin_workflow(
        ex.sysdb, ex.executor_id, spec, args, kwargs, slot=slot, workflow_id=workflow_id
    )


async def _call_workflow_async(
    spec: WorkflowSpec, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    # database calls go to a worker thread: a launch, a slow commit or an
    # outage must not stall the caller's event loop. The position in a parent
    # and the ID set by set_workflow_id are taken here, on the loop, in call
    # order (the thread's context is a copy).
    ex = await asyncio.to_thread(_root.for_call) if workflow_here() is None else _root.for_call()
    slot = reserve_child(ex, spec.name)
    plan = await asyncio.to_thread(_begin, ex, spec, args, kwargs, take_assigned_id(), slot)
    if isinstance(plan, Existing):
        return await asyncio.to_thread(_finish_existing, ex, spec, plan)
    plan.ctx.executor = ex
    a, kw = plan.decoded_args()
    try:
        with ex.running_inline(plan.ctx.workflow_id):
            outcome = await run_body_async(ex, spec, plan.ctx, a, kw)
    except _OwnershipLost:
        outcome = await asyncio.to_thread(_after_lost, ex, plan.ctx)
    if plan.parent is not None and plan.parent_position is not None:
        await asyncio.to_thread(
            record_child,
            ex,
            plan.parent,
            plan.parent_position,
            spec.name,
            plan.ctx.workflow_id,
            outcome,
        )
    return outcome.result(plan.ctx.workflow_id)


def _after_lost(ex: _root.Executor, ctx: WorkflowContext) -> Outcome:
    if ex.stopping.is_set():
        raise WfError(
            f"wf shut down while workflow {ctx.workflow_id} was running; recovery will finish it"
        )
    # another executor adopted it: its result is ours to return
    return wait_outcome(ex.sysdb, ctx.workflow_id, None, ex)


def _finish_existing(ex: _root.Executor, spec: WorkflowSpec, plan: Existing) -> Any:
    outcome = plan.outcome or wait_outcome(ex.sysdb, plan.workflow_id, None, ex)
    if plan.parent is not None and plan.parent_position is not None and not plan.recorded:
        record_child(ex, plan.parent, plan.parent_position, spec.name, plan.workflow_id, outcome)
    return outcome.result(plan.workflow_id)


@overload
def workflow(fn: F) -> F: ...
@overload
def workflow(*, max_recovery_attempts: int = 50, name: str | None = None) -> Callable[[F], F]: ...
def workflow(fn: Any = None, *, max_recovery_attempts: int = 50, name: str | None = None) -> Any:
    """A durable workflow: its calls are recorded and it runs to completion."""
    if max_recovery_attempts < 0:
        raise ConfigurationError("max_recovery_attempts must be >= 0")

    def deco(f: F) -> F:
        spec = WorkflowSpec(
            name or qualified_name(f), f, inspect.iscoroutinefunction(f), max_recovery_attempts
        )
        register_workflow(spec)
        if spec.is_async:

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                return await _call_workflow_async(spec, args, kwargs)

            wrapper: Any = awrapper
        else:

            def swrapper(*args: Any, **kwargs: Any) -> Any:
                return _call_workflow(spec, args, kwargs)

            wrapper = swrapper
        wrapper.wf_spec = spec
        return cast(F, _mark(wrapper, f, "workflow", spec.name))

    return deco(fn) if callable(fn) else deco


# -- steps ----------------------------------------------------------------------------------


def _check_policy(
    retries: int, interval: float, backoff: float, max_interval: float
) -> RetryPolicy:
    if retries < 0 or interval < 0 or backoff < 1 or max_interval < 0:
        raise ConfigurationError("step retries/interval must be >= 0 and backoff >= 1")
    return RetryPolicy(retries, interval, backoff, max_interval)


def step(
    fn: Any = None,
    *,
    retries: int = 3,
    interval: float = 1.0,
    backoff: float = 2.0,
    max_interval: float = 60.0,
    name: str | None = None,
) -> Any:
    """A step: run at least once, never again once it has completed.

    ``retries`` extra attempts after a failure, waiting ``interval`` seconds,
    multiplied by ``backoff`` each time, at most ``max_interval``. When all
    fail, the last underlying error is raised (and recorded)."""
    policy = _check_policy(retries, interval, backoff, max_interval)

    def deco(f: F) -> F:
        sname = name or f.__qualname__
        if inspect.iscoroutinefunction(f):

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                ctx = workflow_here()
                if ctx is None:
                    return await run_with_retries_async(
                        None, policy, sname, lambda: f(*args, **kwargs)
                    )
                ex = _root.for_call()
                # the position is taken before the first await: steps started
                # together (asyncio.gather) take theirs in call order
                pos, rec = begin_call(ex, ctx, sname, "step")
                if rec is not None:
                    return replay(ctx, pos, rec, sname, "step")
                started = now_ms()
                value, exc = None, None
                with in_step(sname, pos) as state:
                    try:
                        with call_span("step", sname, ctx.workflow_id, pos):
                            value = await run_with_retries_async(
                                ex, policy, sname, lambda: f(*args, **kwargs)
                            )
                    except Exception as e:
                        exc = e
                return await asyncio.to_thread(
                    functools.partial(
                        step_record,
                        ex,
                        ctx,
                        pos,
                        sname,
                        "step",
                        started,
                        value,
                        exc,
                        attempts=state.attempts,
                    )
                )

            return cast(F, _mark(awrapper, f, "step", sname))

        def swrapper(*args: Any, **kwargs: Any) -> Any:
            ctx = workflow_here()
            if ctx is None:
                return run_with_retries(None, policy, sname, lambda: f(*args, **kwargs))
            ex = _root.for_call()
            pos, rec = begin_call(ex, ctx, sname, "step")
            if rec is not None:
                return replay(ctx, pos, rec, sname, "step")
            started = now_ms()
            value, exc = None, None
            state = StepState(sname, pos)
            token = _step.set(state)  # (no context manager: the hot path)
            try:
                with call_span("step", sname, ctx.workflow_id, pos):
                    value = run_with_retries(ex, policy, sname, lambda: f(*args, **kwargs))
            except Exception as e:
                exc = e
            finally:
                _step.reset(token)
            return step_record(
                ex, ctx, pos, sname, "step", started, value, exc, attempts=state.attempts
            )

        return cast(F, _mark(swrapper, f, "step", sname))

    return deco(fn) if callable(fn) else deco


communicator = step


# -- transactions --------------------------------------------------------------------------

ISOLATIONS = ("serializable", "repeatable_read", "read_committed")


def transaction(
    fn: Any = None,
    *,
    isolation: str = "serializable",
    read_only: bool = False,
    name: str | None = None,
) -> Any:
    """A database transaction in the application database, run exactly once
    inside a workflow: its output is recorded in the same commit."""
    if isolation not in ISOLATIONS:
        raise ConfigurationError(
            f"isolation must be one of {', '.join(ISOLATIONS)}, not {isolation!r}"
        )

    def deco(f: F) -> F:
        tname = name or f.__qualname__

        if inspect.iscoroutinefunction(f):

            async def awrapper(*args: Any, **kwargs: Any) -> Any:
                ctx = workflow_here()
                ex = _root.for_call() if ctx is not None else None
                # the position is taken here, on the workflow's loop, in call
                # order; the body runs on its own event loop in a worker
                # thread, which holds the (synchronous) database transaction
                slot = begin_call(ex, ctx, tname, "transaction") if ctx and ex else None
                return await asyncio.to_thread(
                    lambda: run_transaction(
                        ex or _root.for_call(),
                        ctx,
                        tname,
                        lambda: asyncio.run(f(*args, **kwargs)),
                        isolation,
                        read_only,
                        slot,
                    )
                )

            return cast(F, _mark(awrapper, f, "transaction", tname))

        def swrapper(*args: Any, **kwargs: Any) -> Any:
            return run_transaction(
                _root.for_call(),
                workflow_here(),
                tname,
                lambda: f(*args, **kwargs),
                isolation,
                read_only,
            )

        return cast(F, _mark(swrapper, f, "transaction", tname))

    return deco(fn) if callable(fn) else deco
