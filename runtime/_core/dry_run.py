"""A dry replay (``wf.replay``): today's code run against a workflow's record
with no side effects, to find where it departs from what was recorded.

Every recorded call returns its recorded value (the replay path of each call
kind, which writes nothing); a call past the end of the record stops the run
(``_errors._ReplayEnd``) instead of running; the database is reached only through a
read-only view, so a write would be refused, never made."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._context import WorkflowContext
from .._errors import NonDeterminismError, WfError, _ReplayEnd
from .._records import Status
from .._serialization import dumps, dumps_error, loads, loads_error_info
from .recording import PATCH
from .runs import running

if TYPE_CHECKING:
    from .._registry import WorkflowSpec
    from .._sysdb import SystemDatabase, WorkflowRow

# what a dry replay may call on the system database: reads only
_READS = frozenset(
    (
        "get_workflow",
        "get_outcome",
        "get_steps",
        "get_step",
        "get_tx_output",
        "get_event",
        "list_events",
        "list_executors",
        "workflow_exists",
        "children_of",
        "listen_url",
        "backend",
        "app_version",
    )
)


class ReadOnlyDatabase:
    """The system database as a dry replay sees it: reads pass, anything else
    is refused (a replay that reaches a write is a bug in wf, reported)."""

    def __init__(self, db: SystemDatabase) -> None:
        self._db = db

    def __getattr__(self, name: str) -> Any:
        if name in _READS:
            return getattr(self._db, name)
        raise WfError(f"internal: a dry replay tried to write ({name})")


class DryRuntime:
    """The core's Runtime for a dry replay: nothing runs in the background."""

    def __init__(self, db: SystemDatabase, executor_id: str) -> None:
        self.executor_id = executor_id
        self.sysdb: Any = ReadOnlyDatabase(db)
        self.appdb: Any = self.sysdb
        self.same_db = True
        self.stopping = threading.Event()

    @contextlib.contextmanager
    def waiting(self, boundary: bool = True) -> Iterator[None]:
        yield

    @contextlib.contextmanager
    def running_inline(self, workflow_id: str) -> Iterator[None]:
        yield

    def notify_ended(self) -> None:
        pass

    def runs_here(self, workflow_id: str) -> bool:
        return False

    def submit(self, *args: Any, **kwargs: Any) -> Future[Any]:
        raise _ReplayEnd(-1, "start", "child")


@dataclass(frozen=True)
class DryResult:
    calls: int  # recorded calls the code replayed
    complete: bool  # the code reached the end the record has (else: the run is in flight)


def dry_replay(db: SystemDatabase, spec: WorkflowSpec, row: WorkflowRow) -> DryResult:
    """Run ``spec``'s code against ``row``'s record; NonDeterminismError at the
    first difference (a call, the outcome, or calls left over)."""
    steps = db.get_steps(row.workflow_id)
    ctx = WorkflowContext(
        workflow_id=row.workflow_id,
        name=row.name,
        executor_id=row.executor_id or "wf-replay",
        recorded={s.position: s for s in steps},
        dry=True,
    )
    ex = DryRuntime(db, ctx.executor_id)
    ctx.executor = ex
    decoded = loads(row.inputs) or {}
    args, kwargs = list(decoded.get("args", [])), dict(decoded.get("kwargs", {}))
    wid = row.workflow_id
    ended = row.status in (Status.SUCCESS, Status.ERROR)
    value: Any = None
    exc: BaseException | None = None
    try:
        with running(ctx):
            if spec.is_async:
                value = asyncio.run(spec.fn(*args, **kwargs))
            else:
                value = spec.fn(*args, **kwargs)
    except _ReplayEnd as stop:
        if ended:
            raise NonDeterminismError(
                f"workflow {wid}: the recorded run ended {row.status} after {_count(steps)} "
                f"calls; this code calls {stop.kind} {stop.name!r} at position "
                f"{stop.position + 1}, which the run never made"
            ) from None
        return DryResult(stop.position if stop.position >= 0 else ctx.next_position, False)
    except NonDeterminismError:
        raise
    except Exception as e:
        exc = e
    left = [s for s in steps if s.position >= ctx.next_position and s.kind != PATCH]
    if left:
        s = left[0]
        raise NonDeterminismError(
            f"workflow {wid}: this code ended after {ctx.next_position} calls; the recorded "
            f"run goes on with {s.kind} {s.name!r} at position {s.position + 1}"
        )
    _check_outcome(row, value, exc)
    return DryResult(ctx.next_position, True)


def _count(steps: list[Any]) -> int:
    return sum(1 for s in steps if s.kind != PATCH)


def _check_outcome(row: WorkflowRow, value: Any, exc: BaseException | None) -> None:
    wid = row.workflow_id
    if row.status == Status.SUCCESS:
        if exc is not None:
            raise NonDeterminismError(
                f"workflow {wid}: recorded SUCCESS, this code raises {type(exc).__name__}: {exc}"
            )
        try:
            out = dumps(value)
        except WfError as e:
            raise NonDeterminismError(
                f"workflow {wid}: recorded SUCCESS, this code returns a value wf cannot store ({e})"
            ) from None
        if out != row.output:
            raise NonDeterminismError(
                f"workflow {wid}: this code returns {_short(out)}, the recorded run returned "
                f"{_short(row.output)}"
            )
    elif row.status == Status.ERROR:
        if exc is None:
            raise NonDeterminismError(
                f"workflow {wid}: recorded ERROR, this code returns {_short(dumps(value))}"
            )
        now = loads_error_info(dumps_error(exc))
        then = loads_error_info(row.error)
        now_type, then_type = now.type if now else None, then.type if then else None
        if then_type is not None and now_type != then_type:
            raise NonDeterminismError(
                f"workflow {wid}: this code raises {now_type}, the recorded run raised {then_type}"
            )


def _short(text: str | None, n: int = 80) -> str:
    t = "null" if text is None else text
    return t if len(t) <= n else t[: n - 1] + "…"
