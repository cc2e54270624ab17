"""Queues: workflows wait ENQUEUED until a worker with a free slot, within the
queue's global concurrency and rate limit, takes them."""

from __future__ import annotations

import functools
import logging
import threading
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._records import QueueInfo
from ._registry import find_workflow, registered_names

if TYPE_CHECKING:
    from ._executor import Executor
    from ._handles import WorkflowHandle

log = logging.getLogger("wf")

_declared: dict[str, Queue] = {}
_wake = threading.Event()
POLL_INTERVAL = 0.2
DEFAULT_WORKER_CONCURRENCY = 16


class Queue:
    """A named queue. ``concurrency`` and ``rate_limit=(n, seconds)`` hold
    across all processes; ``worker_concurrency`` per process; with
    ``priority`` enabled, lower ``priority`` values run first."""

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        priority: bool = False,
    ) -> None:
        if not name:
            raise ConfigurationError("a queue needs a name")
        for label, v in (("concurrency", concurrency), ("worker_concurrency", worker_concurrency)):
            if v is not None and v < 1:
                raise ConfigurationError(f"{label} must be >= 1")
        if rate_limit is not None and (rate_limit[0] < 1 or rate_limit[1] <= 0):
            raise ConfigurationError("rate_limit is (n >= 1, seconds > 0)")
        self.name = name
        self.concurrency = concurrency
        self.worker_concurrency = worker_concurrency
        self.rate_limit = (int(rate_limit[0]), float(rate_limit[1])) if rate_limit else None
        self.priority = priority
        _declared[name] = self
        _wake.set()

    def __repr__(self) -> str:
        return f"Queue({self.name!r})"

    def info(self) -> QueueInfo:
        return QueueInfo(
            self.name,
            0,
            0,
            self.concurrency,
            self.worker_concurrency,
            self.rate_limit,
            self.priority,
        )

    def enqueue(
        self,
        fn: Any,
        *args: Any,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        **kwargs: Any,
    ) -> WorkflowHandle:
        """Put a workflow on this queue; returns its handle at once."""
        from ._api import _start

        if priority is not None and not self.priority:
            raise ConfigurationError(f"queue {self.name!r} was not declared with priority=True")
        return _start(
            fn,
            args,
            kwargs,
            workflow_id=workflow_id,
            queue=self.name,
            priority=priority or 0,
            dedup_id=dedup_id,
            delay=delay,
        )


def wake_dequeuers() -> None:
    _wake.set()


def start_workers(ex: Executor) -> None:
    t = threading.Thread(target=_dequeue_loop, args=(ex,), name="wf-queues", daemon=True)
    t.start()
    ex._threads.append(t)


def _served(ex: Executor) -> list[str]:
    if ex.queue_names is not None:
        return sorted(set(ex.queue_names))
    names = set(_declared)
    if ex.worker:
        names |= set(ex.sysdb.queue_names())
    return sorted(names)


def _dequeue_loop(ex: Executor) -> None:
    running: dict[str, set[str]] = {}
    lock = threading.Lock()
    published: set[str] = set()

    def done(queue: str, wid: str) -> None:
        with lock:
            running.get(queue, set()).discard(wid)
        _wake.set()

    while not ex.stopping.is_set():
        _wake.clear()
        try:
            for name in _served(ex):
                q = _declared.get(name)
                if q is not None and name not in published:
                    ex.sysdb.upsert_queue(q.info())
                    published.add(name)
                limit = (
                    (q.worker_concurrency if q else None)
                    or ex.concurrency
                    or DEFAULT_WORKER_CONCURRENCY
                )
                with lock:
                    free = limit - len(running.get(name, ()))
                taken = ex.sysdb.dequeue(
                    name,
                    ex.executor_id,
                    free,
                    registered_names(),
                    concurrency=q.concurrency if q else None,
                    rate_limit=q.rate_limit if q else None,
                )
                for i, c in enumerate(taken):
                    try:
                        spec = find_workflow(c.name)
                        if spec is None:
                            raise LookupError(f"{c.name} is not registered")
                        with lock:
                            running.setdefault(name, set()).add(c.workflow_id)
                        fut = ex.submit_replay(spec, c.workflow_id, c.inputs, c.deadline)
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
        except Exception as e:
            log.warning("wf queues: %s", e)
        _wake.wait(POLL_INTERVAL)


def _done_cb(done: Any, queue: str, wid: str, _fut: Any) -> None:
    done(queue, wid)
