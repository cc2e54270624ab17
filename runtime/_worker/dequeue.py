"""The dequeue loop: takes ENQUEUED workflows of the queues this executor
serves, within each queue's limits (held across processes by the system
database), and runs them in the executor's pool."""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from .._core.wakeups import work as _wake
from .._records import QueueInfo
from .._registry import declared_queues, find_workflow, registered_names

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger("wf")

# workflows resumed here (wf.resume without detach): back on their queue, and
# this process dequeues them itself, within the queue's limits, whether or not
# it serves that queue (a worker may take them first)
_pinned: dict[str, str] = {}  # workflow ID -> queue
_pinned_lock = threading.Lock()
POLL_INTERVAL = 0.2
DEFAULT_WORKER_CONCURRENCY = 16


def take_here(workflow_id: str, queue: str) -> None:
    """Dequeue this ENQUEUED workflow in this process as soon as its queue's
    limits allow (unless someone else takes it, or it changes, first)."""
    with _pinned_lock:
        _pinned[workflow_id] = queue
    _wake.set()


def start_workers(ex: Executor) -> None:
    t = threading.Thread(target=_dequeue_loop, args=(ex,), name="wf-queues", daemon=True)
    t.start()
    ex._threads.append(t)


# a worker serving every queue looks up the queues with work at most this often
QUEUE_NAMES_EVERY = 0.5


class _Served:
    """The queues to dequeue from now: those ``served_queues`` names, or, for
    a worker serving every queue, those declared here and those with work
    (read at most every QUEUE_NAMES_EVERY seconds, not on every pass)."""

    def __init__(self, ex: Executor) -> None:
        self.ex = ex
        self.with_work: list[str] = []
        self.read_at = float("-inf")

    def now(self) -> list[str]:
        names = self.ex.served_queues()
        if names is not None:
            return names
        if time.monotonic() - self.read_at >= QUEUE_NAMES_EVERY:
            self.with_work, self.read_at = self.ex.sysdb.queue_names(), time.monotonic()
        return sorted(set(declared_queues) | set(self.with_work))


def _dequeue_loop(ex: Executor) -> None:
    running: dict[str, set[str]] = {}
    # runs that stopped here since the last dequeue of their queue: a slot
    # their row still holds (cancelled, or resumed onto the queue while the
    # run went on) is freed by that dequeue, so it is held until the run stops
    stopped: dict[str, set[str]] = {}
    lock = threading.Lock()
    published: set[str] = set()

    def done(queue: str, wid: str, finished: bool = False) -> None:
        with lock:
            running.get(queue, set()).discard(wid)
            if not finished:  # a finish frees its slot in the same write
                stopped.setdefault(queue, set()).add(wid)
        _wake.set()

    recorded: dict[str, QueueInfo] = {}
    recorded_at = 0.0
    serving = _Served(ex)
    while not ex.stopping.is_set():
        _wake.clear()
        try:
            served = serving.now()
            with _pinned_lock:
                pinned = dict(_pinned)
            extra = sorted({qn for qn in pinned.values() if qn not in served})
            if (extra or set(served) - set(declared_queues)) and time.monotonic() - recorded_at > 2:
                # limits of queues not declared here, as their declarers recorded them
                recorded, recorded_at = ex.sysdb.recorded_queues(), time.monotonic()
            took: set[str] = set()
            for name in served + extra:
                only = None if name in served else [w for w, qn in pinned.items() if qn == name]
                q = declared_queues.get(name) or recorded.get(name)
                if name in declared_queues and name not in published:
                    ex.sysdb.upsert_queue(declared_queues[name].info())
                    published.add(name)
                limit = (
                    (q.worker_concurrency if q else None)
                    or ex.concurrency
                    or DEFAULT_WORKER_CONCURRENCY
                )
                with lock:
                    free = limit - len(running.get(name, ()))
                    release = sorted(stopped.pop(name, ()))
                try:
                    taken = ex.sysdb.dequeue(
                        name,
                        ex.executor_id,
                        free,
                        registered_names(),
                        concurrency=q.concurrency if q else None,
                        rate_limit=q.rate_limit if q else None,
                        release=release,
                        only=only,
                        partition_concurrency=q.partition_concurrency if q else None,
                        partition_rate_limit=q.partition_rate_limit if q else None,
                    )
                except BaseException:
                    with lock:  # not released: try again with the next dequeue
                        stopped.setdefault(name, set()).update(release)
                    raise
                for i, c in enumerate(taken):
                    took.add(c.workflow_id)
                    try:
                        if c.recovery_attempts > c.max_recovery_attempts:
                            # SPEC §4.6 on this path too (requeue_all ends such
                            # rows itself; this catches any put back otherwise)
                            ex.sysdb.mark_retries_exceeded(c.workflow_id, ex.executor_id)
                            log.warning(
                                "wf: %s exceeded %d recovery attempts",
                                c.workflow_id,
                                c.max_recovery_attempts,
                            )
                            continue
                        spec = find_workflow(c.name)
                        if spec is None:
                            raise LookupError(f"{c.name} is not registered")
                        with lock:
                            running.setdefault(name, set()).add(c.workflow_id)
                        # a run that recorded nothing yet has nothing to load
                        fut = ex.submit_replay(
                            spec,
                            c.workflow_id,
                            c.inputs,
                            c.deadline,
                            recorded=None if c.has_calls else {},
                            run_token=c.created_at,
                        )
                        fut.add_done_callback(
                            functools.partial(_done_cb, done, name, c.workflow_id)
                        )
                    except BaseException:
                        # taken but not running: put the rest back, or they would
                        # wait PENDING under this live executor for ever
                        for rest in taken[i:]:
                            done(name, rest.workflow_id)
                            ex.sysdb.release_taken(rest.workflow_id, ex.executor_id)
                        raise
            for wid in pinned:
                if wid in took or (ex.sysdb.get_outcome(wid) or ("",))[0] != "ENQUEUED":
                    with _pinned_lock:
                        _pinned.pop(wid, None)
        except Exception as e:
            log.warning("wf queues: %s", e)
        _wake.wait(POLL_INTERVAL)


def _done_cb(done: Any, queue: str, wid: str, fut: Any) -> None:
    finished = not fut.cancelled() and fut.exception() is None and fut.result() is not None
    done(queue, wid, finished)
