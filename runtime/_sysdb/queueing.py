"""Queues: dequeue within global limits, queue descriptions."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._records import QueueInfo, Status
from .base import BaseDatabase
from .rows import ClaimedRow, now_ms

log = logging.getLogger("wf")

# with advisory locks (Postgres): how long a dequeue waits for a queue's
# lock, and how long a dequeue transaction may sit idle (its process frozen)
# before the server ends it and frees its locks
LOCK_TIMEOUT_MS = 3000
IDLE_TIMEOUT_MS = 5000


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
        release: list[str] | None = None,
        only: list[str] | None = None,
        partition_concurrency: int | None = None,
        partition_rate_limit: tuple[int, float] | None = None,
    ) -> list[ClaimedRow]:
        """Move up to ``n`` ENQUEUED workflows of ``queue`` to PENDING under
        ``executor_id``, within the queue's global limits (which hold across
        processes: on Postgres a per-queue advisory lock serializes the
        dequeuers of a limited queue; SQLite has one writer anyway).

        ``release``: workflows whose runs have stopped here; the slots they
        still hold (cancelled, or resumed back onto the queue) are freed first.
        ``only``: take none but these workflows. ``partition_*``: the limits
        of each partition of the queue (held under the same lock).
        On Postgres every lock this takes is bounded (see ``queue_timeouts``):
        when a peer holds the queue's lock too long this returns nothing and
        the caller tries again later."""
        if (n <= 0 or not names) and not release:
            return []
        try:
            return self._dequeue(
                queue,
                executor_id,
                n,
                names,
                concurrency,
                rate_limit,
                release,
                only,
                _Partitions.of(partition_concurrency, partition_rate_limit),
            )
        except Exception as e:
            if self.backend.is_lock_timeout(e):
                log.debug("wf queue %s: its lock is held elsewhere; trying again later", queue)
                return []
            raise

    def _dequeue(
        self,
        queue: str,
        executor_id: str,
        n: int,
        names: list[str],
        concurrency: int | None,
        rate_limit: tuple[int, float] | None,
        release: list[str] | None,
        only: list[str] | None,
        parts: _Partitions | None = None,
    ) -> list[ClaimedRow]:
        now = now_ms()
        if concurrency is None and rate_limit is None and only is None and parts is None:
            return self._take_unlimited(queue, executor_id, n, names, release, now)
        if only is not None:
            candidates = self.q("queue_candidates_only")
        elif parts is not None:
            candidates = self.q(
                "queue_candidates_partition_heads"
                if self.backend.lateral_joins
                else "queue_candidates_partitioned"
            )
        else:
            candidates = self.q("queue_candidates")
        limited = concurrency is not None or rate_limit is not None or parts is not None
        taken: list[ClaimedRow] = []
        with self.transaction() as conn:
            if self.backend.advisory_locks:
                conn.execute(
                    self.q("queue_timeouts"),
                    {
                        "lock_timeout": f"{LOCK_TIMEOUT_MS}ms",
                        "idle_timeout": f"{IDLE_TIMEOUT_MS}ms",
                    },
                )
            if release:
                conn.execute(
                    self.q("queue_release_slots"), {"ids": release, "executor_id": executor_id}
                )
            if n <= 0 or not names or only == []:
                return []
            if self.backend.advisory_locks and limited:
                conn.execute(self.q("queue_lock"), {"queue": queue})
            if concurrency is not None:
                running = conn.execute(self.q("queue_running"), {"queue": queue}).scalar() or 0
                n = min(n, concurrency - int(running))
            since = now - int(rate_limit[1] * 1000) if rate_limit is not None else 0
            if rate_limit is not None:
                # every start counts, also of runs killed and re-queued since
                started = (
                    conn.execute(
                        self.q("queue_started_since"), {"queue": queue, "since": since}
                    ).scalar()
                    or 0
                )
                n = min(n, rate_limit[0] - int(started))
            if n <= 0:
                return []
            params: dict[str, object] = {"queue": queue, "now": now, "names": names, "n": n}
            params["app_version"] = self.app_version
            if only is not None:
                params["ids"] = only
            elif parts is not None:
                params.update(parts.params(now))
            if parts is not None and only is None:
                # the queue's head alone first: the answer when it holds one
                head = conn.execute(self.q("queue_partition_head"), params).fetchall()
                if head and head[0][2]:
                    rows = [r for r in head if r[0] is not None]
                else:
                    rows = conn.execute(candidates, params).fetchall()
            else:
                rows = conn.execute(candidates, params).fetchall()
            chosen = [(r[0], r[1] if parts is not None and only is None else None) for r in rows]
            partition_of = dict(chosen)
            ids = [wid for wid, _ in chosen]
            for wid in ids:
                row = conn.execute(
                    self.q("queue_take"),
                    {
                        "workflow_id": wid,
                        "executor_id": executor_id,
                        "now": now,
                        "app_version": self.app_version,
                    },
                ).first()
                if row is not None:
                    taken.append(ClaimedRow(*tuple(row)))
            counted = rate_limit is not None or (parts is not None and parts.rate is not None)
            if counted and taken:
                for t in taken:
                    conn.execute(
                        self.q("queue_record_start"),
                        {
                            "queue": queue,
                            "now": now,
                            "partition_key": partition_of.get(t.workflow_id),
                        },
                    )
                window = max(
                    rate_limit[1] if rate_limit else 0.0,
                    parts.rate[1] if parts is not None and parts.rate else 0.0,
                )
                conn.execute(
                    self.q("queue_prune_starts"),
                    {"queue": queue, "since": now - int(window * 1000)},
                )
        return taken

    def _take_unlimited(
        self,
        queue: str,
        executor_id: str,
        n: int,
        names: list[str],
        release: list[str] | None,
        now: int,
    ) -> list[ClaimedRow]:
        """A queue without global limits: nothing to count, so no lock and no
        transaction; one statement takes the batch (and one frees the slots
        of runs that stopped without finishing, when there are any)."""
        if release:
            self.release_slots(executor_id, release)
        if n <= 0 or not names:
            return []
        rows = self.run(
            "queue_take_batch",
            queue=queue,
            executor_id=executor_id,
            now=now,
            names=names,
            n=n,
            app_version=self.app_version,
        )
        # the statement's rows come in no particular order: start them in the queue's
        # (the order key: priority, created_at, seq; created_at is the run token too)
        return [
            ClaimedRow.of(r, bool(r[6]), r[8]) for r in sorted(rows, key=lambda r: tuple(r[7:]))
        ]

    def release_slots(self, executor_id: str, workflow_ids: list[str]) -> None:
        """Free the queue slots ``executor_id``'s stopped runs of these workflows hold."""
        if not workflow_ids:
            return
        self.run("queue_release_slots", ids=workflow_ids, executor_id=executor_id)

    def slot_executors(self) -> list[str]:
        """Executors named by rows that hold a queue slot after their status changed."""
        return [r[0] for r in self.run("queue_slot_executors") if r[0] is not None]

    def held_slots(self, executor_id: str) -> list[tuple[str, int]]:
        """(ID, updated_at) of ``executor_id``'s cancelled or resumed rows that hold a slot."""
        return [(r[0], int(r[1])) for r in self.run("queue_slots_of", executor_id=executor_id)]

    def release_taken(self, workflow_id: str, executor_id: str) -> None:
        """Put a dequeued workflow that this executor could not start back on its queue."""
        self.run("release_taken", workflow_id=workflow_id, executor_id=executor_id, now=now_ms())

    def recorded_queues(self) -> dict[str, QueueInfo]:
        """The queues as their declaring processes recorded them (limits only)."""
        return {r[0]: _queue_info(r, {}) for r in self.run("list_queues")}

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
            partition_concurrency=q.partition_concurrency,
            partition_rate_limit_n=q.partition_rate_limit[0] if q.partition_rate_limit else None,
            partition_rate_limit_seconds=(
                q.partition_rate_limit[1] if q.partition_rate_limit else None
            ),
        )

    def list_queue_infos(self) -> list[QueueInfo]:
        counts: dict[str, dict[str, int]] = {}
        for queue, status, n in self.run("queue_counts"):
            counts.setdefault(queue, {})[status] = int(n)
        parts: dict[str, dict[str, list[int]]] = {}  # queue -> partition -> [enqueued, running]
        for queue, key, status, n in self.run("partition_counts"):
            slot = parts.setdefault(queue, {}).setdefault(key, [0, 0])
            slot[0 if status == Status.ENQUEUED else 1] += int(n)
        out: dict[str, QueueInfo] = {}
        for r in self.run("list_queues"):
            out[r[0]] = _queue_info(r, counts.get(r[0], {}), parts.get(r[0]))
        for name, c in counts.items():
            if name not in out:
                out[name] = _queue_info((name,), c, parts.get(name))
        return [out[k] for k in sorted(out)]

    # -- debouncing and deduplication (an enqueue joining a live workflow) -------------------

    def extend_debounced(
        self,
        queue: str,
        key: str,
        name: str,
        inputs: str,
        window_ms: int,
        partition_key: str | None = None,
        priority: int = 0,
    ) -> str | None:
        """Join the workflow of ``name`` waiting for ``key`` on ``queue`` in
        the same partition with the same priority: its start moves
        ``window_ms`` from now (within its max wait), its inputs become
        ``inputs``. Its ID, or None when none such waits."""
        now = now_ms()
        row = self.run(
            "debounce_extend",
            queue=queue,
            key=key,
            name=name,
            inputs=inputs,
            now=now,
            until=now + window_ms,
            partition_key=partition_key or "",
            priority=priority,
        ).first()
        return None if row is None else str(row[0])

    def debounce_waiting(self, queue: str, key: str) -> tuple[str, str | None, int] | None:
        """(function, partition key, priority) of the workflow waiting for
        ``key`` on ``queue``, if any."""
        row = self.run("debounce_waiting", queue=queue, key=key).first()
        return None if row is None else (str(row[0]), row[1], int(row[2]))

    def live_dedup(self, queue: str, dedup_id: str) -> tuple[str, str] | None:
        """(ID, function) of the enqueued or running workflow with
        ``dedup_id`` on ``queue``, if any."""
        row = self.run("dedup_live", queue=queue, dedup_id=dedup_id).first()
        return None if row is None else (str(row[0]), str(row[1]))

    # -- schedules ---------------------------------------------------------------------------

    def record_schedules(self, schedules: list[tuple[str, str, str]]) -> None:
        """Record the (name, workflow name, cron) schedules this code declares."""
        now = now_ms()
        for name, workflow_name, cron in schedules:
            self.run("upsert_schedule", name=name, workflow_name=workflow_name, cron=cron, now=now)

    def schedule_ticked(self, name: str, tick_ms: int) -> None:
        self.run("schedule_ticked", name=name, tick=tick_ms)


