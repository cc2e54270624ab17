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
    ``priority`` enabled, lower ``priority`` values run first."""

    def __init__(
        self,
        name: str,
        concurrency: int | None = None,
        worker_concurrency: int | None = None,
        rate_limit: tuple[int, float] | None = None,
        priority: bool = False,
    ) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"a queue needs a name (got {name!r})")
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
