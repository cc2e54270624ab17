"""In-memory stand-ins for the core's collaborators, for unit tests of the
core's decisions without a database (procrastinate's in-memory connector is
the model).

``InMemorySystemDatabase`` implements only the ``SystemDatabase`` methods the
core functions under test call, with the same signatures and the semantics of
``wf/_sysdb/database.py`` and its SQL in ``wf/_sysdb/queries.py``: the guarded
writes (``record_step``, a child's ``insert_workflow``) are refused exactly
when their ``WHERE EXISTS`` would be. It counts every call, so a test can say
how many round trips a decision costs. ``FakeRuntime`` satisfies
``wf._core.runtime.Runtime``; it runs nothing and starts no thread."""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from wf._errors import QueueDedupError
from wf._records import Status
from wf._sysdb import StepRow, WorkflowRow, now_ms

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from wf._core.runtime import Runtime
    from wf._registry import WorkflowSpec
    from wf._sysdb import AppDatabase, SystemDatabase

READS = ("get_workflow", "get_outcome", "get_step", "get_steps", "children_of")


class InMemorySystemDatabase:
    url = "memory://"
    dialect = "memory"
    listen_url = None  # nothing to LISTEN on: waiters poll

    def __init__(self) -> None:
        self.workflows: dict[str, WorkflowRow] = {}
        self.steps: dict[tuple[str, int], StepRow] = {}
        self.calls: Counter[str] = Counter()
        # answers to drop: the statement commits, its connection drops before
        # the answer arrives, and the retry finds its own row (SQL: rowcount 0)
        self._lost_answers: Counter[str] = Counter()

    # -- test controls (not SystemDatabase methods) -------------------------------------

    def reads(self) -> int:
        """Round trips that only read, so far."""
        return sum(self.calls[name] for name in READS)

    def lose_next_answer(self, method: str) -> None:
        self._lost_answers[method] += 1

    def _answer_lost(self, method: str) -> bool:
        if self._lost_answers[method]:
            self._lost_answers[method] -= 1
            return True
        return False

    def add_workflow(
        self,
        workflow_id: str,
        *,
        status: str = Status.PENDING,
        executor_id: str | None = "exec-A",
        name: str = "tests.unit:wf",
        inputs: str = '{"args":[],"kwargs":{}}',
        parent_workflow_id: str | None = None,
        deadline: int | None = None,
    ) -> WorkflowRow:
        now = now_ms()
        row = WorkflowRow(
            workflow_id=workflow_id,
            status=status,
            name=name,
            inputs=inputs,
            output=None,
            error=None,
            executor_id=executor_id,
            queue=None,
            priority=0,
            dedup_id=None,
            parent_workflow_id=parent_workflow_id,
            recovery_attempts=0,
            max_recovery_attempts=50,
            created_at=now,
            updated_at=now,
            started_at=now if status == Status.PENDING else None,
            deadline=deadline,
            timeout_ms=None,
            not_before=None,
            slot_held=1 if status == Status.PENDING else 0,
        )
        self.workflows[workflow_id] = row
        return row

    def update(self, workflow_id: str, **changes: Any) -> None:
        """Change a workflow row as another process would (cancel, adopt, end)."""
        row = self.workflows[workflow_id]
        self.workflows[workflow_id] = dataclasses.replace(row, updated_at=now_ms(), **changes)

    def add_step(self, workflow_id: str, step: StepRow) -> None:
        self.steps[(workflow_id, step.position)] = step

    def _runs_under(
        self,
        workflow_id: str,
        executor_id: str | None,
        status: str,
        run_token: int | None = None,
    ) -> bool:
        """The ``WHERE EXISTS`` of the guarded writes (``_THIS_RUN``)."""
        row = self.workflows.get(workflow_id)
        return (
            row is not None
            and row.status == status
            and row.executor_id == executor_id
            and (run_token is None or row.created_at == run_token)
        )

    # -- workflows (database.py) -----------------------------------------------------

    def insert_workflow(
        self,
        *,
        workflow_id: str,
        status: str,
        name: str,
        inputs: str,
        executor_id: str | None,
        queue: str | None = None,
        priority: int = 0,
        dedup_id: str | None = None,
        parent_workflow_id: str | None = None,
        parent_executor_id: str | None = None,
        parent_run_token: int | None = None,
        max_recovery_attempts: int = 50,
        timeout: float | None = None,
        deadline: int | None = None,
        delay: float | None = None,
        now: int | None = None,
        partition_key: str | None = None,
        debounce_key: str | None = None,
        debounce_until: int | None = None,
    ) -> bool:
        self.calls["insert_workflow"] += 1
        now = now or now_ms()
        if parent_executor_id is not None and not self._runs_under(
            parent_workflow_id or "", parent_executor_id, Status.PENDING, parent_run_token
        ):
            return False  # insert_child_workflow: the parent is not running under that executor
        if workflow_id in self.workflows:
            return False  # ON CONFLICT (workflow_id) DO NOTHING
        if dedup_id is not None and any(
            r.queue == queue
            and r.dedup_id == dedup_id
            and r.status in (Status.ENQUEUED, Status.PENDING)
            for r in self.workflows.values()
        ):
            raise QueueDedupError(
                f"a workflow with dedup_id {dedup_id!r} is already enqueued or running on queue {queue!r}"
            )
        self.workflows[workflow_id] = WorkflowRow(
            workflow_id=workflow_id,
            status=status,
            name=name,
            inputs=inputs,
            output=None,
            error=None,
            executor_id=executor_id,
            queue=queue,
            priority=priority,
            dedup_id=dedup_id,
            parent_workflow_id=parent_workflow_id,
            recovery_attempts=0,
            max_recovery_attempts=max_recovery_attempts,
            created_at=now,
            updated_at=now,
            started_at=now if status == Status.PENDING else None,
            deadline=deadline,
            timeout_ms=int(timeout * 1000) if timeout is not None else None,
            not_before=now + int(delay * 1000) if delay else None,
            slot_held=1 if status == Status.PENDING else 0,
            partition_key=partition_key,
            debounce_key=debounce_key,
            debounce_until=debounce_until,
        )
        return True

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        self.calls["get_workflow"] += 1
        return self.workflows.get(workflow_id)

    def get_outcome(self, workflow_id: str) -> tuple[str, str | None, str | None] | None:
        self.calls["get_outcome"] += 1
        row = self.workflows.get(workflow_id)
        return (row.status, row.output, row.error) if row else None

    def finish_workflow(
        self,
        workflow_id: str,
        executor_id: str,
        status: str,
        output: str | None,
        error: str | None,
        run_token: int | None = None,
    ) -> bool:
        self.calls["finish_workflow"] += 1
        if not self._runs_under(workflow_id, executor_id, Status.PENDING, run_token):
            return False
        row = self.workflows[workflow_id]
        self.workflows[workflow_id] = dataclasses.replace(
            row, status=status, output=output, error=error, updated_at=now_ms(), slot_held=0
        )
        return True

    def release_cancelled_run(
        self, workflow_id: str, executor_id: str, run_token: int | None = None
    ) -> None:
        self.calls["release_cancelled_run"] += 1
        row = self.workflows.get(workflow_id)
        if (
            row is not None
            and row.slot_held == 1
            and self._runs_under(workflow_id, executor_id, Status.CANCELLED, run_token)
        ):
            self.workflows[workflow_id] = dataclasses.replace(row, slot_held=0)

    def cancel_workflow(self, workflow_id: str, reason: str | None = None) -> bool:
        self.calls["cancel_workflow"] += 1
        row = self.workflows.get(workflow_id)
        if row is None or row.status not in (Status.PENDING, Status.ENQUEUED):
            return False
        self.workflows[workflow_id] = dataclasses.replace(
            row, status=Status.CANCELLED, cancel_reason=reason, updated_at=now_ms()
        )
        return True

    def children_of(self, workflow_id: str) -> list[str]:
        self.calls["children_of"] += 1
        return [w for w, r in self.workflows.items() if r.parent_workflow_id == workflow_id]

    # -- steps -----------------------------------------------------------------------

    def record_step(
        self,
        workflow_id: str,
        executor_id: str,
        position: int,
        name: str,
        kind: str,
        output: str | None,
        error: str | None,
        started_at: int | None,
        child_workflow_id: str | None = None,
        conn: Connection | None = None,
        ended_at: int | None = None,
        cancelled: bool = False,
        attempts: int = 1,
        detail: str | None = None,
        run_token: int | None = None,
    ) -> bool:
        self.calls["record_step_cancelled" if cancelled else "record_step"] += 1
        # record_step / record_step_cancelled: only while the workflow is
        # PENDING (CANCELLED) under this run, and the position is free
        status = Status.CANCELLED if cancelled else Status.PENDING
        if not self._runs_under(workflow_id, executor_id, status, run_token):
            return False
        if (workflow_id, position) in self.steps:
            return False  # ON CONFLICT (workflow_id, position) DO NOTHING
        self.steps[(workflow_id, position)] = StepRow(
            position=position,
            name=name,
            kind=kind,
            output=output,
            error=error,
            child_workflow_id=child_workflow_id,
            started_at=started_at,
            ended_at=ended_at if ended_at is not None else now_ms(),
            attempts=attempts,
            detail=detail,
        )
        return not self._answer_lost("record_step")

    def get_steps(self, workflow_id: str) -> list[StepRow]:
        self.calls["get_steps"] += 1
        return sorted(
            (s for (w, _), s in self.steps.items() if w == workflow_id), key=lambda s: s.position
        )

    def get_step(self, workflow_id: str, position: int) -> StepRow | None:
        self.calls["get_step"] += 1
        return self.steps.get((workflow_id, position))


