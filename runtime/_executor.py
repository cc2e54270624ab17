"""The executor: one per process. It owns the database handles, runs
workflows in background threads, heartbeats, recovers dead executors'
workflows, enforces timeouts, and serves queues and schedules."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from . import _config, _logging  # noqa: F401  (_logging installs the durable log handler)
from ._context import WorkflowContext, workflow_here
from ._errors import ConfigurationError, WfError, _OwnershipLost
from ._liveness import HOST, HOSTNAME, pid_alive
from ._pool import ElasticPool
from ._registry import WorkflowSpec, find_or_import_workflow, find_workflow
from ._sysdb import AppDatabase, ClaimedRow, StepRow, SystemDatabase, WorkflowRow, now_ms

log = logging.getLogger("wf")

HEARTBEAT_INTERVAL = float(os.environ.get("WF_HEARTBEAT_INTERVAL", "5"))
STALE_AFTER = float(os.environ.get("WF_STALE_AFTER", "30"))
RECOVERY_INTERVAL = float(os.environ.get("WF_RECOVERY_INTERVAL", "5"))
# a clean stop waits this long for running calls to finish before it leaves
# their workflows to recovery (WF_SHUTDOWN_GRACE, seconds)
SHUTDOWN_GRACE = float(os.environ.get("WF_SHUTDOWN_GRACE", "20"))
# a row of ours in flight, run by nothing here and untouched this long, was
# claimed by a statement whose answer never reached us: run it
ORPHAN_AFTER = max(10.0, 4 * RECOVERY_INTERVAL)


@dataclass
class RecoveryResult:
    """What a recovery pass did: handles of the workflows it runs, the modules
    it imported to find their code, and what it left (ID, reason)."""

    handles: list[Any] = field(default_factory=list)
    imported_modules: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


class Executor:
    def __init__(
        self,
        config: _config.Config,
        executor_id: str | None = None,
        *,
        worker: bool = False,
        queues: list[str] | None = None,
        concurrency: int | None = None,
        recovery: bool = True,
    ) -> None:
        self.config = config
        self.recovery_enabled = recovery
        fixed = executor_id or os.environ.get("WF_EXECUTOR_ID")
        # a random ID is never reused, so nothing recorded under it predates us
        self.fixed_id = bool(fixed)
        self.executor_id = fixed or f"{HOSTNAME}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.sysdb = SystemDatabase(config.database_url, outage_timeout=None)
        self.same_db = config.app_database_url == config.database_url
        self.appdb: SystemDatabase | AppDatabase = (
            self.sysdb
            if self.same_db
            else AppDatabase(config.app_database_url, outage_timeout=None)
        )
        self.worker = worker
        self.queue_names = queues
        self.concurrency = concurrency
        # the limit counts running threads only: one blocked waiting (for a
        # child, a message, a timer) gives its slot back, so waits never
        # starve what they wait for
        self.pool = ElasticPool(max(concurrency or 0, 256), "wf-workflow")
        self.stopping = threading.Event()
        # set once a stop has settled (or given up): heartbeats end
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._maintenance: threading.Thread | None = None
        self._running: dict[str, Future[Any]] = {}
        # workflows run in their caller's thread (a direct call, a child)
        self._inline: set[str] = set()
        # threads outside the pool running a workflow inline: ident -> depth
        self._inline_threads: dict[int, int] = {}
        # pool threads waiting at a call boundary (not inside a step)
        self._parked = 0
        self._running_lock = threading.Lock()
        self._ended = threading.Condition()
        self.started_ms = now_ms()
        self.connected_since = time.time()

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.sysdb.ensure_reachable()
        self.sysdb.migrate()
        if not self.same_db:
            self.appdb.ensure_reachable()
            self.appdb.migrate()
        self._beat()
        from ._notify import ensure_listener

        ensure_listener(self.sysdb.url)
        # not in _threads: it heartbeats on while a stop waits for running calls
        self._maintenance = threading.Thread(
            target=self._maintenance_loop, name="wf-maintenance", daemon=True
        )
        self._maintenance.start()
        from . import _queues, _schedules

        _queues.start_workers(self)
        _schedules.start_scheduler(self)
        if self.recovery_enabled:
            # recover at launch, including workflows left under our own ID by
            # a previous process that had the same fixed WF_EXECUTOR_ID
            self._spawn(lambda: self.recover(include_own=self.fixed_id), "wf-launch-recovery")

    def _spawn(self, target: Any, name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self, grace: float | None = None) -> None:
        """Stop cleanly. Nothing new starts and running workflows stop at
        their next recorded call; calls already running get ``grace`` seconds
        (WF_SHUTDOWN_GRACE, default 20) to finish, heartbeats going on. Then
        the executor row is deleted, so any live executor adopts the stopped
        workflows at once. Calls still running when the grace ends keep their
        workflows here (the row stays): peers adopt them once this process is
        gone or its heartbeat is stale, never while they may still run here.
        A KeyboardInterrupt (a second Ctrl-C) ends the wait the same way.
        An executor launched with ``recovery=False`` (a one-shot command, which
        is interrupted rather than stopped) waits for nothing by default."""
        if grace is None:
            grace = SHUTDOWN_GRACE if self.recovery_enabled else 0.0
        deadline = time.monotonic() + grace
        self.stopping.set()
        try:
            for t in self._threads:
                t.join(max(0.0, min(5.0, deadline - time.monotonic())))
            # queued runs never start: they are in the database, left to recovery
            self.pool.shutdown(cancel_futures=True)
            settled = self._wait_settled(deadline)
        finally:
            self.sysdb.outage_timeout = 0
            self._stopped.set()
        if settled:
            with contextlib.suppress(Exception):
                self.sysdb.delete_executor(self.executor_id)
        else:
            log.warning(
                "wf: %d workflow call(s) still running after the %gs shutdown grace; "
                "their workflows are adopted once this process is gone",
                self._busy(),
                grace,
            )
        if self._maintenance is not None:
            self._maintenance.join(5.0)
        self.sysdb.dispose()
        if not self.same_db:
            self.appdb.dispose()

    def _busy(self) -> int:
        """Workflows running here other than at a call boundary: in a call,
        or between calls (they stop at the next one). Waits outside a step
        are boundaries; so is the calling thread's own inline run."""
        me = threading.get_ident()
        with self._running_lock:
            pooled = sum(1 for f in self._running.values() if not f.done())
            inline = sum(1 for t in self._inline_threads if t != me)
            return max(0, pooled - self._parked) + inline

    def _wait_settled(self, deadline: float) -> bool:
        """Wait until nothing runs here (see ``_busy``), until ``deadline``."""
        while self._busy():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self.wait_ended(min(0.05, remaining))
        return True

    def _beat(self) -> None:
        # the row names this process (host, pid, start), also under a fixed
        # ID a previous process used: peers judge the live process, not it
        self.sysdb.heartbeat(self.executor_id, HOST, os.getpid(), self.started_ms)

    # -- running -----------------------------------------------------------------

    def submit(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        deadline_ms: int | None = None,
    ) -> Future[Any]:
        """Run a fresh workflow (nothing recorded yet) in the background."""
        return self._submit(spec, workflow_id, deadline_ms, (args, kwargs))

    def submit_replay(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        inputs: str,
        deadline_ms: int | None = None,
        recorded: dict[int, StepRow] | None = None,
    ) -> Future[Any]:
        """Run a recorded workflow in the background; its inputs are decoded
        and its recorded calls loaded in the worker thread, so adopting
        thousands of workflows costs no round trip per workflow here."""
        return self._submit(spec, workflow_id, deadline_ms, inputs, recorded)

    def _submit(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        deadline_ms: int | None,
        inputs: tuple[list[Any], dict[str, Any]] | str,
        recorded: dict[int, StepRow] | None = None,
    ) -> Future[Any]:
        from ._runner import run_background

        ctx = WorkflowContext(
            workflow_id=workflow_id,
            name=spec.name,
            executor_id=self.executor_id,
            deadline_ms=deadline_ms,
            recorded=recorded,
            executor=self,
        )
        with self._running_lock:
            existing = self._running.get(workflow_id)
            if existing is not None and not existing.done():
                return existing
            fut = self.pool.submit(run_background, self, spec, ctx, inputs)
            self._running[workflow_id] = fut
        fut.add_done_callback(functools.partial(self._forget, workflow_id))
        return fut

    def _forget(self, workflow_id: str, fut: Future[Any]) -> None:
        with self._running_lock:
            if self._running.get(workflow_id) is fut:
                del self._running[workflow_id]

    @contextlib.contextmanager
    def running_inline(self, workflow_id: str) -> Iterator[None]:
        """Mark ``workflow_id`` as running in the caller's thread, so the
        orphan sweep leaves it alone (and a clean stop waits for it)."""
        # in a pool thread the run is already counted by that thread's future
        outside = not self.pool.owns_thread()
        me = threading.get_ident()
        with self._running_lock:
            self._inline.add(workflow_id)
            if outside:
                self._inline_threads[me] = self._inline_threads.get(me, 0) + 1
        try:
            yield
        finally:
            with self._running_lock:
                self._inline.discard(workflow_id)
                if outside:
                    n = self._inline_threads.pop(me) - 1
                    if n:
                        self._inline_threads[me] = n

    @contextlib.contextmanager
    def waiting(self, boundary: bool = True) -> Iterator[None]:
        """Wrap a blocking wait of a workflow (a child's result, a message,
        an event, a durable sleep). In a pool thread the wait gives its slot
        back until it ends, so a wait never starves what it waits for. With
        ``boundary``, a wait in a workflow body (not inside a step) counts as
        a call boundary: a clean stop does not wait for it (the workflow runs
        no further call here once stopping is set)."""
        here = workflow_here()
        with self.pool.waiting() as released:
            parked = released and boundary and here is not None
            if parked:
                with self._running_lock:
                    self._parked += 1
            try:
                yield
            finally:
                if parked:
                    with self._running_lock:
                        self._parked -= 1

    def _runs_here(self, workflow_id: str) -> bool:
        with self._running_lock:
            fut = self._running.get(workflow_id)
            return workflow_id in self._inline or (fut is not None and not fut.done())

    def wait_stopped(self, workflow_id: str) -> None:
        """Wait until this process is no longer running ``workflow_id``."""
        with self._running_lock:
            fut = self._running.get(workflow_id)
        if fut is not None:
            with contextlib.suppress(Exception):
                fut.result()

    def running_count(self) -> int:
        with self._running_lock:
            return len(self._running)

    def notify_ended(self) -> None:
        with self._ended:
            self._ended.notify_all()

    def wait_ended(self, timeout: float) -> None:
        with self._ended:
            self._ended.wait(timeout)

    def load_and_submit(self, row: WorkflowRow, spec: WorkflowSpec) -> Future[Any]:
        return self.submit_replay(spec, row.workflow_id, row.inputs, row.deadline)

    # -- maintenance: heartbeats, timeouts, recovery ------------------------------------

    def _maintenance_loop(self) -> None:
        last_beat = last_recovery = time.monotonic()
        while not self._stopped.wait(1.0):
            try:
                now = time.monotonic()
                if now - last_beat >= HEARTBEAT_INTERVAL:
                    self._beat()
                    last_beat = now
                if self.stopping.is_set():
                    continue  # a stop is waiting for running calls: only beat
                self._cancel_expired()
                self._announce_cancels()
                if time.monotonic() - now > max(HEARTBEAT_INTERVAL, 2.0):
                    # we were cut off from the database (these calls wait out
                    # outages): so was everyone, so stale heartbeats prove
                    # nothing until a whole stale period has passed again
                    self.connected_since = time.time()
                if self.recovery_enabled and now - last_recovery >= RECOVERY_INTERVAL:
                    self.recover()
                    self.sweep_orphans()
                    last_recovery = now
            except Exception as e:  # keep the executor alive through outages
                log.warning(
                    "wf maintenance: %s", _config.mask_text(str(e), self.config.database_url)
                )

    def _cancel_expired(self) -> None:
        from ._api import cancel_in

        for wid in self.sysdb.expired_deadlines():
            cancel_in(self.sysdb, wid)

    def _announce_cancels(self) -> None:
        """Wake the runs here whose workflows another process cancelled. On
        Postgres NOTIFY does it at once (this is its fallback); SQLite has no
        notifications, so this is how a cancel from another process reaches
        a run before its next call (within a second)."""
        with self._running_lock:
            running = [w for w, f in self._running.items() if not f.done()]
            running.extend(self._inline)
        if not running:
            return
        from ._notify import notify_local, wake_key

        for wid in self.sysdb.cancelled_among(running):
            notify_local(wake_key("c", wid))

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
    ) -> RecoveryResult:
        """Adopt the in-flight workflows of dead executors (or of ``executor_id``,
        or of every other executor with ``include_live``). Claims are atomic
        (one UPDATE per executor), so two live executors never both adopt a
        workflow. Queued workflows go back on their queue unless
        ``import_missing`` (wf recover), which runs everything here."""
        from ._handles import WorkflowHandle

        result = RecoveryResult()
        if self.stopping.is_set():
            return result
        executors = {r.executor_id: r for r in self.sysdb.list_executors()}
        for eid in self.sysdb.inflight_executors():
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
            claimed = self.sysdb.claim_all(
                eid, self.executor_id, known, include_queued=import_missing, before=before
            )
            for wid in self._run_claimed(claimed, f"from executor {eid}"):
                result.handles.append(WorkflowHandle(wid))
            # what is left is code this process does not have: leave it for one that does
            if eid != self.executor_id:
                for wid, name in self.sysdb.inflight_of_executor(eid):
                    result.skipped.append((wid, f"function {name} is not defined in this process"))
        # queue slots held by cancelled (or resumed) rows whose run has stopped:
        # a dead executor's runs all have; ours have when nothing here runs them
        # (the dequeue loop frees its own at once; this catches runs started
        # elsewhere, e.g. by the orphan sweep)
        for eid in self.sysdb.slot_executors():
            if eid == self.executor_id:
                old = now_ms() - int(ORPHAN_AFTER * 1000)
                ids = [
                    w for w, at in self.sysdb.held_slots(eid) if at < old and not self._runs_here(w)
                ]
            elif (executor_id is None or eid == executor_id) and self.is_dead(
                eid, executors, trust_stale=import_missing
            ):
                ids = [w for w, _ in self.sysdb.held_slots(eid)]
            else:
                continue
            if ids:
                self.sysdb.release_slots(eid, ids)
                from ._queues import wake_dequeuers

                wake_dequeuers()
        return result

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
        ids = [w for w in self.sysdb.own_stale(self.executor_id, before) if not self._runs_here(w)]
        if not ids:
            return []
        names = [n for n in self.sysdb.inflight_names(self.executor_id) if find_workflow(n)]
        claimed = self.sysdb.claim_own(self.executor_id, ids, names, before)
        # a run that began between the check and the claim cannot exist: runs
        # here start only on rows written just now, never on a stale one
        return self._run_claimed(claimed, "(claimed by this executor, never run)")

    def _run_claimed(self, claimed: list[ClaimedRow], source: str) -> list[str]:
        """Replay claimed workflows in the background; returns their IDs."""
        steps = self.sysdb.get_steps_of([c.workflow_id for c in claimed])
        started = []
        for c in claimed:
            if c.recovery_attempts > c.max_recovery_attempts:
                self.sysdb.mark_retries_exceeded(c.workflow_id, self.executor_id)
                log.warning(
                    "wf: %s exceeded %d recovery attempts", c.workflow_id, c.max_recovery_attempts
                )
                continue
            spec = find_workflow(c.name)
            assert spec is not None
            log.info("recovering %s (%s) %s", c.workflow_id, c.name, source)
            recorded = {r.position: r for r in steps.get(c.workflow_id, [])}
            self.submit_replay(spec, c.workflow_id, c.inputs, c.deadline, recorded)
            started.append(c.workflow_id)
        return started


