"""Schedules: ``@wf.scheduled`` declares a cron-driven workflow in the code;
``wf.create_schedule`` stores one in the database at run time, which
operators pause, resume, delete, trigger ("run now") and backfill. The
worker's cron loop (``wf._worker.cron``) starts the ticks of both.

A stored schedule's workflow is called ``fn(scheduled_at, started_at, *args,
**kwargs)``, like a declared one's with the stored arguments after: a tick
(a backfilled one above all) knows which moment it stands for. Its ticks'
IDs are ``sched-NAME-<tick time>``, so each tick runs once, whoever starts
it. Stored names never contain ``:`` (declared schedules are named after
their workflow, ``module:function``): the two kinds can never take each
other's name or tick IDs. Every check is made before anything is written."""

from __future__ import annotations

import inspect
import logging
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from . import _root
from ._core import encode_inputs
from ._errors import ConfigurationError
from ._handles import WorkflowHandle
from ._inspect import schedule_info
from ._records import ScheduleInfo
from ._registry import (
    WorkflowSpec,
    declared_schedules,
    find_or_import_workflow,
    schedules_changed,
)
from ._worker.cron import DEFAULT_QUEUE, spec_by_name, start_tick, tick_id

if TYPE_CHECKING:
    from ._sysdb import SystemDatabase
    from ._sysdb.schedules import ScheduleDef

log = logging.getLogger("wf")

# a backfill starts at most this many ticks (a typo in a range must not
# enqueue millions of workflows)
MAX_BACKFILL = 10_000
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,199}$")


def scheduled(cron: str) -> Callable[[Any], Any]:
    """Run the decorated workflow ``fn(scheduled_at, started_at)`` on a cron schedule."""
    from croniter import croniter

    if not croniter.is_valid(cron):
        raise ConfigurationError(f"invalid cron expression {cron!r}")

    def deco(fn: Any) -> Any:
        if getattr(fn, "wf_kind", None) != "workflow":
            raise ConfigurationError("@wf.scheduled goes above @wf.workflow")
        declared_schedules.append((cron, fn))
        schedules_changed.set()
        return fn

    return deco


# -- stored schedules -------------------------------------------------------------------


def create_schedule(
    name: str,
    target: str | Callable[..., Any],
    cron: str,
    args: tuple[Any, ...] | list[Any] = (),
    kwargs: dict[str, Any] | None = None,
    queue: str | None = None,
) -> ScheduleInfo:
    """Store a schedule: each tick of ``cron`` (UTC; a sixth field is
    seconds) runs the workflow ``target`` (``"module:function"`` or the
    ``@wf.workflow`` function) as ``fn(scheduled_at, started_at, *args,
    **kwargs)``, once across all processes. ``queue``: ticks are enqueued
    there (its limits apply; a worker serving it runs them); None: the
    worker whose tick it is runs it. Workers pick it up within a few
    seconds. A name that is taken, a target that is no workflow here, an
    invalid cron, arguments the workflow cannot take or wf cannot store:
    ConfigurationError / SerializationError, and nothing is written."""
    _check_name(name)
    cron = _check_cron(cron)
    spec = _target_spec(target)
    if not isinstance(args, tuple | list):
        raise ConfigurationError(f"args is a tuple or list (got {type(args).__name__})")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise ConfigurationError(f"kwargs is a dict (got {type(kwargs).__name__})")
    kwargs = dict(kwargs or {})
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise ConfigurationError("a queue name must not be empty")
    _check_call(spec, list(args), kwargs)
    inputs = encode_inputs(list(args), kwargs)  # SerializationError before anything is written
    db = _db()
    if not db.insert_schedule(
        name=name, workflow_name=spec.name, cron=cron, inputs=inputs, queue=queue
    ):
        raise ConfigurationError(
            f"a schedule named {name!r} exists already (wf.delete_schedule it first)"
        )
    schedules_changed.set()  # this process's cron loop reads it now
    row = db.get_schedule(name)
    assert row is not None
    return schedule_info(row, datetime.now(UTC))


def pause_schedule(name: str) -> None:
    """Stop starting the schedule's ticks (stored or code-declared) from now
    on, in every process; ticks already started run on. Pausing a paused
    schedule does nothing."""
    _set_paused(name, True)


def resume_schedule(name: str) -> None:
    """Tick again from now on; the ticks missed while paused are not run
    (``backfill_schedule`` runs them)."""
    _set_paused(name, False)


def delete_schedule(name: str) -> None:
    """Delete a stored schedule: no tick starts after this returns (ticks
    already started run on; their workflows stay recorded). A code-declared
    schedule is removed from the code (or paused), not here."""
    row = _existing(name)
    if row.source != "db":
        raise ConfigurationError(
            f"schedule {name!r} is declared in the code (@wf.scheduled): remove it there, "
            "or pause it (wf.pause_schedule)"
        )
    if not _db().delete_schedule(name):
        raise _unknown(name)
    schedules_changed.set()


def trigger_schedule(name: str) -> WorkflowHandle:
    """Run the schedule's workflow once now, beside its ticks (also while
    paused): one extra run with an ID of its own (``sched-NAME-now-…``),
    ``scheduled_at`` = now, enqueued on the schedule's queue (else
    ``default``) for a worker."""
    row = _existing(name)
    now = datetime.now(UTC)
    wid = start_tick(
        _root.current_or_none(),
        _db(),
        name=row.name,
        spec=spec_by_name(row.workflow_name),
        tick=now,
        inputs=row.inputs,
        queue=row.queue or DEFAULT_QUEUE,
        workflow_id=f"sched-{row.name}-now-{uuid.uuid4().hex[:12]}",
    )
    return WorkflowHandle(wid)


