"""SystemDatabase: typed operations over the named queries. AppDatabase: the
database user transactions run in, holding their recorded outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .._config import display_url
from .._errors import DatabaseUnreachableError, QueueDedupError
from .._records import QueueInfo
from . import schema
from .engine import Database, _first_line, is_connection_error
from .queries import render


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class WorkflowRow:
    workflow_id: str
    status: str
    name: str
    inputs: str
    output: str | None
    error: str | None
    executor_id: str | None
    queue: str | None
    priority: int
    dedup_id: str | None
    parent_workflow_id: str | None
    recovery_attempts: int
    max_recovery_attempts: int
    created_at: int
    updated_at: int
    started_at: int | None
    deadline: int | None
    timeout_ms: int | None
    not_before: int | None


@dataclass(frozen=True)
class StepRow:
    position: int  # 0-based internally; shown from 1
    name: str
    kind: str
    output: str | None
    error: str | None
    child_workflow_id: str | None
    started_at: int | None
    ended_at: int | None


@dataclass(frozen=True)
class ClaimedRow:
    workflow_id: str
    name: str
    inputs: str
    recovery_attempts: int
    max_recovery_attempts: int
    deadline: int | None


_NEVER = 2**62  # an updated_at bound that excludes nothing


@dataclass(frozen=True)
class ExecutorRow:
    executor_id: str
    host: str
    pid: int
    started_at: int
    heartbeat_at: int


class _Base(Database):
    version_table = "schema_version"
    migrations: list[list[str]] = []

    def __init__(self, url: str, outage_timeout: float | None = None, pool_size: int = 10) -> None:
        super().__init__(url, outage_timeout, pool_size)
        self._rendered: dict[str, str] = {}

    def q(self, query: str) -> str:
        sql = self._rendered.get(query)
        if sql is None:
            sql = self._rendered[query] = render(query, self.dialect, self.version_table)
        return sql

    def run(self, query: str, /, **params: Any) -> Any:
        return self.execute(self.q(query), params)

    def ensure_reachable(self) -> None:
        """Connect once, creating the Postgres database when it is missing."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except Exception as e:
            if self.dialect == "postgresql" and "does not exist" in str(e):
                self._create_pg_database()
                return
            raise DatabaseUnreachableError(
                f"cannot reach the database {display_url(self.url)}: {_first_line(e)}"
            ) from e

    def _create_pg_database(self) -> None:
        url = sa.engine.make_url(self.url)
        admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as conn:
                name = url.database or "wf"
                quoted = '"' + name.replace('"', '""') + '"'
                try:
                    conn.exec_driver_sql(f"CREATE DATABASE {quoted}")
                except sa_exc.ProgrammingError as e:
                    if "already exists" not in str(e):
                        raise
        except DatabaseUnreachableError:
            raise
        except Exception as e:
            raise DatabaseUnreachableError(
                f"database {display_url(self.url)} does not exist and cannot be created: {_first_line(e)}"
            ) from e
        finally:
            admin.dispose()

    def schema_version(self) -> int:
        try:
            return int(self.run("get_version").scalar() or 0)
        except sa_exc.ProgrammingError:
            return 0
        except sa_exc.OperationalError as e:
            if is_connection_error(e) and "no such table" not in str(e):
                raise
            return 0

    def migrate(self) -> int:
        """Apply missing migrations; idempotent and safe from many processes at once."""

        def attempt() -> int:
            with self.transaction() as conn:
                if self.dialect == "postgresql":
                    # serialize concurrent launches; the lock ends with the transaction
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(7262001)")
                    conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS wf")
                conn.execute(sa.text(self.q("create_version_table")))
                row = conn.execute(sa.text(self.q("get_version"))).first()
                current = int(row[0]) if row else 0
                if row is None:
                    conn.execute(sa.text(self.q("insert_version")), {"v": 0})
                for version in range(current + 1, len(self.migrations) + 1):
                    for stmt in schema.statements(self.migrations[version - 1], self.dialect):
                        conn.exec_driver_sql(stmt)
                    conn.execute(sa.text(self.q("set_version")), {"v": version})
                return len(self.migrations)

        return self.retrying(attempt)