# -- the process's executor ---------------------------------------------------------

_lock = threading.RLock()
_executor: Executor | None = None
_configured: _config.Config | None = None
_client: SystemDatabase | None = None


def configure(database_url: str | None = None, app_database_url: str | None = None) -> None:
    """Set the database URLs used by later calls, without starting anything."""
    global _configured, _client
    cfg = _config.resolve(database_url, app_database_url)
    with _lock:
        _configured = cfg
        if _client is not None:
            _client.dispose()
            _client = None


def _config_now() -> _config.Config:
    return _configured or _config.resolve()


def launch(
    database_url: str | None = None,
    app_database_url: str | None = None,
    executor_id: str | None = None,
    *,
    queues: list[str] | None = None,
    concurrency: int | None = None,
    worker: bool = False,
    recovery: bool = True,
) -> None:
    """Start this process's executor: migrations, heartbeats, recovery, queues, schedules.

    ``queues``: None serves the queues this process declares (every queue in
    the database with ``worker``); a list serves exactly those; [] none.
    ``recovery=False`` adopts no other executor's workflows (for one-shot
    commands that should not take work they will not stay up to finish)."""
    global _executor
    with _lock:
        if _executor is not None:
            if database_url or app_database_url:
                cfg = _config.resolve(database_url, app_database_url)
                if cfg.database_url != _executor.config.database_url:
                    raise WfError(
                        "wf is already launched on another database; call wf.shutdown() first"
                    )
            return
        cfg = (
            _config.resolve(database_url, app_database_url)
            if (database_url or app_database_url)
            else _config_now()
        )
        ex = Executor(
            cfg,
            executor_id,
            worker=worker,
            queues=queues,
            concurrency=concurrency,
            recovery=recovery,
        )
        try:
            ex.start()
        except BaseException:
            ex.stopping.set()
            ex.sysdb.dispose()
            raise
        _executor = ex


