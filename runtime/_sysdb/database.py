"""SystemDatabase: typed operations over the named queries (workflows, steps,
executors here; logs, events and messages in messaging.py; queues in
queueing.py). AppDatabase: the application database's recorded transaction
outputs, when it is not the system database."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .._errors import QueueDedupError
from . import schema
from .base import BaseDatabase
from .engine import connection_errors_seen, is_integrity_error
from .messaging import MessagingMixin
from .queueing import QueueingMixin
from .rows import (
    _NEVER,
    ClaimedRow,
    ExecutorRow,
    StepRow,
    WorkflowRow,
    event_of_record,
    now_ms,
)


class SystemDatabase(MessagingMixin, QueueingMixin):
    migrations = schema.MIGRATIONS

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
        max_recovery_attempts: int = 50,
        timeout: float | None = None,
        deadline: int | None = None,
        delay: float | None = None,
        now: int | None = None,
    ) -> bool:
        """Insert a new workflow; False when the ID is already recorded, or
        (a child: ``parent_executor_id`` given) when its parent is no longer
        running under that executor. True also when the row is our own write
        whose answer was lost with its connection (the retry then saw it)."""
        now = now or now_ms()
        timeout_ms = int(timeout * 1000) if timeout is not None else None
        errors_before = connection_errors_seen()
        child = {} if parent_executor_id is None else {"parent_executor_id": parent_executor_id}
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
                started_at=now if status == "PENDING" else None,
                deadline=deadline,
                timeout_ms=timeout_ms,
                not_before=now + int(delay * 1000) if delay else None,
            )
        except Exception as e:
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

    def workflow_exists(self, workflow_id: str, conn: Connection) -> bool:
        return (
            conn.execute(self.text(self.q("get_outcome")), {"workflow_id": workflow_id}).first()
            is not None
        )

    def get_outcome(self, workflow_id: str) -> tuple[str, str | None, str | None] | None:
        row = self.run("get_outcome", workflow_id=workflow_id).first()
        return (row[0], row[1], row[2]) if row else None

    def finish_workflow(
        self, workflow_id: str, executor_id: str, status: str, output: str | None, error: str | None
    ) -> bool:
        result = self.run(
            "finish_workflow",
            workflow_id=workflow_id,
            executor_id=executor_id,
            status=status,
            output=output,
            error=error,
            now=now_ms(),
        )
        return bool(result.rowcount)

    def mark_retries_exceeded(self, workflow_id: str, executor_id: str) -> None:
        self.run(
            "mark_retries_exceeded", workflow_id=workflow_id, executor_id=executor_id, now=now_ms()
        )

    def requeue_all(self, old_executor_id: str, before: int | None = None) -> list[tuple[str, str]]:
        """Put ``old_executor_id``'s in-flight queued workflows back on their
        queues (one recovery attempt each; past the limit they end
        RETRIES_EXCEEDED). Returns (ID, new status) pairs."""
        rows = self.run(
            "requeue_all",
            old_executor_id=old_executor_id,
            before=before if before is not None else _NEVER,
            now=now_ms(),
        )
        return [(r[0], r[1]) for r in rows]

    def inflight_executors(self) -> list[str]:
        return [r[0] for r in self.run("inflight_executors") if r[0] is not None]

    def inflight_names(self, executor_id: str) -> list[str]:
        return [r[0] for r in self.run("inflight_names", executor_id=executor_id)]

    def inflight_of_executor(self, executor_id: str) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.run("inflight_of_executor", executor_id=executor_id)]

    def claim_all(
        self,
        old_executor_id: str,
        executor_id: str,
        names: list[str],
        *,
        include_queued: bool = False,
        before: int | None = None,
    ) -> list[ClaimedRow]:
        """Adopt, in one statement, every in-flight workflow of ``old_executor_id``
        whose function is in ``names``."""
        if not names:
            return []
        return self._claim(
            "claim_all",
            ("names",),
            old_executor_id=old_executor_id,
            executor_id=executor_id,
            names=names,
            include_queued=1 if include_queued else 0,
            before=before if before is not None else _NEVER,
        )

    def own_stale(self, executor_id: str, before: int) -> list[str]:
        """IDs of ``executor_id``'s in-flight workflows not updated since ``before``."""
        return [r[0] for r in self.run("own_stale", executor_id=executor_id, before=before)]

    def claim_own(
        self, executor_id: str, ids: list[str], names: list[str], before: int
    ) -> list[ClaimedRow]:
        """Re-claim (counting a recovery attempt) those of ``ids`` that are
        still this executor's, in flight and untouched since ``before``."""
        if not ids or not names:
            return []
        return self._claim(
            "claim_own",
            ("ids", "names"),
            executor_id=executor_id,
            ids=ids,
            names=names,
            before=before,
        )

    def _claim(self, query: str, lists: tuple[str, ...], **params: Any) -> list[ClaimedRow]:
        stmt = sa.text(self.q(query)).bindparams(
            *(sa.bindparam(name, expanding=True) for name in lists)
        )
        params["now"] = now_ms()

        def run() -> list[ClaimedRow]:
            with self.transaction() as conn:
                return [ClaimedRow(*tuple(r)) for r in conn.execute(stmt, params)]

        return self.retrying(run)

    def cancel_workflow(self, workflow_id: str) -> bool:
        return bool(self.run("cancel_workflow", workflow_id=workflow_id, now=now_ms()).rowcount)

    def release_cancelled_run(self, workflow_id: str, executor_id: str) -> None:
        self.run("release_cancelled_run", workflow_id=workflow_id, executor_id=executor_id)

    def cancelled_among(self, workflow_ids: list[str], chunk: int = 500) -> list[str]:
        """Those of ``workflow_ids`` that are CANCELLED."""
        stmt = sa.text(self.q("cancelled_among")).bindparams(sa.bindparam("ids", expanding=True))
        out: list[str] = []
        for i in range(0, len(workflow_ids), chunk):
            ids = workflow_ids[i : i + chunk]

            def run(ids: list[str] = ids) -> list[Any]:
                with self.connect() as conn:
                    return list(conn.execute(stmt, {"ids": ids}))

            out.extend(r[0] for r in self.retrying(run))
        return out

    def children_of(self, workflow_id: str) -> list[str]:
        return [r[0] for r in self.run("children_of", workflow_id=workflow_id)]

    def resume_workflow(
        self, read: WorkflowRow, executor_id: str | None, queue: str | None
    ) -> bool:
        """Resume the workflow as ``read`` saw it: PENDING under ``executor_id``,
        or (None) back on ``queue``. One conditional statement: False when the
        row changed since it was read (claimed, dequeued, cancelled, ended)."""
        status = "ENQUEUED" if executor_id is None else "PENDING"
        now = now_ms()
        return bool(
            self.run(
                "resume_workflow",
                workflow_id=read.workflow_id,
                status=status,
                executor_id=executor_id,
                queue=queue,
                keep_slot=1 if status == "ENQUEUED" and read.status == "CANCELLED" else 0,
                started_at=now if executor_id else None,
                now=now,
                old_status=read.status,
                old_executor_id=read.executor_id or "",
                old_attempts=read.recovery_attempts,
                old_updated_at=read.updated_at,
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
    ) -> bool:
        """A new workflow with ``row``'s function and inputs and its calls
        before ``copy_before`` (0-based), in one transaction."""
        now = now_ms()
        with self.transaction() as conn:
            inserted = conn.execute(
                self.text(self.q("insert_workflow")),
                dict(
                    workflow_id=new_id,
                    status="PENDING" if executor_id else "ENQUEUED",
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
                ),
            ).rowcount
            if inserted and copy_before > 0:
                conn.execute(
                    self.text(self.q("copy_steps")),
                    dict(workflow_id=row.workflow_id, new_workflow_id=new_id, before=copy_before),
                )
                # the events those calls set: a replayed set_event skips its write
                for (output,) in conn.execute(
                    self.text(self.q("copied_event_sets")),
                    dict(workflow_id=new_id),
                ):
                    key, value = event_of_record(output)
                    if key is not None:
                        conn.execute(
                            self.text(self.q("set_event")),
                            dict(workflow_id=new_id, key=key, value=value, now=now),
                        )
        return bool(inserted)

    def expired_deadlines(self) -> list[str]:
        return [r[0] for r in self.run("expired_deadlines", now=now_ms())]

    def list_workflows(
        self,
        *,
        statuses: list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        since: int | None = None,
        until: int | None = None,
        limit: int | None = 20,
        offset: int = 0,
        before: tuple[int, str] | None = None,
        parent_workflow_id: str | None = None,
    ) -> list[WorkflowRow]:
        """Newest first. ``before`` is a keyset cursor (created_at, workflow_id)."""
        where: list[str] = []
        params: dict[str, Any] = {}
        if statuses:
            where.append("status IN (" + ", ".join(f":st{i}" for i in range(len(statuses))) + ")")
            params.update({f"st{i}": s for i, s in enumerate(statuses)})
        if name:
            if ":" in name:
                where.append("name = :name")
                params["name"] = name
            else:  # the bare function name: match the qualname after the colon
                where.append("(name = :name OR name LIKE :name_suffix ESCAPE '\\')")
                params["name"] = name
                params["name_suffix"] = "%:" + name.replace("\\", "\\\\").replace(
                    "%", "\\%"
                ).replace("_", "\\_")
        if queue:
            where.append("queue = :queue")
            params["queue"] = queue
        if since is not None:
            where.append("created_at >= :since")
            params["since"] = since
        if until is not None:
            where.append("created_at <= :until")
            params["until"] = until
        if before is not None:
            where.append("(created_at < :b_at OR (created_at = :b_at AND workflow_id < :b_id))")
            params["b_at"], params["b_id"] = before
        if parent_workflow_id is not None:
            where.append("parent_workflow_id = :parent")
            params["parent"] = parent_workflow_id
        from .queries import WORKFLOW_COLUMNS

        prefix = "wf." if self.dialect == "postgresql" else ""
        sql = f"SELECT {WORKFLOW_COLUMNS} FROM {prefix}workflows"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at DESC, workflow_id DESC"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        if offset:
            if limit is None:
                sql += " LIMIT -1" if self.dialect == "sqlite" else ""
            sql += " OFFSET :offset"
            params["offset"] = offset
        return [WorkflowRow(*tuple(r)) for r in self.execute(sql, params)]

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
        conn: Connection | None = None,
        ended_at: int | None = None,
        cancelled: bool = False,
    ) -> bool:
        """Record a finished call; False when not recorded (already recorded,
        or this executor no longer owns the running workflow). ``cancelled``:
        record it on a workflow cancelled while the call ran (still ours)."""
        params = dict(
            workflow_id=workflow_id,
            executor_id=executor_id,
            position=position,
            name=name,
            kind=kind,
            output=output,
            error=error,
            child_workflow_id=child_workflow_id,
            started_at=started_at,
            ended_at=ended_at if ended_at is not None else now_ms(),
        )
        query = "record_step_cancelled" if cancelled else "record_step"
        if conn is not None:
            return bool(conn.execute(self.text(self.q(query)), params).rowcount)
        return bool(self.run(query, **params).rowcount)

    def get_steps(self, workflow_id: str) -> list[StepRow]:
        return [StepRow(*r) for r in self.run("get_steps", workflow_id=workflow_id)]

    def get_steps_of(self, workflow_ids: list[str], chunk: int = 500) -> dict[str, list[StepRow]]:
        """The recorded calls of many workflows, a few round trips in all."""
        out: dict[str, list[StepRow]] = {wid: [] for wid in workflow_ids}
        stmt = sa.text(self.q("get_steps_of")).bindparams(sa.bindparam("ids", expanding=True))
        for i in range(0, len(workflow_ids), chunk):
            ids = workflow_ids[i : i + chunk]

            def run(ids: list[str] = ids) -> list[Any]:
                with self.connect() as conn:
                    return list(conn.execute(stmt, {"ids": ids}))

            for r in self.retrying(run):
                out[r[0]].append(StepRow(*tuple(r)[1:]))
        return out

    def get_step(self, workflow_id: str, position: int) -> StepRow | None:
        row = self.run("get_step", workflow_id=workflow_id, position=position).first()
        return StepRow(*row) if row else None

    # -- executors -------------------------------------------------------------------

    def heartbeat(
        self, executor_id: str, host: str, pid: int, started_at: int | None = None
    ) -> None:
        """Record that ``executor_id`` is alive in process ``pid`` on ``host``,
        which started at ``started_at`` (epoch ms; default now)."""
        now = now_ms()
        self.run(
            "heartbeat",
            executor_id=executor_id,
            host=host,
            pid=pid,
            started_at=now if started_at is None else started_at,
            now=now,
        )

    def list_executors(self) -> list[ExecutorRow]:
        return [ExecutorRow(*r) for r in self.run("list_executors")]

    def delete_executor(self, executor_id: str) -> None:
        self.run("delete_executor", executor_id=executor_id)


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
        except sa_exc.IntegrityError:
            return False

    def get_tx_output(self, workflow_id: str, position: int) -> tuple[bool, str | None]:
        row = self.run("get_tx_output", workflow_id=workflow_id, position=position).first()
        return (True, row[0]) if row else (False, None)
