"""Queues per tenant, debouncing and joining dedup (issue 16) for
tests/integration/test_partitions.py, served by tests.apps.comm_worker
processes. ``held`` marks ``start TAG PARTITION PID TIME`` / ``end ...`` so
the test can count how many of one partition ran at once."""

from __future__ import annotations

import os
import time
from typing import Any

import wf

from tests.apps.comm_common import mark

# two per partition, four in all, across every process
TENANTS = wf.Queue("part_tenants", concurrency=4, partition_concurrency=2)
# one at a time per partition; no queue-wide limit
FAIR = wf.Queue("part_fair", partition_concurrency=1)
# at most 2 starts per partition per 2 seconds
PART_RATED = wf.Queue("part_rated", partition_rate_limit=(2, 2.0))
# the same budget, one at a time per process: every worker process takes a share
PART_RATED_EACH = wf.Queue("part_rated_each", worker_concurrency=1, partition_rate_limit=(2, 2.0))
DEBOUNCED = wf.Queue("part_debounced")
# debounced with priorities (a joining enqueue must keep the waiting one's)
DEBOUNCED_PRIO = wf.Queue("part_debounced_prio", priority=True)


@wf.step()
def hold(tag: str, partition: str, seconds: float) -> int:
    mark(f"start {tag} {partition} {os.getpid()} {time.time()!r}")
    time.sleep(seconds)
    mark(f"end {tag} {partition} {os.getpid()} {time.time()!r}")
    return os.getpid()


@wf.workflow()
def held(tag: str, partition: str, seconds: float) -> dict[str, Any]:
    return {"tag": tag, "pid": hold(tag, partition, seconds)}


@wf.step()
def note(text: str) -> str:
    mark(f"ran {text} {os.getpid()} {time.time()!r}")
    return text


@wf.workflow()
def collapse(text: str) -> str:
    return note(text)


@wf.workflow()
def other(text: str) -> str:
    return text
