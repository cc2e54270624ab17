"""SystemDatabase: typed operations over the named queries (workflows and
steps here; logs, events and messages in messaging.py; queues in
queueing.py; executors and recovery claims in recovery.py). AppDatabase:
the application database's recorded transaction outputs, when it is not
the system database."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

from .._errors import QueueDedupError
from .._records import Status
from . import schema
from .base import BaseDatabase
from .engine import connection_errors_seen, is_integrity_error
from .group_commit import GroupCommit
from .messaging import MessagingMixin
from .queries import like_contains, like_suffix, render_filtered
from .queueing import QueueingMixin
from .recovery import RecoveryMixin
from .rows import StepRow, WorkflowRow, event_of_record, now_ms
from .schedules import SchedulesMixin
from .streams import StreamsMixin


class SystemDatabase(MessagingMixin, QueueingMixin, RecoveryMixin, StreamsMixin, SchedulesMixin):
    migrations = schema.MIGRATIONS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # concurrent threads' step records, one statement when they meet
        # (group_commit.py); None where commits have nothing to share
        grouped = self.backend.group_commits
        self.step_group: GroupCommit[dict[str, Any]] | None = (
            GroupCommit(self._record_one, self._record_many) if grouped else None
        )
        # and their runs' finishes (a queue drain's other commit per workflow)
        self.finish_group: GroupCommit[dict[str, Any]] | None = (
            GroupCommit(self._finish_one, self._finish_many) if grouped else None
        )

    # -- workflows ---------------------------------------------------------------

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
        """Insert a new workflow; False when the ID is already recorded, or
        (a child: ``parent_executor_id`` given) when its parent is no longer
        running under that executor. True also when the row is our own write
        whose answer was lost with its connection (the retry then saw it)."""
        now = now or now_ms()
        timeout_ms = int(timeout * 1000) if timeout is not None else None
        errors_before = connection_errors_seen()
        child = (
            {}
            if parent_executor_id is None
            else {"parent_executor_id": parent_executor_id, "parent_run_token": parent_run_token}
        )
        try:
            result = self.run(
                "insert_workflow" if parent_executor_id is None else "insert_child_workflow",
                **child,
                workflow_id=workflow_id,
                status=status,
                name=name,
                inputs=inputs,
                executor_id=executor_id,
                queue=queue,
                priority=priority,
                dedup_id=dedup_id,
                parent_workflow_id=parent_workflow_id,
                max_recovery_attempts=max_recovery_attempts,
                now=now,
                started_at=now if status == Status.PENDING else None,
                deadline=deadline,
                timeout_ms=timeout_ms,
                not_before=now + int(delay * 1000) if delay else None,
                app_version=self.app_version,
                partition_key=partition_key,
                debounce_key=debounce_key,
                debounce_until=debounce_until,
            )
        except Exception as e:
            if debounce_key is not None and is_integrity_error(e):
                # another enqueuer's workflow waits for this key now: join it
                raise QueueDedupError(f"debounce_key {debounce_key!r} is taken") from None
            if dedup_id is not None and is_integrity_error(e):
                raise QueueDedupError(
                    f"a workflow with dedup_id {dedup_id!r} is already enqueued or running on queue {queue!r}"
                ) from None
            raise
        if result.rowcount:
            return True
        if connection_errors_seen() == errors_before or executor_id is None:
            return False
        # the statement met a connection error and was retried: if the row is
        # exactly what we wrote, under our own executor, it is our own insert
        row = self.get_workflow(workflow_id)
        return (
            row is not None
            and row.status == status
            and row.executor_id == executor_id
            and row.created_at == now
            and row.inputs == inputs
            and row.name == name
        )

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = self.run("get_workflow", workflow_id=workflow_id).first()
        return WorkflowRow(*row) if row else None

    def workflow_exists(self, workflow_id: str, conn: Any) -> bool:
        return (
            self.on(conn, self.q("get_outcome"), {"workflow_id": workflow_id}).first() is not None
        )

    def get_outcome(self, workflow_id: str) -> tuple[str, str | None, str | None] | None:
        row = self.run("get_outcome", workflow_id=workflow_id).first()
        return (row[0], row[1], row[2]) if row else None

    def finish_workflow(
        self,
        workflow_id: str,
        executor_id: str,
        status: str,
        output: str | None,
        error: str | None,
        run_token: int | None = None,
    ) -> bool:
        """End the workflow, if it still runs under this run (``run_token``:
        the row's created_at the run started on; None: any row of the executor)."""
        params = dict(
            workflow_id=workflow_id,
            executor_id=executor_id,
            run_token=run_token,
            status=status,
            output=output,
            error=error,
            now=now_ms(),
        )
        if self.finish_group is not None:
            return self.finish_group.submit(params)
        return self._finish_one(params)

    def _finish_one(self, params: dict[str, Any]) -> bool:
        return bool(self.run("finish_workflow", **params).rowcount)

    def _finish_many(self, batch: list[dict[str, Any]]) -> list[bool]:
        """Several runs' finishes in one statement (Postgres), in workflow-ID
        order, so two batches lock shared rows alike."""
        if len({p["workflow_id"] for p in batch}) < len(batch):
            # two runs under one ID (a deleted workflow's and a new one's):
            # one UPDATE cannot answer both; the group writes each alone
            raise ValueError("one workflow twice in a batch of finishes")
        rows = sorted(batch, key=lambda p: p["workflow_id"])
        arrays = {key: [p[key] for p in rows] for key in rows[0]}
        ended = {r[0] for r in self.execute_arrays(self.q("finish_workflows"), arrays)}
        return [p["workflow_id"] in ended for p in batch]

    def mark_retries_exceeded(self, workflow_id: str, executor_id: str) -> None:
        self.run(
            "mark_retries_exceeded", workflow_id=workflow_id, executor_id=executor_id, now=now_ms()
        )

    def cancel_workflow(self, workflow_id: str, reason: str | None = None) -> bool:
        return bool(
            self.run(
                "cancel_workflow", workflow_id=workflow_id, reason=reason, now=now_ms()
            ).rowcount
        )

    def release_cancelled_run(
        self, workflow_id: str, executor_id: str, run_token: int | None = None
    ) -> None:
        self.run(
            "release_cancelled_run",
            workflow_id=workflow_id,
            executor_id=executor_id,
            run_token=run_token,
        )

    def cancelled_among(self, workflow_ids: list[str], chunk: int = 500) -> list[str]:
        """Those of ``workflow_ids`` that are CANCELLED (a poll over every run in
        this process: thousands of IDs while a recovery runs)."""
        if self.backend.binds_arrays:
            sql = self.q("cancelled_among_array")
            rows = self.retrying(lambda: self.execute_arrays(sql, {"ids": workflow_ids}))
            return [r[0] for r in rows]
        out: list[str] = []
        for i in range(0, len(workflow_ids), chunk):
            out.extend(r[0] for r in self.run("cancelled_among", ids=workflow_ids[i : i + chunk]))
        return out

    def children_of(self, workflow_id: str) -> list[str]:
        return [r[0] for r in self.run("children_of", workflow_id=workflow_id)]

    def resume_workflow(
        self,
        read: WorkflowRow,
        executor_id: str | None,
        queue: str | None,
        app_version: str | None = None,
    ) -> bool:
        """Resume the workflow as ``read`` saw it: PENDING under ``executor_id``,
        or (None) back on ``queue``, recorded as of ``app_version`` (None: the
        version it has). One conditional statement: False when the row changed
        since it was read (claimed, dequeued, cancelled, ended)."""
        status = Status.ENQUEUED if executor_id is None else Status.PENDING
        now = now_ms()
        return bool(
            self.run(
                "resume_workflow",
                workflow_id=read.workflow_id,
                status=status,
                executor_id=executor_id,
                queue=queue,
                keep_slot=1 if status == Status.ENQUEUED and read.status == Status.CANCELLED else 0,
                started_at=now if executor_id else None,
                now=now,
                old_status=read.status,
                old_executor_id=read.executor_id or "",
                old_attempts=read.recovery_attempts,
                old_updated_at=read.updated_at,
                app_version=app_version or read.app_version,
            ).rowcount
        )

    def move_enqueued_version(self, read: WorkflowRow, app_version: str) -> bool:
        """Record the ENQUEUED workflow ``read`` as of ``app_version`` (its
        queue's dequeuers of that version take it); False when it is no
        longer waiting with the version it was read with."""
        return bool(
            self.run(
                "move_enqueued_version",
                workflow_id=read.workflow_id,
                app_version=app_version,
                old_app_version=read.app_version or "",
                now=now_ms(),
            ).rowcount
        )

    def insert_restart(
        self,
        row: WorkflowRow,
        new_id: str,
        *,
        executor_id: str | None,
        queue: str | None,
        copy_before: int,
        app_version: str | None = None,
    ) -> bool:
        """A new workflow with ``row``'s function and inputs and its calls
        before ``copy_before`` (0-based), in one transaction, recorded as of
        ``app_version`` (None: this process's version, else ``row``'s)."""
        now = now_ms()
        with self.transaction() as conn:
            inserted = conn.execute(
                self.q("insert_workflow"),
                dict(
                    workflow_id=new_id,
                    status=Status.PENDING if executor_id else Status.ENQUEUED,
                    name=row.name,
                    inputs=row.inputs,
                    executor_id=executor_id,
                    queue=queue,
                    priority=row.priority,
                    dedup_id=None,
                    parent_workflow_id=None,
                    max_recovery_attempts=row.max_recovery_attempts,
                    now=now,
                    started_at=now if executor_id else None,
                    deadline=None,
                    timeout_ms=row.timeout_ms,
                    not_before=None,
                    app_version=app_version or self.app_version or row.app_version,
                    partition_key=row.partition_key,
                    debounce_key=None,
                    debounce_until=None,
                ),
            ).rowcount
            if inserted:
                conn.execute(
                    self.q("set_forked_from"),
                    dict(
                        workflow_id=new_id,
                        forked_from=row.workflow_id,
                        forked_from_step=copy_before,
                    ),
                )
            if inserted and copy_before > 0:
                conn.execute(
                    self.q("copy_steps"),
                    dict(workflow_id=row.workflow_id, new_workflow_id=new_id, before=copy_before),
                )
                # the stream values those calls wrote: a replayed write skips its insert
                self.copy_streams(conn, row.workflow_id, new_id, copy_before)
                # the events those calls set: a replayed set_event skips its write
                for (output,) in conn.execute(
                    self.q("copied_event_sets"),
                    dict(workflow_id=new_id),
                ):
                    key, value = event_of_record(output)
                    if key is not None:
                        conn.execute(
                            self.q("set_event"),
                            dict(workflow_id=new_id, key=key, value=value, now=now),
                        )
        return bool(inserted)

    def expired_deadlines(self) -> list[str]:
        return [r[0] for r in self.run("expired_deadlines", now=now_ms())]

    def list_workflows(
        self,
        *,
        limit: int | None = 20,
        offset: int = 0,
        before: tuple[int, str] | None = None,
        **filters: Any,
    ) -> list[WorkflowRow]:
        """Newest first; ``filters`` as ``count_workflows``. ``before`` is a
        keyset cursor (created_at, workflow_id)."""
        terms, params = _workflow_filters(**filters)
        if before is not None:
            terms.append("before")
            params["b_at"], params["b_id"] = before
        if limit is not None:
            params["limit"] = limit
        if offset:
            params["offset"] = offset
        sql = render_filtered(
            "list_workflows",
            self.backend,
            terms,
            {"statuses": _bound_statuses(params)},
            limit=limit is not None,
            offset=bool(offset),
        )
        return [WorkflowRow(*tuple(r)) for r in self.execute(sql, params)]

    def count_workflows(self, **filters: Any) -> int:
        """How many workflows match (the filters of ``_workflow_filters``)."""
        terms, params = _workflow_filters(**filters)
        sql = render_filtered(
            "count_workflows", self.backend, terms, {"statuses": _bound_statuses(params)}
        )
        return int(self.execute(sql, params).scalar() or 0)

    def child_counts(self, workflow_ids: list[str]) -> dict[str, int]:
        """How many children each of these workflows has (absent: none)."""
        if not workflow_ids:
            return {}
        return {r[0]: int(r[1]) for r in self.run("child_counts", ids=workflow_ids)}

    # -- steps ---------------------------------------------------------------------

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
        conn: Any = None,
        ended_at: int | None = None,
        cancelled: bool = False,
        attempts: int = 1,
        detail: str | None = None,
        run_token: int | None = None,
    ) -> bool:
        """Record a finished call; False when not recorded (already recorded,
        or this run no longer owns the running workflow). ``cancelled``:
        record it on a workflow cancelled while the call ran (still ours).
        ``run_token``: the created_at of the row the run started on (a
        workflow recorded again under a deleted one's ID is not that run's);
        None: any row of this executor."""
        params = dict(
            workflow_id=workflow_id,
            executor_id=executor_id,
            run_token=run_token,
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
        if conn is not None:
            query = "record_step_cancelled" if cancelled else "record_step"
            return bool(self.on(conn, self.q(query), params).rowcount)
        if cancelled:
            return bool(self.run("record_step_cancelled", **params).rowcount)
        if self.step_group is not None:
            return self.step_group.submit(params)
        return self._record_one(params)

    def _record_one(self, params: dict[str, Any]) -> bool:
        return bool(self.run("record_step", **params).rowcount)

    def _record_many(self, batch: list[dict[str, Any]]) -> list[bool]:
        """Several threads' step records in one statement (Postgres); rows
        in workflow-ID order, so two batches lock shared rows alike."""
        rows = sorted(batch, key=lambda p: (p["workflow_id"], p["position"]))
        arrays = {key: [p[key] for p in rows] for key in rows[0]}
        written = {(r[0], r[1]) for r in self.execute_arrays(self.q("record_steps"), arrays)}
        return [(p["workflow_id"], p["position"]) in written for p in batch]

    def get_steps(self, workflow_id: str) -> list[StepRow]:
        return [StepRow(*r) for r in self.run("get_steps", workflow_id=workflow_id)]

    def get_steps_of(self, workflow_ids: list[str], chunk: int = 500) -> dict[str, list[StepRow]]:
        """The recorded calls of many workflows, a few round trips in all."""
        out: dict[str, list[StepRow]] = {wid: [] for wid in workflow_ids}
        for i in range(0, len(workflow_ids), chunk):
            for r in self.run("get_steps_of", ids=workflow_ids[i : i + chunk]):
                out[r[0]].append(StepRow(*tuple(r)[1:]))
        return out

    def get_step(self, workflow_id: str, position: int) -> StepRow | None:
        row = self.run("get_step", workflow_id=workflow_id, position=position).first()
        return StepRow(*row) if row else None


class AppDatabase(BaseDatabase):
    """The database user transactions run in, when it is not the system database."""

    version_table = "app_schema_version"
    migrations = schema.APP_MIGRATIONS

    def insert_tx_output(
        self, conn: Connection, workflow_id: str, position: int, output: str | None
    ) -> bool:
        """Record a transaction's output in its own transaction; False when
        one is recorded at this position already."""
        try:
            with conn.begin_nested():
                conn.execute(
                    self.text(self.q("insert_tx_output")),
                    dict(workflow_id=workflow_id, position=position, output=output, now=now_ms()),
                )
            return True
        except Exception as e:
            if is_integrity_error(e):
                return False
            raise

    def get_tx_output(self, workflow_id: str, position: int) -> tuple[bool, str | None]:
        row = self.run("get_tx_output", workflow_id=workflow_id, position=position).first()
        return (True, row[0]) if row else (False, None)


def _workflow_filters(
    *,
    statuses: list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: int | None = None,
    until: int | None = None,
    parent_workflow_id: str | None = None,
    top_level: bool = False,
    id_contains: str | None = None,
    app_version: str | None = None,
    partition_key: str | None = None,
) -> tuple[list[str], dict[str, Any]]:
    """The FILTERS terms of list_workflows/count_workflows and their binds."""
    terms: list[str] = []
    params: dict[str, Any] = {}
    if statuses and Status.DELAYED in statuses:
        statuses = [s for s in statuses if s != Status.DELAYED]
        if Status.ENQUEUED not in statuses:  # (ENQUEUED finds delayed ones too)
            terms.append("statuses_or_delayed" if statuses else "delayed")
            params["delayed_after"] = now_ms()
            params.update({f"statuses{i}": s for i, s in enumerate(statuses)})
            statuses = None
    if statuses:
        terms.append("statuses")
        params.update({f"statuses{i}": s for i, s in enumerate(statuses)})
    if name:
        params["name"] = name
        if ":" in name:
            terms.append("name")
        else:  # the bare function name
            terms.append("function")
            params["name_suffix"] = like_suffix(name)
    if queue is not None:
        terms.append("queue")
        params["queue"] = queue
    for key, bound in (("since", since), ("until", until)):
        if bound is not None:
            terms.append(key)
            params[key] = bound
    if parent_workflow_id is not None:
        terms.append("parent")
        params["parent"] = parent_workflow_id
    if top_level:
        terms.append("top_level")
    if partition_key is not None:
        terms.append("partition")
        params["partition_key"] = partition_key
    if app_version is not None:
        terms.append("app_version")
        params["app_version"] = app_version
    if id_contains:
        terms.append("id_contains")
        params["id_like"] = like_contains(id_contains)
    return terms, params


def _bound_statuses(params: dict[str, Any]) -> int:
    """How many ``statuses{i}`` binds ``_workflow_filters`` made."""
    return sum(1 for k in params if k.startswith("statuses"))
