"""Queues: dequeue within global limits, queue descriptions."""

from __future__ import annotations

import sqlalchemy as sa

from .._records import QueueInfo
from .base import BaseDatabase
from .rows import ClaimedRow, now_ms


class QueueingMixin(BaseDatabase):
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