@dataclass
class Submitted:
    spec: WorkflowSpec
    workflow_id: str
    args: list[Any]
    kwargs: dict[str, Any]
    deadline_ms: int | None


class FakeRuntime:
    """A ``Runtime`` over an in-memory system database: ``submit`` only
    remembers what it was asked to run."""

    def __init__(self, db: InMemorySystemDatabase | None = None, executor_id: str = "exec-A"):
        self.db = db if db is not None else InMemorySystemDatabase()
        self.executor_id = executor_id
        # the core is typed against SystemDatabase; the fake has its shape
        self.sysdb: SystemDatabase = cast("SystemDatabase", self.db)
        self.appdb: SystemDatabase | AppDatabase = self.sysdb
        self.same_db = True
        self.stopping = threading.Event()
        self.ended = 0
        self.waits = 0
        self.submitted: list[Submitted] = []

    @contextlib.contextmanager
    def waiting(self, boundary: bool = True) -> Iterator[None]:
        self.waits += 1
        yield

    def notify_ended(self) -> None:
        self.ended += 1

    def runs_here(self, workflow_id: str) -> bool:
        return False

    def submit(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        deadline_ms: int | None = None,
        run_token: int | None = None,
    ) -> Future[Any]:
        self.submitted.append(Submitted(spec, workflow_id, args, kwargs, deadline_ms))
        return Future()


def as_runtime(rt: FakeRuntime) -> Runtime:
    """Statically checks (mypy) that FakeRuntime satisfies the Runtime Protocol."""
    return rt
