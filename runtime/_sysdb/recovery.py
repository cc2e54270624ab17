"""Recovery: the executors' heartbeats and adopting (or re-queueing) the
in-flight workflows of executors that died."""

from __future__ import annotations

import json
from typing import Any

from .base import BaseDatabase
from .rows import _NEVER, ClaimedRow, ExecutorRow, now_ms


class RecoveryMixin(BaseDatabase):
    # -- in-flight workflows -------------------------------------------------------------

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

    def inflight_of_executor(self, executor_id: str) -> list[tuple[str, str, str | None]]:
        """(workflow_id, name, app_version) of its in-flight workflows, oldest first."""
        return [
            (r[0], r[1], r[2]) for r in self.run("inflight_of_executor", executor_id=executor_id)
        ]

    def claim_batch(
        self,
        old_executor_id: str,
        executor_id: str,
        names: list[str],
        n: int,
        *,
        include_queued: bool = False,
        before: int | None = None,
    ) -> list[ClaimedRow]:
        """Adopt, in one statement, up to ``n`` in-flight workflows of
        ``old_executor_id`` whose function is in ``names``; fewer than ``n``
        means none is left (or another adopter holds the rest)."""
        if not names or n <= 0:
            return []
        return self._claim(
            "claim_batch",
            old_executor_id=old_executor_id,
            executor_id=executor_id,
            names=names,
            n=n,
            include_queued=1 if include_queued else 0,
            before=before if before is not None else _NEVER,
            app_version=self.app_version,
        )

    def mark_retries_exceeded_of(
        self, workflow_ids: list[str], executor_id: str, chunk: int = 500
    ) -> None:
        """End ``executor_id``'s in-flight ``workflow_ids`` RETRIES_EXCEEDED."""
        for i in range(0, len(workflow_ids), chunk):
            self.run(
                "mark_retries_exceeded_of",
                ids=workflow_ids[i : i + chunk],
                executor_id=executor_id,
                now=now_ms(),
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
            executor_id=executor_id,
            ids=ids,
            names=names,
            before=before,
            app_version=self.app_version,
        )

    def _claim(self, query: str, **params: Any) -> list[ClaimedRow]:
        stmt = self.q(query)
        params["now"] = now_ms()

        def run() -> list[ClaimedRow]:
            with self.transaction() as conn:
                # RETURNING ..., deadline, created_at
                return [ClaimedRow.of(r, True, r[6]) for r in conn.execute(stmt, params)]

        return self.retrying(run)

    # -- executors -------------------------------------------------------------------

    def heartbeat(
        self,
        executor_id: str,
        host: str,
        pid: int,
        started_at: int | None = None,
        queues: list[str] | None = None,
    ) -> None:
        """Record that ``executor_id`` is alive in process ``pid`` on ``host``,
        which started at ``started_at`` (epoch ms; default now), serving
        ``queues`` (None: every queue)."""
        now = now_ms()
        self.run(
            "heartbeat",
            executor_id=executor_id,
            host=host,
            pid=pid,
            started_at=now if started_at is None else started_at,
            queues=None if queues is None else json.dumps(queues),
            now=now,
        )

    def set_executor_workflows(self, executor_id: str, names: list[str]) -> bool:
        """Record the workflows ``executor_id`` has registered (by recorded
        name); False when its row is not there (not yet, or deleted)."""
        result = self.run(
            "executor_workflows", executor_id=executor_id, workflows=json.dumps(sorted(names))
        )
        return bool(result.rowcount)

    def list_executors(self) -> list[ExecutorRow]:
        return [ExecutorRow(*r) for r in self.run("list_executors")]

    def delete_executor(self, executor_id: str) -> None:
        self.run("delete_executor", executor_id=executor_id)
