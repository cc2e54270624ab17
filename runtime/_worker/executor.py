"""The executor: one per process. It owns the database handles, runs
workflows in its pool, heartbeats, enforces timeouts, starts the dequeue and
cron loops, and stops cleanly; recovering dead executors' workflows and
sweeping orphans is ``recovery.py`` (a mixin of this class)."""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future
from typing import Any

from .. import _config
from .._context import WorkflowContext, workflow_here
from .._core.control import TIMED_OUT, cancel_tree
from .._core.runs import run_background
from .._core.wakeups import ensure_listener, notify_local
from .._liveness import HOST, HOSTNAME
from .._registry import WorkflowSpec, declared_queues, registered_names
from .._sysdb import AppDatabase, StepRow, SystemDatabase, WorkflowRow, now_ms, wake_key
from .cron import start_scheduler
from .dequeue import start_workers
from .gc import start_gc
from .pool import ElasticPool
from .recovery import RECOVERY_INTERVAL, Recovery

log = logging.getLogger("wf")

HEARTBEAT_INTERVAL = float(os.environ.get("WF_HEARTBEAT_INTERVAL", "5"))
# a clean stop waits this long for running calls to finish before it leaves
# their workflows to recovery (WF_SHUTDOWN_GRACE, seconds)
SHUTDOWN_GRACE = float(os.environ.get("WF_SHUTDOWN_GRACE", "20"))


