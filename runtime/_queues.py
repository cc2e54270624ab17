"""Queues as declarations: ``wf.Queue`` and ``enqueue``. Workflows wait
ENQUEUED until a worker with a free slot, within the queue's global
concurrency and rate limit, takes them (``wf._worker.dequeue``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from ._core.wakeups import wake_dequeuers
from ._errors import ConfigurationError
from ._records import QueueInfo
from ._registry import declared_queues

if TYPE_CHECKING:
    from ._handles import WorkflowHandle

log = logging.getLogger("wf")


class Queue:
    """A named queue. ``concurrency`` and ``rate_limit=(n, seconds)`` hold
    across all processes; ``worker_concurrency`` per process; with
    ``priority`` enabled, lower ``priority`` values run first.
    ``partition_concurrency`` and ``partition_rate_limit`` hold per
    partition (``enqueue(..., partition_key=)``, e.g. a tenant) across all
    processes, within the queue's own limits; a full partition never holds
    up the others."""

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        priority: bool = False,
        partition_concurrency: int | None = None,
        partition_rate_limit: tuple[int, float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"a queue needs a name (got {name!r})")
        for label, v in (
            ("concurrency", concurrency),
            ("worker_concurrency", worker_concurrency),
            ("partition_concurrency", partition_concurrency),
        ):
            if v is not None and v < 1:
                raise ConfigurationError(f"{label} must be >= 1")
        for label, rl in (
            ("rate_limit", rate_limit),
            ("partition_rate_limit", partition_rate_limit),
        ):
            if rl is not None and (len(rl) != 2 or rl[0] < 1 or rl[1] <= 0):
                raise ConfigurationError(f"{label} is (n >= 1, seconds > 0)")
        self.name = name
        self.concurrency = concurrency
        self.worker_concurrency = worker_concurrency
        self.rate_limit = (int(rate_limit[0]), float(rate_limit[1])) if rate_limit else None
        self.priority = priority
        self.partition_concurrency = partition_concurrency
        self.partition_rate_limit = (
            (int(partition_rate_limit[0]), float(partition_rate_limit[1]))
            if partition_rate_limit
            else None
        )
        declared_queues[name] = self
        wake_dequeuers()

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
            self.partition_concurrency,
            self.partition_rate_limit,
        )

    def enqueue(
        self,
        fn: Any,
        *args: Any,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        partition_key: str | None = None,
        debounce_key: str | None = None,
        debounce: float | None = None,
        debounce_max_wait: float | None = None,
        on_duplicate: str = "raise",
        **kwargs: Any,
    ) -> WorkflowHandle:
        """Put a workflow on this queue; returns its handle at once.

        ``dedup_id``: while a workflow with it is enqueued or running here, a
        second enqueue raises QueueDedupError (``on_duplicate="return"``:
        returns that workflow's handle instead). ``partition_key``: its
        partition (the partition limits). ``debounce_key`` with ``debounce``
        seconds: enqueues with that key collapse into one workflow that starts
        once ``debounce`` seconds pass without another (at most
        ``debounce_max_wait`` after the first), with the last call's
        arguments; every caller gets its handle."""
        from ._api import _start
        from ._core import enqueue_options

        if priority is not None and not self.priority:
            raise ConfigurationError(f"queue {self.name!r} was not declared with priority=True")
        debounced = enqueue_options(
            on_duplicate, partition_key, debounce_key, debounce, debounce_max_wait, delay, dedup_id
        )
        return _start(
            fn,
            args,
            kwargs,
            workflow_id=workflow_id,
            queue=self.name,
            priority=priority or 0,
            dedup_id=dedup_id,
            delay=delay,
            partition_key=partition_key,
            debounce=debounced,
            on_duplicate=on_duplicate,
        )
