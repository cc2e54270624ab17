"""Queues per tenant, debouncing, dedup that returns the existing workflow,
and DELAYED (SPEC §3.2), with real worker processes (tests/apps/comm_worker.py
serving tests/apps/comm_partitions.py) on both backends.

As in test_queues.py, the test process only enqueues and observes (its
executor serves no queue), and limits are checked against the timestamps the
workflows' steps write."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import comm_partitions as app
from tests.helpers import REPO, child_env, marker_lines, raw_rows, wait_for, wait_for_file
from tests.integration.test_queues import max_overlap

MODULE = "tests.apps.comm_partitions"


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
    # issue 16's scale: one tenant enqueues 1,000, then another 10 (trivial bodies)
    for i in range(1000):
        app.FAIR.enqueue(app.other, f"big{i}", partition_key="big")
    small = [app.FAIR.enqueue(app.other, f"small{i}", partition_key="small") for i in range(10)]
    workers(1)
    for h in small:
        assert h.result(timeout=90).startswith("small")
    # judged by start order, not by how many "big" ended before this process saw
    # the results (a fast worker finishes many more while the handles poll)
    small_starts = [wf.get_workflow(h.workflow_id).started_at for h in small]
    assert None not in small_starts
    last_small = max(t for t in small_starts if t is not None)
    big_before = sum(
        1
        for w in wf.list_workflows(queue="part_fair", partition_key="big", limit=None)
        if w.started_at is not None and w.started_at < last_small
    )
    # first in, first out would start all 1,000 of "big" before the last of "small"
    assert big_before <= 100, big_before


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
    by_p = _rated_starts(db_url)
    _assert_two_per_window(by_p)
    # b's two did not wait behind a's five
    assert max(by_p["b"]) < sorted(by_p["a"])[-1]


def test_partition_rate_limit_holds_across_two_workers(
    enqueuer: str, workers: Any, db_url: str
) -> None:
    procs = workers(2)
    # one running at a time per process (worker_concurrency=1), 0.3 s each:
    # both processes dequeue, and together could start far more than the budget
    handles = [
        app.PART_RATED_EACH.enqueue(app.held, f"e{i}", p, 0.3, partition_key=p)
        for i, p in enumerate(["a", "b", "c"] * 5)
    ]
    for h in handles:
        h.result(timeout=90)
    by_p = _rated_starts(db_url, "part_rated_each")
    assert {p: len(v) for p, v in by_p.items()} == {"a": 5, "b": 5, "c": 5}
    _assert_two_per_window(by_p)
    for starts in by_p.values():  # 5 starts at 2 per 2 s take three windows
        assert starts[-1] - starts[0] >= 4000, by_p
    # the budget is counted across both processes, not per process
    pids = {h.result()["pid"] for h in handles}
    assert pids == {p.pid for p in procs}, pids


def _rated_starts(db_url: str, queue: str = "part_rated") -> dict[str, list[int]]:
    """partition -> the sorted ``started_at`` of ``queue``'s workflows."""
    by_p: dict[str, list[int]] = defaultdict(list)
    for r in raw_rows(db_url, "workflows"):
        if r["queue"] == queue:
            by_p[r["partition_key"]].append(int(r["started_at"]))
    return {p: sorted(v) for p, v in by_p.items()}


def _assert_two_per_window(by_p: dict[str, list[int]]) -> None:
    """partition_rate_limit=(2, 2.0): no 2-second window holds 3 starts of one partition."""
    for p, starts in by_p.items():
        for i, t in enumerate(starts):
            in_window = [u for u in starts[i:] if u < t + 2000]
            assert len(in_window) <= 2, (p, starts)


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


_BURSTS, _BURST_GAP, _WINDOW = 3, 3.0, 1.0
_BURSTER = """
import json, pathlib, sys, time
import wf
from tests.apps import comm_partitions as app
name, go, ready = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
bursts, gap, window = int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
wf.launch(queues=[], recovery=False)
ready.touch()
while not go.exists():
    time.sleep(0.005)
t0 = float(go.read_text())
for b in range(bursts):
    while time.time() < t0 + b * gap:
        time.sleep(0.002)
    for i in range(10):
        arg = f"b{b}-{name}-{i}"
        s = time.time()
        h = app.DEBOUNCED.enqueue(app.collapse, arg, debounce_key="doc", debounce=window)
        print(json.dumps({"b": b, "arg": arg, "s": s, "e": time.time(), "id": h.workflow_id}))
        time.sleep(0.01)
wf.shutdown()
"""