def backfill_schedule(name: str, start: datetime, end: datetime) -> list[WorkflowHandle]:
    """Run each tick of the schedule with ``start <= tick < end`` that has
    not run, exactly once: a tick whose workflow is recorded (it ran, runs,
    or was backfilled before) is skipped; the others are enqueued with the
    tick's own ID on the schedule's queue (else ``default``) for workers.
    Returns the handles of the ticks it enqueued. Times are timezone-aware;
    ``end`` not after now; at most ``MAX_BACKFILL`` ticks."""
    row = _existing(name)
    for label, t in (("start", start), ("end", end)):
        if not isinstance(t, datetime) or t.tzinfo is None or t.utcoffset() is None:
            raise ConfigurationError(
                f"{label} is a timezone-aware datetime (e.g. datetime(2026, 11, 1, tzinfo=UTC))"
            )
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    now = datetime.now(UTC)
    if start >= end:
        raise ConfigurationError(f"start ({start:%Y-%m-%dT%H:%M:%SZ}) is not before end")
    if end > now:
        raise ConfigurationError(
            f"end ({end:%Y-%m-%dT%H:%M:%SZ}) is in the future: those ticks run when they come"
        )
    ticks = _ticks_between(row.cron, start, end)
    db = _db()
    ids = [tick_id(row.name, t) for t in ticks]
    recorded = db.recorded_ids(ids)
    spec = spec_by_name(row.workflow_name)
    ex = _root.current_or_none()
    handles = []
    for t, wid in zip(ticks, ids, strict=True):
        if wid in recorded:
            continue
        start_tick(
            ex,
            db,
            name=row.name,
            spec=spec,
            tick=t,
            inputs=row.inputs,
            queue=row.queue or DEFAULT_QUEUE,
        )
        handles.append(WorkflowHandle(wid))
    return handles


# -- checks ------------------------------------------------------------------------------


def _db() -> SystemDatabase:
    ex = _root.current_or_none()
    return ex.sysdb if ex is not None else _root.client()


def _unknown(name: str) -> ConfigurationError:
    return ConfigurationError(f"no schedule named {name!r} (wf schedule list shows them)")


def _existing(name: str) -> ScheduleDef:
    if not isinstance(name, str) or not name:
        raise ConfigurationError("a schedule name is a non-empty string")
    row = _db().get_schedule(name)
    if row is None:
        raise _unknown(name)
    return row


def _set_paused(name: str, paused: bool) -> None:
    _existing(name)
    if not _db().set_schedule_paused(name, paused):
        raise _unknown(name)
    schedules_changed.set()


def _check_name(name: Any) -> None:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigurationError(
            f"schedule name {name!r}: use 1-200 letters, digits, '_', '.' or '-' "
            "(a ':' marks a code-declared schedule, named after its workflow)"
        )


def _check_cron(cron: Any) -> str:
    from croniter import croniter

    if not isinstance(cron, str) or not cron.strip():
        raise ConfigurationError("a cron expression is a non-empty string like '0 3 * * *'")
    cron = " ".join(cron.split())
    try:
        valid = croniter.is_valid(cron)
    except Exception:
        valid = False
    if not valid:
        raise ConfigurationError(
            f"invalid cron expression {cron!r} (five fields, minute first, or six with seconds last)"
        )
    return cron


def _target_spec(target: Any) -> WorkflowSpec:
    """The workflow ``target`` names, imported here: a schedule of nothing
    runnable is refused now, not at each tick."""
    spec = getattr(target, "wf_spec", None)
    if isinstance(spec, WorkflowSpec):
        return spec
    if callable(target):
        raise ConfigurationError(
            f"{getattr(target, '__qualname__', target)!r} is not a @wf.workflow function"
        )
    if not isinstance(target, str) or target.count(":") != 1 or target != target.strip():
        raise ConfigurationError(
            f"target {target!r} is not 'module:function' (e.g. sample_apps.hello:greet)"
        )
    found = find_or_import_workflow(target)  # an unimportable module: ConfigurationError
    if found is None:
        raise ConfigurationError(f"{target} is not a @wf.workflow (no workflow by that name)")
    return found


def _check_call(spec: WorkflowSpec, args: list[Any], kwargs: dict[str, Any]) -> None:
    try:
        sig = inspect.signature(spec.fn)
    except (TypeError, ValueError):
        return
    t = datetime.now(UTC)
    try:
        sig.bind(t, t, *args, **kwargs)
    except TypeError as e:
        raise ConfigurationError(
            f"bad arguments for {spec.name}: a tick calls it as "
            f"fn(scheduled_at, started_at, *args, **kwargs): {e}"
        ) from None


def _ticks_between(cron: str, start: datetime, end: datetime) -> list[datetime]:
    """The ticks ``start <= t < end``; more than MAX_BACKFILL is refused."""
    from croniter import croniter

    it = croniter(cron, start - timedelta(seconds=1))
    out: list[datetime] = []
    while True:
        t: datetime = it.get_next(datetime)
        if t < start:
            continue
        if t >= end:
            return out
        out.append(t)
        if len(out) > MAX_BACKFILL:
            raise ConfigurationError(
                f"that range holds more than {MAX_BACKFILL:,} ticks of {cron!r}: backfill "
                "a shorter one at a time"
            )