def shutdown() -> None:
    """Stop the executor (if any) and close database connections."""
    global _executor, _client
    with _lock:
        ex, _executor = _executor, None
        client, _client = _client, None
    if ex is not None:
        ex.stop()
    if client is not None:
        client.dispose()
    from ._notify import stop_listeners

    stop_listeners()


def get() -> Executor:
    """The running executor, launched from the configuration if needed."""
    ex = _executor
    if ex is None:
        launch()
        ex = _executor
        assert ex is not None
    return ex


def for_call() -> Executor:
    """The executor for a call made here: inside a workflow, the one running
    it (a run whose executor has stopped stops too, left to recovery);
    elsewhere the process's executor, launched if needed."""
    from ._context import current

    ctx = current.get()
    if ctx is not None and ctx.executor is not None:
        ex: Executor = ctx.executor
        if ex.stopping.is_set():
            raise _OwnershipLost()
        return ex
    return get()


def current_or_none() -> Executor | None:
    return _executor


def client() -> SystemDatabase:
    """A system database for management calls: the executor's when launched,
    else a lightweight one that starts no threads and fails fast when the
    database is down."""
    global _client
    ex = _executor
    if ex is not None:
        return ex.sysdb
    with _lock:
        if _client is None:
            cfg = _config_now()
            db = SystemDatabase(cfg.database_url, outage_timeout=0, pool_size=2)
            db.ensure_reachable()
            db.migrate()
            _client = db
        return _client


def run_coroutine(coro: Any) -> Any:
    """Run an async workflow body to completion from a worker thread."""
    return asyncio.run(coro)
