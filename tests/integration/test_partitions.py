"""Queues per tenant, debouncing, dedup that returns the existing workflow,
and DELAYED (SPEC §3.2), with real worker processes (tests/apps/comm_worker.py
serving tests/apps/comm_partitions.py) on both backends.

As in test_queues.py, the test process only enqueues and observes (its
executor serves no queue), and limits are checked against the timestamps the
workflows' steps write."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import comm_partitions as app
from tests.apps.comm_worker import spawn_workers, stop_workers
from tests.helpers import REPO, child_env, marker_lines, raw_rows
from tests.integration.test_queues import max_overlap

MODULE = "tests.apps.comm_partitions"


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


@pytest.fixture
def enqueuer(db_url: str) -> Iterator[str]:
    wf.launch(database_url=db_url, queues=[], recovery=False)
    yield db_url
    wf.shutdown()


@pytest.fixture
def workers(db_url: str, tmp_path: Path, markers: Path) -> Iterator[Any]:
    procs: list[Any] = []

    def start(n: int) -> list[Any]:
        new = spawn_workers(MODULE, db_url, tmp_path, n, env={"WF_TEST_MARKERS": str(markers)})
        procs.extend(new)
        return new

    yield start
    for r in stop_workers(procs):
        assert r.returncode in (0, -9), r.describe()


def _spans(markers: Path) -> dict[str, tuple[str, float, float]]:
    """tag -> (partition, start, end) from ``held``'s marker lines."""
    starts: dict[str, tuple[str, float]] = {}
    out: dict[str, tuple[str, float, float]] = {}
    for line in marker_lines(markers):
        parts = line.split()
        if parts[0] == "start":
            starts[parts[1]] = (parts[2], float(parts[4]))
        elif parts[0] == "end":
            p, s = starts[parts[1]]
            out[parts[1]] = (p, s, float(parts[4]))
    return out


# -- partitions -----------------------------------------------------------------------------