class Executor(Recovery):
    """The process's executor (built by the composition root, wf._root, and
    passed down: it is the core's ``Runtime``)."""

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
        options = config.connection_options()
        self.sysdb = SystemDatabase(config.database_url, outage_timeout=None, **options)
        self.app_version = config.app_version
        self.sysdb.set_app_version(config.app_version)
        self.same_db = config.app_database_url == config.database_url
        self.appdb: SystemDatabase | AppDatabase = (
            self.sysdb
            if self.same_db
            else AppDatabase(config.app_database_url, outage_timeout=None, pooled=options["pooled"])
        )
        self.worker = worker
        self.queue_names = queues
        self.concurrency = concurrency
        # the limit counts running threads only: one blocked waiting (for a
        # child, a message, a timer) gives its slot back, so waits never
        # starve what they wait for
        self.pool = ElasticPool(max(concurrency or 0, 256), "wf-workflow")
        # adopted workflows replay in a pool of their own, a few at a time
        # (waits give their slot back here too): thousands adopted at once
        # neither queue for connections nor delay work started meanwhile
        # adopted runs, a bounded number at once (more only queue for the
        # database: measured with 10,000 adopted at once, bench/recovery_bench.py)
        self.replays = ElasticPool(self.sysdb.backend.useful_writers, "wf-recovery")
        self.stopping = threading.Event()
        # set once a stop has settled (or given up): heartbeats end
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self._maintenance: threading.Thread | None = None
        self._running: dict[str, Future[Any]] = {}
        # the run token (WorkflowContext.run_token) of each run in _running
        self._run_tokens: dict[str, int | None] = {}
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
        self._names_written: list[str] | None = None  # what _beat last recorded

    # -- lifecycle --------------------------------------------------------------

    def start(self) -> None:
        self.sysdb.ensure_reachable()
        self.sysdb.migrate()
        if not self.same_db:
            self.appdb.ensure_reachable()
            self.appdb.migrate()
        self._beat()
        ensure_listener(self.sysdb.listen_url)
        # not in _threads: it heartbeats on while a stop waits for running calls
        self._maintenance = threading.Thread(
            target=self._maintenance_loop, name="wf-maintenance", daemon=True
        )
        self._maintenance.start()
        start_workers(self)
        start_scheduler(self)
        start_gc(self)  # retention: only a worker with WF_RETENTION set
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
            self.replays.shutdown(cancel_futures=True)
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

    def served_queues(self) -> list[str] | None:
        """The queues this executor dequeues from; None: every queue (a worker
        not narrowed by ``queues``)."""
        if self.queue_names is not None:
            return sorted(set(self.queue_names))
        if self.worker:
            return None
        return sorted(declared_queues)

    def _beat(self) -> None:
        # the row names this process (host, pid, start), also under a fixed
        # ID a previous process used: peers judge the live process, not it;
        # and what it serves, so a tool can tell work nothing live will take
        self.sysdb.heartbeat(
            self.executor_id, HOST, os.getpid(), self.started_ms, queues=self.served_queues()
        )
        # and which workflows it has registered, when that changed (modules
        # imported later, e.g. by recovery, add names): `wf status` tells work
        # enqueued by a name no live executor knows (wf.Client) from a backlog
        names = sorted(registered_names())
        if names != self._names_written and self.sysdb.set_executor_workflows(
            self.executor_id, names
        ):
            self._names_written = names

    # -- running -----------------------------------------------------------------

    def submit(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        deadline_ms: int | None = None,
        run_token: int | None = None,
    ) -> Future[Any]:
        """Run a fresh workflow (nothing recorded yet) in the background."""
        return self._submit(spec, workflow_id, deadline_ms, (args, kwargs), run_token=run_token)

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
        """Run a recorded workflow in the background; its inputs are decoded
        (and, unless given, its recorded calls loaded) in the worker thread,
        so adopting thousands of workflows costs no round trip per workflow
        here. ``adopted`` (recovery): in the bounded pool of adopted runs.
        ``run_token``: the row's created_at (WorkflowContext.run_token)."""
        pool = self.replays if adopted else self.pool
        return self._submit(spec, workflow_id, deadline_ms, inputs, recorded, pool, run_token)

    def _submit(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        deadline_ms: int | None,
        inputs: tuple[list[Any], dict[str, Any]] | str,
        recorded: dict[int, StepRow] | None = None,
        pool: ElasticPool | None = None,
        run_token: int | None = None,
    ) -> Future[Any]:
        ctx = WorkflowContext(
            workflow_id=workflow_id,
            name=spec.name,
            executor_id=self.executor_id,
            run_token=run_token,
            deadline_ms=deadline_ms,
            recorded=recorded,
            executor=self,
        )
        with self._running_lock:
            existing = self._running.get(workflow_id)
            if (
                existing is not None
                and not existing.done()
                and self._run_tokens.get(workflow_id) == run_token
            ):
                return existing  # this very run goes on here already
            # (a run still going under another token is of a deleted workflow
            # that had this ID: it can write nothing into this one, which
            # runs now, beside it)
            fut = (pool or self.pool).submit(run_background, self, spec, ctx, inputs)
            self._running[workflow_id] = fut
            self._run_tokens[workflow_id] = run_token
        fut.add_done_callback(functools.partial(self._forget, workflow_id))
        return fut

    def _forget(self, workflow_id: str, fut: Future[Any]) -> None:
        with self._running_lock:
            if self._running.get(workflow_id) is fut:
                del self._running[workflow_id]
                self._run_tokens.pop(workflow_id, None)

    @contextlib.contextmanager
    def running_inline(self, workflow_id: str) -> Iterator[None]:
        """Mark ``workflow_id`` as running in the caller's thread, so the
        orphan sweep leaves it alone (and a clean stop waits for it)."""
        # in a pool thread the run is already counted by that thread's future
        outside = not (self.pool.owns_thread() or self.replays.owns_thread())
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
        pool = self.replays if self.replays.owns_thread() else self.pool
        with pool.waiting() as released:
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

    def runs_here(self, workflow_id: str) -> bool:
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

    def notify_ended(self) -> None:
        with self._ended:
            self._ended.notify_all()

    def wait_ended(self, timeout: float) -> None:
        with self._ended:
            self._ended.wait(timeout)

    def load_and_submit(self, row: WorkflowRow, spec: WorkflowSpec) -> Future[Any]:
        return self.submit_replay(
            spec, row.workflow_id, row.inputs, row.deadline, run_token=row.created_at
        )

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
        for wid in self.sysdb.expired_deadlines():
            cancel_tree(self.sysdb, wid, TIMED_OUT)

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
        for wid in self.sysdb.cancelled_among(running):
            notify_local(wake_key("c", wid))