def test_bursts_from_three_enqueuers_with_two_live_workers_run_once_each(
    enqueuer: str, markers: Path, db_url: str, tmp_path: Path
) -> None:
    """Two `wf worker` processes dequeue while three processes enqueue three
    bursts of 10 each with one debounce_key, quiet for longer than the window
    between bursts: one workflow per burst, run once, with the burst's last
    arguments (a call that began after another returned came later)."""
    import json

    env = child_env(db_url, {"WF_TEST_MARKERS": str(markers)})
    wf_exe = str(Path(sys.executable).parent / "wf")
    logs = [open(tmp_path / f"worker-{n}.log", "w") for n in range(2)]  # noqa: SIM115
    workers = [
        subprocess.Popen(
            [wf_exe, "worker", MODULE], env=env, cwd=str(REPO), stdout=log, stderr=log, text=True
        )
        for log in logs
    ]
    burst_procs: list[subprocess.Popen[str]] = []
    try:
        pids = {p.pid for p in workers}
        wait_for(
            lambda: pids <= {e.pid for e in wf.list_executors() if e.alive},
            timeout=60,
            what="two live workers",
        )
        go = tmp_path / "go"
        readies = [tmp_path / f"ready-{n}" for n in range(3)]
        burst_procs = [
            subprocess.Popen(
                [sys.executable, "-c", _BURSTER, f"p{n}", str(go), str(readies[n])]
                + [str(_BURSTS), str(_BURST_GAP), str(_WINDOW)],
                env=child_env(db_url),
                cwd=str(REPO),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n in range(3)
        ]
        for ready, proc in zip(readies, burst_procs, strict=True):
            wait_for_file(ready, timeout=60, proc=proc)
        (tmp_path / "go.tmp").write_text(repr(time.time() + 0.2))
        (tmp_path / "go.tmp").rename(go)
        outs = [p.communicate(timeout=120) for p in burst_procs]
        assert all(p.returncode == 0 for p in burst_procs), outs
        calls = [json.loads(ln) for out, _ in outs for ln in out.splitlines()]
        assert len(calls) == 3 * 10 * _BURSTS
        bursts = [[c for c in calls if c["b"] == b] for b in range(_BURSTS)]
        for b in range(_BURSTS - 1):  # the gaps were quiet for longer than the window
            assert max(c["e"] for c in bursts[b]) + _WINDOW < min(c["s"] for c in bursts[b + 1])
        ids = [{c["id"] for c in burst} for burst in bursts]
        assert [len(i) for i in ids] == [1] * _BURSTS, ids  # one workflow per burst
        assert len(set().union(*ids)) == _BURSTS
        assert len(wf.list_workflows(queue="part_debounced", limit=None)) == _BURSTS
        for burst, (wid,) in zip(bursts, ids, strict=True):
            result = wf.retrieve(wid).result(timeout=60)
            won = next(c for c in burst if c["arg"] == result)  # one of its burst's calls
            assert all(c["s"] <= won["e"] for c in burst), (result, burst)  # and the last
        ran = [ln.split()[1] for ln in marker_lines(markers) if ln.startswith("ran ")]
        assert sorted(ran) == sorted(wf.retrieve(next(iter(i))).result() for i in ids)  # once each
    finally:
        for p in burst_procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=30) for w in workers]
        for log in logs:
            log.close()
        assert codes == [0, 0], [(tmp_path / f"worker-{n}.log").read_text() for n in range(2)]


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


def test_a_joining_debounced_enqueue_keeps_partition_and_priority_or_is_a_conflict(
    enqueuer: str,
) -> None:
    q = app.DEBOUNCED_PRIO
    first = q.enqueue(
        app.collapse, "x", debounce_key="k6", debounce=30, partition_key="a", priority=1
    )
    cases: list[tuple[dict[str, Any], str]] = [
        ({"partition_key": "b", "priority": 1}, "partition_key 'a' (not 'b')"),
        ({"priority": 1}, "partition_key 'a' (not None)"),
        ({"partition_key": "a"}, "priority 1 (not 0)"),
    ]
    for other, says in cases:
        with pytest.raises(wf.WorkflowConflictError, match="k6") as e:
            q.enqueue(app.collapse, "y", debounce_key="k6", debounce=30, **other)
        assert says in str(e.value), e.value
    info = first.status()
    assert info.inputs["args"] == ["x"]  # a refused enqueue changed nothing
    # the same partition and priority join it, with the last arguments
    again = q.enqueue(
        app.collapse, "z", debounce_key="k6", debounce=30, partition_key="a", priority=1
    )
    assert again.workflow_id == first.workflow_id
    assert again.status().inputs["args"] == ["z"]
    assert len(wf.list_workflows(queue="part_debounced_prio")) == 1


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


def test_on_duplicate_return_refuses_a_live_workflow_of_another_function(enqueuer: str) -> None:
    charge = app.DEBOUNCED.enqueue(app.other, "1", dedup_id="o1", delay=60)
    with pytest.raises(wf.WorkflowConflictError, match="o1"):
        app.DEBOUNCED.enqueue(app.collapse, "1", dedup_id="o1", on_duplicate="return")
    # the same function still gets the live one's handle
    again = app.DEBOUNCED.enqueue(app.other, "2", dedup_id="o1", on_duplicate="return")
    assert again.workflow_id == charge.workflow_id
    assert len(wf.list_workflows(queue="part_debounced")) == 1


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
