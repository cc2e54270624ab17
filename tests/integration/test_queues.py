"""SPEC §3/§6 queues, with real worker processes (tests/apps/comm_worker.py
serving tests/apps/comm_queues.py): a global concurrency limit holds across
two workers and is reached; worker_concurrency holds per process; a rate
limit holds across processes; dedup_id rejects; priority orders; delay
holds; a worker killed with SIGKILL loses nothing.

The test process enqueues with an executor that serves no queue and adopts
nothing (``queues=[], recovery=False``), so only the worker processes run
queued workflows. Limits are checked against timestamps the workflows write
(start/end of a step inside each workflow, so within its PENDING time) or,
for the rate limit, the ``started_at`` the dequeue records."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import comm_queues as app
from tests.helpers import kill_hard, marker_lines, raw_rows, wait_for

MODULE = "tests.apps.comm_queues"


def _intervals(markers: Path) -> dict[str, dict[str, Any]]:
    """tag -> {"pid", "start", "end"} from the ``hold`` step's marker lines
    (the last run of each tag)."""
    out: dict[str, dict[str, Any]] = {}
    for line in marker_lines(markers):
        kind, tag, pid, t = line.split()
        if kind == "start":
            out[tag] = {"pid": int(pid), "start": float(t), "end": None}
        elif kind == "end":
            assert out[tag]["pid"] == int(pid), line
            out[tag]["end"] = float(t)
    return out


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    """How many intervals were open at once at most (an end at the same
    instant as a start counts as before it)."""
    events = sorted(
        [(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1])
    )
    best = cur = 0
    for _, d in events:
        cur += d
        best = max(best, cur)
    return best


def test_max_overlap_helper() -> None:
    assert max_overlap([(0, 1), (1, 2)]) == 1
    assert max_overlap([(0, 2), (1, 3), (1.5, 1.6)]) == 3
    assert max_overlap([]) == 0


def _wait_all(handles: list[wf.WorkflowHandle], timeout: float = 60) -> list[Any]:
    return [h.result(timeout=timeout) for h in handles]


def test_queue_concurrency_holds_across_two_workers_and_is_reached(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    # concurrency=3 globally, worker_concurrency=2 per process: reaching 3
    # at once needs both processes, and neither may run more than 2
    procs = workers(2)
    handles = [app.LIMITED.enqueue(app.held, f"w{i}", 0.6) for i in range(9)]
    results = _wait_all(handles)
    assert sorted(r["tag"] for r in results) == [f"w{i}" for i in range(9)]

    spans = _intervals(markers)
    assert len(spans) == 9
    all_spans = [(s["start"], s["end"]) for s in spans.values()]
    assert max_overlap(all_spans) == 3  # never more than 3, and 3 was reached
    by_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in spans.values():
        by_pid[s["pid"]].append((s["start"], s["end"]))
    assert set(by_pid) <= {p.pid for p in procs}
    assert len(by_pid) == 2  # both workers took work
    assert all(max_overlap(v) <= 2 for v in by_pid.values()), by_pid
    for h in handles:
        info = h.status()
        assert info.status == wf.Status.SUCCESS and info.queue == "comm_limited"


def test_worker_concurrency_is_per_process(enqueuer: str, workers: Any, markers: Path) -> None:
    procs = workers(2)
    handles = [app.PER_WORKER.enqueue(app.held, f"p{i}", 0.6) for i in range(8)]
    _wait_all(handles)
    spans = _intervals(markers)
    by_pid: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for s in spans.values():
        by_pid[s["pid"]].append((s["start"], s["end"]))
    assert set(by_pid) == {p.pid for p in procs}
    # 2 at once in each process (the limit is per process, not global)
    assert [max_overlap(v) for v in by_pid.values()] == [2, 2]
    assert max_overlap([(s["start"], s["end"]) for s in spans.values()]) == 4


def test_rate_limit_holds_across_two_workers(enqueuer: str, workers: Any, markers: Path) -> None:
    workers(2)
    n, seconds = app.RATED.rate_limit or (0, 0.0)
    assert (n, seconds) == (3, 1.0)
    handles = [app.RATED.enqueue(app.held, f"r{i}", 0.01) for i in range(7)]
    _wait_all(handles)
    rows = [r for r in raw_rows(enqueuer, "workflows") if r["queue"] == "comm_rated"]
    starts = sorted(int(r["started_at"]) for r in rows)
    assert len(starts) == 7
    window = int(seconds * 1000)
    for s in starts:
        in_window = [t for t in starts if s <= t < s + window]
        assert len(in_window) <= n, (s, starts)
    # 7 runs at 3 per window take more than two windows
    assert starts[-1] - starts[0] >= 2 * window
    assert len(_intervals(markers)) == 7


def test_dedup_id_already_enqueued_or_running_is_rejected(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    # enqueued (held back by a long delay): a second one with the same dedup_id is rejected
    first = app.PLAIN.enqueue(app.held, "d0", 0.01, workflow_id="dedup-0", dedup_id="d", delay=60)
    assert first.status().status == wf.Status.DELAYED
    with pytest.raises(wf.QueueDedupError):
        app.PLAIN.enqueue(app.held, "d1", 0.01, workflow_id="dedup-1", dedup_id="d")
    assert issubclass(wf.QueueDedupError, wf.WfError)
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow("dedup-1")  # the rejected enqueue recorded nothing
    # the same workflow ID again is the idempotent start, not a dedup clash
    assert (
        app.PLAIN.enqueue(app.held, "d0", 0.01, workflow_id="dedup-0", dedup_id="d").workflow_id
        == "dedup-0"
    )
    # another dedup_id, or the same dedup_id on another queue, is fine
    app.PLAIN.enqueue(app.held, "d2", 0.01, workflow_id="dedup-2", dedup_id="other", delay=60)
    app.OTHER.enqueue(app.held, "d3", 0.01, workflow_id="dedup-3", dedup_id="d", delay=60)
    # once the first has ended (here: cancelled) its dedup_id is free again
    wf.cancel("dedup-0")
    running = app.PLAIN.enqueue(app.held, "d4", 1.0, workflow_id="dedup-4", dedup_id="d")
    workers(1)
    wait_for(
        lambda: running.status().status == wf.Status.PENDING, timeout=30, what="dedup-4 running"
    )
    # running: still rejected
    with pytest.raises(wf.QueueDedupError):
        app.PLAIN.enqueue(app.held, "d5", 0.01, workflow_id="dedup-5", dedup_id="d")
    assert running.result(timeout=30)["tag"] == "d4"
    # ended: free again
    again = app.PLAIN.enqueue(app.held, "d6", 0.01, workflow_id="dedup-6", dedup_id="d")
    assert again.result(timeout=30)["tag"] == "d6"
    statuses = {w.workflow_id: w.status for w in wf.list_workflows(limit=None)}
    assert statuses == {
        "dedup-0": wf.Status.CANCELLED,
        "dedup-2": wf.Status.DELAYED,  # enqueued with a delay not passed yet
        "dedup-3": wf.Status.DELAYED,
        "dedup-4": wf.Status.SUCCESS,
        "dedup-6": wf.Status.SUCCESS,
    }


def test_priority_orders_dequeue(enqueuer: str, workers: Any, markers: Path) -> None:
    # all enqueued before any worker runs; concurrency=1 runs them one by one
    plan = [("p5", 5), ("p1", 1), ("p3", 3), ("p1b", 1), ("p2", 2), ("p0", 0), ("p3b", 3)]
    handles = [
        app.PRIO.enqueue(app.stamp, tag, workflow_id=f"prio-{i}-{tag}", priority=prio)
        for i, (tag, prio) in enumerate(plan)
    ]
    with pytest.raises(wf.ConfigurationError):
        app.PLAIN.enqueue(app.stamp, "x", priority=1)  # PLAIN was not declared with priority=True
    workers(1)
    _wait_all(handles)
    ran = [line.split()[1] for line in marker_lines(markers)]
    # lower values first; equal priorities in the order they were enqueued
    assert ran == ["p0", "p1", "p1b", "p2", "p3", "p3b", "p5"]


def test_priority_and_fifo_hold_on_a_queue_without_global_limits(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    # worker_concurrency=1 and no global limit: the one-statement take, in order
    plan = [("p5", 5), ("p1", 1), ("p3", 3), ("p1b", 1), ("p2", 2), ("p0", 0), ("p3b", 3)]
    handles = [app.PRIO_LOCAL.enqueue(app.stamp, tag, priority=prio) for tag, prio in plan]
    workers(1)
    _wait_all(handles)
    ran = [line.split()[1] for line in marker_lines(markers)]
    assert ran == ["p0", "p1", "p1b", "p2", "p3", "p3b", "p5"]


def test_queue_is_fifo_without_priority(enqueuer: str, workers: Any, markers: Path) -> None:
    # generated workflow IDs, enqueued back to back (many within one millisecond)
    tags = [f"f{i}" for i in range(10)]
    handles = [app.FIFO.enqueue(app.stamp, tag) for tag in tags]
    workers(1)
    _wait_all(handles)
    assert [line.split()[1] for line in marker_lines(markers)] == tags


def test_delay_holds(enqueuer: str, workers: Any) -> None:
    workers(1)
    t_enqueue = time.time()
    delayed = app.PLAIN.enqueue(app.stamp, "late", delay=1.5)
    prompt = app.PLAIN.enqueue(app.stamp, "prompt")
    t_prompt = prompt.result(timeout=30)
    t_late = delayed.result(timeout=30)
    assert t_late >= t_enqueue + 1.5 - 0.002  # never before its delay
    assert t_prompt < t_late


def test_worker_killed_mid_queue_loses_nothing(enqueuer: str, workers: Any, markers: Path) -> None:
    tags = [f"c{i}" for i in range(6)]
    handles = [app.CRASH.enqueue(app.held, tag, 0.6, workflow_id=f"crash-{tag}") for tag in tags]
    (first,) = workers(1)
    wait_for(
        lambda: sum(1 for line in marker_lines(markers) if line.startswith("start ")) >= 2,
        timeout=30,
        what="two workflows started on the first worker",
    )
    killed = kill_hard(first)
    assert killed.killed, killed.describe()
    in_flight = {w.workflow_id for w in wf.list_workflows(status=wf.Status.PENDING, limit=None)}
    assert 1 <= len(in_flight) <= 2, (  # concurrency=2
        [
            (w.workflow_id, w.status, w.executor_id, w.recovery_attempts)
            for w in wf.list_workflows(limit=None)
        ],
        marker_lines(markers),
    )
    # a second worker sees the dead executor's pid is gone and takes over at once
    (second,) = workers(1)
    results = _wait_all(handles)
    assert sorted(r["tag"] for r in results) == tags
    assert all(r["pid"] == second.pid for r in results if f"crash-{r['tag']}" in in_flight)
    for h in handles:
        info = h.status()
        assert info.status == wf.Status.SUCCESS
        assert info.recovery_attempts == (1 if h.workflow_id in in_flight else 0)
    lines = marker_lines(markers)
    for tag in tags:
        ends = [x for x in lines if x.startswith(f"end {tag} ")]
        assert len(ends) == 1, (tag, lines)  # every hold completed exactly once
    # the queue's limit held through the take-over
    second_spans = [
        (s["start"], s["end"]) for s in _intervals(markers).values() if s["pid"] == second.pid
    ]
    assert max_overlap(second_spans) <= 2