def test_partition_and_queue_limits_hold_across_two_workers(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    workers(2)
    handles = [
        app.TENANTS.enqueue(app.held, f"t{i}", f"p{i % 3}", 0.4, partition_key=f"p{i % 3}")
        for i in range(12)
    ]
    for h in handles:
        h.result(timeout=90)
    spans = _spans(markers)
    assert len(spans) == 12
    by_partition: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for p, s, e in spans.values():
        by_partition[p].append((s, e))
    overlaps = {p: max_overlap(v) for p, v in by_partition.items()}
    assert all(n <= 2 for n in overlaps.values()), overlaps  # partition_concurrency=2
    assert max(overlaps.values()) == 2  # and reached
    assert max_overlap([(s, e) for _, s, e in spans.values()]) <= 4  # concurrency=4
    assert {w.partition_key for w in wf.list_workflows(queue="part_tenants", limit=None)} == {
        "p0",
        "p1",
        "p2",
    }
    assert len(wf.list_workflows(partition_key="p1", limit=None)) == 4


def test_a_busy_partition_never_starves_the_others(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    for i in range(120):
        app.FAIR.enqueue(app.held, f"big{i}", "big", 0.01, partition_key="big")
    small = [
        app.FAIR.enqueue(app.held, f"small{i}", "small", 0.01, partition_key="small")
        for i in range(10)
    ]
    workers(1)
    for h in small:
        h.result(timeout=90)
    ended = wf.count_workflows(status="SUCCESS", queue="part_fair")
    # first in, first out would run all 120 of "big" before any of "small"
    assert ended - 10 < 60, ended


def test_partition_rate_limit_counts_starts_per_partition(
    enqueuer: str, workers: Any, db_url: str
) -> None:
    handles = [
        app.PART_RATED.enqueue(app.held, f"r{i}", p, 0.0, partition_key=p)
        for i, p in enumerate(["a"] * 5 + ["b"] * 2)
    ]
    workers(1)
    for h in handles:
        h.result(timeout=90)
    rows = [r for r in raw_rows(db_url, "workflows") if r["queue"] == "part_rated"]
    by_p: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        by_p[r["partition_key"]].append(int(r["started_at"]))
    for p, starts in by_p.items():
        starts.sort()
        for i, t in enumerate(starts):
            in_window = [u for u in starts[i:] if u < t + 2000]
            assert len(in_window) <= 2, (p, starts)
    # b's two did not wait behind a's five
    assert max(by_p["b"]) < sorted(by_p["a"])[-1]


def test_queue_list_shows_partition_limits_and_the_busiest(enqueuer: str) -> None:
    for i in range(3):
        app.TENANTS.enqueue(app.held, f"q{i}", "hot", 0.0, partition_key="hot")
    app.TENANTS.enqueue(app.held, "q9", "cold", 0.0, partition_key="cold")
    app.TENANTS.info()  # declared here: published by a worker; the test reads the counts
    q = next(q for q in wf.list_queues() if q.name == "part_tenants")
    assert q.enqueued == 4
    assert q.partitions[0] == ("hot", 3, 0)
    assert ("cold", 1, 0) in q.partitions


# -- debouncing -----------------------------------------------------------------------------


def test_a_burst_of_enqueues_collapses_into_one_run_with_the_last_arguments(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    workers(1)
    handles = [
        app.DEBOUNCED.enqueue(app.collapse, text, debounce_key="doc-7", debounce=1.0)
        for text in ("first", "second", "last")
    ]
    assert len({h.workflow_id for h in handles}) == 1
    info = handles[0].status()
    assert info.status == wf.Status.DELAYED and info.delayed_until is not None
    assert handles[0].result(timeout=60) == "last"
    ran = [ln for ln in marker_lines(markers) if ln.startswith("ran ")]
    assert [ln.split()[1] for ln in ran] == ["last"]
    # a burst after the run started is a new run
    again = app.DEBOUNCED.enqueue(app.collapse, "later", debounce_key="doc-7", debounce=0.2)
    assert again.workflow_id != handles[0].workflow_id
    assert again.result(timeout=60) == "later"


def test_concurrent_enqueuers_in_three_processes_get_one_workflow(
    enqueuer: str, workers: Any, markers: Path, db_url: str, tmp_path: Path
) -> None:
    barrier = tmp_path / "go"
    code = (
        "import sys, time, pathlib, wf\n"
        "from tests.apps import comm_partitions as app\n"
        "wf.launch(queues=[], recovery=False)\n"
        "go = pathlib.Path(sys.argv[1])\n"
        "while not go.exists(): time.sleep(0.005)\n"
        "ids = {app.DEBOUNCED.enqueue(app.collapse, f'{sys.argv[2]}-{i}', debounce_key='k',"
        " debounce=3.0).workflow_id for i in range(5)}\n"
        "print(' '.join(sorted(ids)))\n"
        "wf.shutdown()\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(barrier), f"p{n}"],
            env=child_env(db_url),
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    time.sleep(1.5)  # let them launch (a slow one still enqueues within the 3 s window)
    barrier.touch()
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ids = {wid for out, _ in outs for wid in out.split()}
    assert len(ids) == 1, outs
    workers(1)
    result = wf.retrieve(ids.pop()).result(timeout=60)
    ran = [ln.split()[1] for ln in marker_lines(markers) if ln.startswith("ran ")]
    assert ran == [result]  # one run, with one of the calls' arguments


def test_max_wait_runs_a_constant_stream(enqueuer: str, workers: Any, markers: Path) -> None:
    workers(1)
    ids = []
    t_end = time.monotonic() + 3.0
    i = 0
    while time.monotonic() < t_end:
        h = app.DEBOUNCED.enqueue(
            app.collapse, f"s{i}", debounce_key="stream", debounce=0.5, debounce_max_wait=1.0
        )
        ids.append(h.workflow_id)
        i += 1
        time.sleep(0.1)  # never quiet for 0.5 s
    assert len(set(ids)) >= 2  # max_wait started one while the stream went on
    for wid in dict.fromkeys(ids):
        wf.retrieve(wid).result(timeout=60)


def test_a_debounce_key_waiting_for_another_function_is_a_conflict(enqueuer: str) -> None:
    app.DEBOUNCED.enqueue(app.collapse, "x", debounce_key="same", debounce=30)
    with pytest.raises(wf.WorkflowConflictError, match="same"):
        app.DEBOUNCED.enqueue(app.other, "y", debounce_key="same", debounce=30)


# -- dedup that returns, DELAYED ---------------------------------------------------------------


def test_on_duplicate_return_gives_the_live_workflow(enqueuer: str) -> None:
    first = app.DEBOUNCED.enqueue(app.other, "a", dedup_id="order-1", delay=30)
    with pytest.raises(wf.QueueDedupError):
        app.DEBOUNCED.enqueue(app.other, "b", dedup_id="order-1")
    again = app.DEBOUNCED.enqueue(app.other, "b", dedup_id="order-1", on_duplicate="return")
    assert again.workflow_id == first.workflow_id
    info = again.status()
    assert (info.dedup_id, info.priority, info.inputs["args"]) == ("order-1", 0, ["a"])
    wf.cancel(first.workflow_id)
    fresh = app.DEBOUNCED.enqueue(app.other, "c", dedup_id="order-1", on_duplicate="return")
    assert fresh.workflow_id != first.workflow_id  # the old one is no longer live


def test_delayed_is_shown_and_filters_keep_working(enqueuer: str) -> None:
    h = app.DEBOUNCED.enqueue(app.other, "later", delay=60)
    now = app.DEBOUNCED.enqueue(app.other, "now")
    assert h.status().status == wf.Status.DELAYED
    assert now.status().status == wf.Status.ENQUEUED
    delayed = {w.workflow_id for w in wf.list_workflows(status="DELAYED")}
    assert delayed == {h.workflow_id}
    enqueued = {w.workflow_id for w in wf.list_workflows(status="ENQUEUED")}
    assert enqueued == {h.workflow_id, now.workflow_id}  # ENQUEUED still finds it
    assert wf.count_workflows(status=["DELAYED", "SUCCESS"]) == 1
    wf.cancel(h.workflow_id)
    assert h.status().status == wf.Status.CANCELLED


def test_bad_queue_options_are_refused_before_anything_is_written(enqueuer: str) -> None:
    with pytest.raises(wf.ConfigurationError):
        wf.Queue("bad", partition_concurrency=0)
    with pytest.raises(wf.ConfigurationError):
        wf.Queue("bad", partition_rate_limit=(0, 1.0))
    with pytest.raises(wf.ConfigurationError, match="debounce"):
        app.DEBOUNCED.enqueue(app.other, "x", debounce=1.0)
    with pytest.raises(wf.ConfigurationError, match="debounce"):
        app.DEBOUNCED.enqueue(app.other, "x", debounce_key="k")
    with pytest.raises(wf.ConfigurationError, match="debounce"):
        app.DEBOUNCED.enqueue(app.other, "x", debounce_key="k", debounce=1.0, delay=2)
    with pytest.raises(wf.ConfigurationError, match="on_duplicate"):
        app.DEBOUNCED.enqueue(app.other, "x", on_duplicate="ignore")
    with pytest.raises(wf.ConfigurationError, match="partition_key"):
        app.DEBOUNCED.enqueue(app.other, "x", partition_key="")
    assert wf.list_workflows() == []