class SystemDatabase(_Base):
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
        max_recovery_attempts: int = 50,
        timeout: float | None = None,
        delay: float | None = None,
    ) -> bool:
        """Insert a new workflow; False when the ID is already recorded."""
        now = now_ms()
        timeout_ms = int(timeout * 1000) if timeout is not None else None
        try:
            result = self.run(
                "insert_workflow",
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
                deadline=now + timeout_ms
                if timeout_ms is not None and status == "PENDING"
                else None,
                timeout_ms=timeout_ms,
                not_before=now + int(delay * 1000) if delay else None,
            )
        except (sa_exc.IntegrityError, psycopg.IntegrityError):
            if dedup_id is not None:
                raise QueueDedupError(
                    f"a workflow with dedup_id {dedup_id!r} is already enqueued or running on queue {queue!r}"
                ) from None
            raise
        return bool(result.rowcount)

    def get_workflow(self, workflow_id: str) -> WorkflowRow | None:
        row = self.run("get_workflow", workflow_id=workflow_id).first()
        return WorkflowRow(*row) if row else None

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

    def requeue_all(self, old_executor_id: str, before: int | None = None) -> list[str]:
        rows = self.run(
            "requeue_all",
            old_executor_id=old_executor_id,
            before=before if before is not None else _NEVER,
            now=now_ms(),
        )
        return [r[0] for r in rows]

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
        stmt = sa.text(self.q("claim_all")).bindparams(sa.bindparam("names", expanding=True))
        params = dict(
            old_executor_id=old_executor_id,
            executor_id=executor_id,
            names=names,
            include_queued=1 if include_queued else 0,
            before=before if before is not None else _NEVER,
            now=now_ms(),
        )

        def run() -> list[ClaimedRow]:
            with self.transaction() as conn:
                return [ClaimedRow(*tuple(r)) for r in conn.execute(stmt, params)]

        return self.retrying(run)

    def cancel_workflow(self, workflow_id: str) -> bool:
        return bool(self.run("cancel_workflow", workflow_id=workflow_id, now=now_ms()).rowcount)

    def children_of(self, workflow_id: str) -> list[str]:
        return [r[0] for r in self.run("children_of", workflow_id=workflow_id)]

    def resume_workflow(self, workflow_id: str, executor_id: str | None, queue: str | None) -> bool:
        status = "ENQUEUED" if executor_id is None else "PENDING"
        return bool(
            self.run(
                "resume_workflow",
                workflow_id=workflow_id,
                status=status,
                executor_id=executor_id,
                queue=queue,
                started_at=now_ms() if executor_id else None,
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
    ) -> bool:
        """Record a finished call; False when not recorded (already recorded,
        or this executor no longer owns the running workflow)."""
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
            ended_at=now_ms(),
        )
        if conn is not None:
            return bool(conn.execute(self.text(self.q("record_step")), params).rowcount)
        return bool(self.run("record_step", **params).rowcount)

    def get_steps(self, workflow_id: str) -> list[StepRow]:
        return [StepRow(*r) for r in self.run("get_steps", workflow_id=workflow_id)]

    def get_steps_of(self, workflow_ids: list[str], chunk: int = 500) -> dict[str, list[StepRow]]:
        """The recorded calls of many workflows, a few round trips in all."""
        out: dict[str, list[StepRow]] = {wid: [] for wid in workflow_ids}
        stmt = sa.text(self.q("get_steps_of")).bindparams(sa.bindparam("ids", expanding=True))
        for i in range(0, len(workflow_ids), chunk):
            ids = workflow_ids[i : i + chunk]

            def run(ids: list[str] = ids) -> list[Any]:
                with self.engine.connect() as conn:
                    return list(conn.execute(stmt, {"ids": ids}))

            for r in self.retrying(run):
                out[r[0]].append(StepRow(*tuple(r)[1:]))
        return out

    def get_step(self, workflow_id: str, position: int) -> StepRow | None:
        row = self.run("get_step", workflow_id=workflow_id, position=position).first()
        return StepRow(*row) if row else None

    def copy_steps(self, workflow_id: str, new_workflow_id: str, before: int) -> None:
        self.run(
            "copy_steps", workflow_id=workflow_id, new_workflow_id=new_workflow_id, before=before
        )

    # -- executors -------------------------------------------------------------------

    def heartbeat(self, executor_id: str, host: str, pid: int) -> None:
        self.run("heartbeat", executor_id=executor_id, host=host, pid=pid, now=now_ms())

    def list_executors(self) -> list[ExecutorRow]:
        return [ExecutorRow(*r) for r in self.run("list_executors")]

    def delete_executor(self, executor_id: str) -> None:
        self.run("delete_executor", executor_id=executor_id)

    # -- logs --------------------------------------------------------------------------

    def insert_log(
        self,
        workflow_id: str,
        position: int,
        seq: int,
        time_ms: int,
        level: str,
        step: str | None,
        message: str,
    ) -> None:
        self.run(
            "insert_log",
            workflow_id=workflow_id,
            position=position,
            seq=seq,
            time=time_ms,
            level=level,
            step=step,
            message=message,
        )

    def get_logs(
        self,
        workflow_id: str | None = None,
        min_level: int | None = None,
        since: int | None = None,
        after_id: int | None = None,
        limit: int | None = None,
    ) -> list[tuple[int, str, int, str, str | None, str]]:
        """(log_id, workflow_id, time, level, step, message), oldest first."""
        prefix = "wf." if self.dialect == "postgresql" else ""
        where: list[str] = []
        params: dict[str, Any] = {}
        if workflow_id is not None:
            where.append("workflow_id = :workflow_id")
            params["workflow_id"] = workflow_id
        if since is not None:
            where.append("time >= :since")
            params["since"] = since
        if after_id is not None:
            where.append("log_id > :after_id")
            params["after_id"] = after_id
        if min_level is not None:
            levels = [n for n, v in _LEVELS.items() if v >= min_level]
            where.append("level IN (" + ", ".join(f":lv{i}" for i in range(len(levels))) + ")")
            params.update({f"lv{i}": lv for i, lv in enumerate(levels)})
        sql = f"SELECT log_id, workflow_id, time, level, step, message FROM {prefix}logs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY log_id"
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        return [tuple(r) for r in self.execute(sql, params)]

    # -- events -------------------------------------------------------------------------

    def set_event(
        self, workflow_id: str, key: str, value: str, conn: Connection | None = None
    ) -> None:
        params = dict(workflow_id=workflow_id, key=key, value=value, now=now_ms())
        if conn is not None:
            conn.execute(self.text(self.q("set_event")), params)
        else:
            self.run("set_event", **params)

    def get_event(self, workflow_id: str, key: str) -> str | None:
        value = self.run("get_event", workflow_id=workflow_id, key=key).scalar()
        return None if value is None else str(value)

    # -- messages -------------------------------------------------------------------------

    def insert_message(
        self,
        destination_id: str,
        topic: str,
        message: str,
        idempotency_key: str | None,
        conn: Connection,
    ) -> bool:
        """Queue a message; False when its idempotency key was seen before."""
        if idempotency_key is not None:
            fresh = conn.execute(
                self.text(self.q("insert_message_key")),
                dict(destination_id=destination_id, idempotency_key=idempotency_key),
            ).rowcount
            if not fresh:
                return False
        conn.execute(
            self.text(self.q("insert_message")),
            dict(
                destination_id=destination_id,
                topic=topic,
                message=message,
                idempotency_key=idempotency_key,
                now=now_ms(),
            ),
        )
        return True

    def take_message(self, destination_id: str, topic: str, conn: Connection) -> str | None:
        row = conn.execute(
            self.text(self.q("oldest_message")), dict(destination_id=destination_id, topic=topic)
        ).first()
        if row is None:
            return None
        conn.execute(self.text(self.q("delete_message")), dict(message_id=row[0]))
        return str(row[1])

    # -- queues ------------------------------------------------------------------------------

    def dequeue(
        self,
        queue: str,
        executor_id: str,
        n: int,
        names: list[str],
        *,
        concurrency: int | None,
        rate_limit: tuple[int, float] | None,
    ) -> list[ClaimedRow]:
        """Move up to ``n`` ENQUEUED workflows of ``queue`` to PENDING under
        ``executor_id``, within the queue's global limits (which hold across
        processes: on Postgres a per-queue advisory lock serializes the
        dequeuers of a limited queue; SQLite has one writer anyway)."""
        if n <= 0 or not names:
            return []
        now = now_ms()
        candidates = sa.text(self.q("queue_candidates")).bindparams(
            sa.bindparam("names", expanding=True)
        )
        taken: list[ClaimedRow] = []
        with self.transaction() as conn:
            if self.dialect == "postgresql" and (concurrency is not None or rate_limit is not None):
                conn.execute(self.text(self.q("queue_lock")), {"queue": queue})
            if concurrency is not None:
                running = (
                    conn.execute(self.text(self.q("queue_running")), {"queue": queue}).scalar() or 0
                )
                n = min(n, concurrency - int(running))
            if rate_limit is not None:
                since = now - int(rate_limit[1] * 1000)
                started = (
                    conn.execute(
                        self.text(self.q("queue_started_since")), {"queue": queue, "since": since}
                    ).scalar()
                    or 0
                )
                n = min(n, rate_limit[0] - int(started))
            if n <= 0:
                return []
            ids = [
                r[0]
                for r in conn.execute(
                    candidates, {"queue": queue, "now": now, "names": names, "n": n}
                )
            ]
            for wid in ids:
                row = conn.execute(
                    self.text(self.q("queue_take")),
                    {"workflow_id": wid, "executor_id": executor_id, "now": now},
                ).first()
                if row is not None:
                    taken.append(ClaimedRow(*tuple(row)))
        return taken

    def release_taken(self, workflow_id: str, executor_id: str) -> None:
        """Put a dequeued workflow that this executor could not start back on its queue."""
        self.run("release_taken", workflow_id=workflow_id, executor_id=executor_id, now=now_ms())

    def queue_names(self) -> list[str]:
        return [r[0] for r in self.run("queue_names")]

    def upsert_queue(self, q: QueueInfo) -> None:
        self.run(
            "upsert_queue",
            name=q.name,
            concurrency=q.concurrency,
            worker_concurrency=q.worker_concurrency,
            rate_limit_n=q.rate_limit[0] if q.rate_limit else None,
            rate_limit_seconds=q.rate_limit[1] if q.rate_limit else None,
            priority=int(q.priority),
            now=now_ms(),
        )

    def list_queue_infos(self) -> list[QueueInfo]:
        counts: dict[str, dict[str, int]] = {}
        for queue, status, n in self.run("queue_counts"):
            counts.setdefault(queue, {})[status] = int(n)
        out: dict[str, QueueInfo] = {}
        for name, conc, wconc, rl_n, rl_s, prio in self.run("list_queues"):
            c = counts.get(name, {})
            out[name] = QueueInfo(
                name,
                c.get("ENQUEUED", 0),
                c.get("PENDING", 0),
                conc,
                wconc,
                (int(rl_n), float(rl_s)) if rl_n is not None else None,
                bool(prio),
            )
        for name, c in counts.items():
            if name not in out:
                out[name] = QueueInfo(
                    name, c.get("ENQUEUED", 0), c.get("PENDING", 0), None, None, None, False
                )
        return [out[k] for k in sorted(out)]


_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


class AppDatabase(_Base):
    """The database user transactions run in, when it is not the system database."""

    version_table = "app_schema_version"
    migrations = schema.APP_MIGRATIONS

    def insert_tx_output(
        self, conn: Connection, workflow_id: str, position: int, output: str | None
    ) -> bool:
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
