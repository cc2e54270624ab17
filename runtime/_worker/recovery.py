"""Recovery: adopting the in-flight workflows of dead executors (liveness by
heartbeat, or by pid on this machine), and sweeping this executor's own
orphans (rows a claim took whose answer was lost). A mixin of Executor."""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from .._core.wakeups import wake_dequeuers
from .._errors import ConfigurationError
from .._liveness import HOST, STALE_AFTER, pid_alive
from .._registry import WorkflowSpec, find_or_import_workflow, find_workflow
from .._sysdb import ClaimedRow, StepRow, SystemDatabase, now_ms

log = logging.getLogger("wf")

RECOVERY_INTERVAL = float(os.environ.get("WF_RECOVERY_INTERVAL", "5"))
# a row of ours in flight, run by nothing here and untouched this long, was
# claimed by a statement whose answer never reached us: run it
ORPHAN_AFTER = max(10.0, 4 * RECOVERY_INTERVAL)
# a dead executor's workflows are adopted in batches of growing size (one
# statement each), so the first replays start while the rest are claimed
CLAIM_FIRST = 500
CLAIM_MAX = 8000


@dataclass
class Recovered:
    """What a recovery pass did: the IDs of the workflows it runs, the modules
    it imported to find their code, and what it left (ID, reason)."""

    workflow_ids: list[str] = field(default_factory=list)
    imported_modules: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Recovery:
    # provided by Executor
    executor_id: str
    sysdb: SystemDatabase
    stopping: threading.Event
    connected_since: float
    started_ms: int
    app_version: str | None

    def submit_replay(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        inputs: str,
        deadline_ms: int | None = None,
        recorded: dict[int, StepRow] | None = None,
        adopted: bool = False,
        run_token: int | None = None,
    ) -> Future[Any]:
        raise NotImplementedError

    def runs_here(self, workflow_id: str) -> bool:
        raise NotImplementedError

    def is_dead(
        self, executor_id: str, executors: dict[str, Any], trust_stale: bool = False
    ) -> bool:
        """Gone (its row removed at a clean stop), or on this machine (same
        hostname, boot and pid namespace) with its process gone, or with a
        stale heartbeat — which only counts once this
        executor has itself been connected for a whole stale period, so an
        outage that stopped everyone's heartbeats makes no one look dead."""
        row = executors.get(executor_id)
        if row is None:
            return True
        if row.host == HOST and not pid_alive(row.pid, row.started_at):
            return True
        stale = time.time() * 1000 - row.heartbeat_at > STALE_AFTER * 1000
        # an outage seen by any call here counts, even one that began while
        # this recovery pass was already under way
        connected_since = max(self.connected_since, self.sysdb.last_outage)
        return stale and (trust_stale or time.time() - connected_since >= STALE_AFTER)

    def recover(
        self,
        *,
        include_own: bool = False,
        executor_id: str | None = None,
        include_live: bool = False,
        import_missing: bool = False,
    ) -> Recovered:
        """Adopt the in-flight workflows of dead executors (or of ``executor_id``,
        or of every other executor with ``include_live``). Claims are atomic
        (one UPDATE per batch), so two live executors never both adopt a
        workflow. Queued workflows go back on their queue unless
        ``import_missing`` (wf recover), which runs everything here."""
        result = Recovered()
        if self.stopping.is_set():
            return result
        # in-flight rows first, heartbeats second: an executor writes its
        # heartbeat row before it starts any workflow, so every owner seen
        # here has its row in the second read (read the other way round, an
        # executor that started in between would look gone, and be robbed)
        inflight = self.sysdb.inflight_executors()
        executors = {r.executor_id: r for r in self.sysdb.list_executors()}
        for eid in inflight:
            if executor_id is not None and eid != executor_id:
                continue
            if eid == self.executor_id:
                if not include_own:
                    continue
            elif (
                not include_live
                and executor_id is None
                and not self.is_dead(eid, executors, trust_stale=import_missing)
            ):
                continue
            # ours (fixed ID): only what predates this process; the rest runs here
            before = self.started_ms if eid == self.executor_id else None
            if not import_missing:
                for wid, status in self.sysdb.requeue_all(eid, before):
                    if status == "RETRIES_EXCEEDED":
                        log.warning("wf: %s exceeded its recovery attempts", wid)
                    else:
                        log.info("re-enqueued %s from dead executor %s", wid, eid)
            names = self.sysdb.inflight_names(eid)
            for name in names:
                if find_workflow(name) is None and import_missing:
                    mod = name.partition(":")[0]
                    try:
                        find_or_import_workflow(name)
                        if mod not in result.imported_modules:
                            result.imported_modules.append(mod)
                    except ConfigurationError as e:
                        log.warning("wf recover: %s", e)
            known = [n for n in names if find_workflow(n) is not None]
            # in batches, so the first replays start while the rest are claimed
            size = CLAIM_FIRST
            while known and not self.stopping.is_set():
                claimed = self.sysdb.claim_batch(
                    eid, self.executor_id, known, size, include_queued=import_missing, before=before
                )
                result.workflow_ids.extend(self._run_claimed(claimed, f"from executor {eid}"))
                if len(claimed) < size:
                    break
                size = min(2 * size, CLAIM_MAX)
            # what is left is code this process does not have: leave it for one that does
            if eid != self.executor_id:
                for wid, name, version in self.sysdb.inflight_of_executor(eid):
                    result.skipped.append((wid, self._why_skipped(wid, name, version)))
        # queue slots held by cancelled (or resumed) rows whose run has stopped:
        # a dead executor's runs all have; ours have when nothing here runs them
        # (the dequeue loop frees its own at once; this catches runs started
        # elsewhere, e.g. by the orphan sweep)
        holders = self.sysdb.slot_executors()
        executors = {r.executor_id: r for r in self.sysdb.list_executors()}  # (as above)
        for eid in holders:
            if eid == self.executor_id:
                old = now_ms() - int(ORPHAN_AFTER * 1000)
                ids = [
                    w for w, at in self.sysdb.held_slots(eid) if at < old and not self.runs_here(w)
                ]
            elif (executor_id is None or eid == executor_id) and self.is_dead(
                eid, executors, trust_stale=import_missing
            ):
                ids = [w for w, _ in self.sysdb.held_slots(eid)]
            else:
                continue
            if ids:
                self.sysdb.release_slots(eid, ids)
                wake_dequeuers()
        return result

    def _why_skipped(self, workflow_id: str, name: str, version: str | None) -> str:
        """Why a dead executor's workflow was left where it is."""
        if version is not None and self.app_version is not None and version != self.app_version:
            # claims take only this release's workflows (or unversioned ones)
            return (
                f"it belongs to application version {version} (this process runs "
                f"{self.app_version}): recover it with a worker of {version}, or move it to "
                f"this release on purpose with `wf resume {workflow_id} --version {self.app_version}`"
            )
        return f"function {name} is not defined in this process"

    def sweep_orphans(self) -> list[str]:
        """Run this executor's own in-flight workflows that nothing here runs.

        A dequeue or recovery claim can commit while its answer is lost with
        the connection; the claimed rows then name this live executor, so no
        one else adopts them and, without this sweep, no one runs them. Rows
        are left alone until they are ``ORPHAN_AFTER`` old, far longer than
        any claim takes to reach its submit, and claimed again by ID, so a
        workflow that ended or was resumed meanwhile is not touched."""
        if self.stopping.is_set():
            return []
        before = now_ms() - int(ORPHAN_AFTER * 1000)
        ids = [w for w in self.sysdb.own_stale(self.executor_id, before) if not self.runs_here(w)]
        if not ids:
            return []
        names = [n for n in self.sysdb.inflight_names(self.executor_id) if find_workflow(n)]
        claimed = self.sysdb.claim_own(self.executor_id, ids, names, before)
        # a run that began between the check and the claim cannot exist: runs
        # here start only on rows written just now, never on a stale one
        return self._run_claimed(claimed, "(claimed by this executor, never run)")

    def _run_claimed(self, claimed: list[ClaimedRow], source: str) -> list[str]:
        """Replay claimed workflows in the background; returns their IDs."""
        exceeded = [c for c in claimed if c.recovery_attempts > c.max_recovery_attempts]
        if exceeded:
            self.sysdb.mark_retries_exceeded_of([c.workflow_id for c in exceeded], self.executor_id)
            for c in exceeded:
                log.warning(
                    "wf: %s exceeded %d recovery attempts", c.workflow_id, c.max_recovery_attempts
                )
        runs = [c for c in claimed if c.recovery_attempts <= c.max_recovery_attempts]
        # every recorded call of the batch in a few reads: the replays read nothing
        steps = self.sysdb.get_steps_of([c.workflow_id for c in runs])
        started = []
        for c in runs:
            spec = find_workflow(c.name)
            assert spec is not None
            log.info("recovering %s (%s) %s", c.workflow_id, c.name, source)
            recorded = {r.position: r for r in steps.get(c.workflow_id, [])}
            self.submit_replay(
                spec,
                c.workflow_id,
                c.inputs,
                c.deadline,
                recorded,
                adopted=True,
                run_token=c.created_at,
            )
            started.append(c.workflow_id)
        return started