# more than any queue holds: "no limit" inside the partitioned candidates query
_NO_LIMIT = 2**31 - 1


@dataclass(frozen=True)
class _Partitions:
    """A queue's per-partition limits, as the candidates query binds them."""

    concurrency: int | None
    rate: tuple[int, float] | None

    @staticmethod
    def of(concurrency: int | None, rate: tuple[int, float] | None) -> _Partitions | None:
        return None if concurrency is None and rate is None else _Partitions(concurrency, rate)

    def params(self, now: int) -> dict[str, object]:
        return {
            "p_concurrency": self.concurrency if self.concurrency is not None else _NO_LIMIT,
            "p_rate": self.rate[0] if self.rate is not None else _NO_LIMIT,
            "p_since": now - int(self.rate[1] * 1000) if self.rate is not None else now,
        }


# the busiest partitions a queue description lists
BUSIEST_PARTITIONS = 5


def _queue_info(
    row: Sequence[Any], counts: dict[str, int], parts: dict[str, list[int]] | None = None
) -> QueueInfo:
    """A ``list_queues`` row (or just a name, for a queue nobody declared)
    with its counts."""
    padded = tuple(row) + (None,) * (9 - len(row))
    name, conc, wconc, rl_n, rl_s, prio, p_conc, p_rl_n, p_rl_s = padded
    busiest = sorted((parts or {}).items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    return QueueInfo(
        name,
        counts.get(Status.ENQUEUED, 0),
        counts.get(Status.PENDING, 0),
        conc,
        wconc,
        (int(rl_n), float(rl_s)) if rl_n is not None else None,
        bool(prio),
        p_conc,
        (int(p_rl_n), float(p_rl_s)) if p_rl_n is not None else None,
        tuple((k, e, r) for k, (e, r) in busiest[:BUSIEST_PARTITIONS]),
        published=len(row) > 1,
    )
