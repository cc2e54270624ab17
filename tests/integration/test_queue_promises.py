"""Queue limits hold on every path (issue 11, items 1 and 2), with real
worker processes (tests/apps/comm_worker.py serving tests/apps/q1_queues.py):

- a cancelled queued workflow keeps its slot of the queue's concurrency while
  its step still runs: the next workflow starts only after that run stopped;
- a resumed queued workflow goes back on its queue: it waits for a slot (also
  for its own cancelled run to stop), then a worker or the resuming process
  dequeues it; never does it run past the limit.

The test process enqueues with an executor that serves no queue and adopts
nothing (``queues=[], recovery=False``). Overlaps are computed from the
start/end markers the ``hold`` step writes (in any process: the test process
gets the marker file too, so a run here would show)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import q1_queues as app
from tests.apps.comm_worker import spawn_workers, stop_workers
from tests.helpers import marker_lines, wait_for

MODULE = "tests.apps.q1_queues"


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "markers.txt"
    monkeypatch.setenv("WF_TEST_MARKERS", str(path))
    return path


@pytest.fixture
def enqueuer(db_url: str, markers: Path) -> Iterator[str]:
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
        assert r.returncode == 0, r.describe()


def runs(markers: Path) -> dict[str, list[dict[str, Any]]]:
    """tag -> each run of its ``hold`` step: {"pid", "start", "end"} (end None
    while it runs, or when the run never ended)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for line in marker_lines(markers):
        kind, tag, pid, t = line.split()
        if kind == "start":
            out.setdefault(tag, []).append({"pid": int(pid), "start": float(t), "end": None})
        elif kind == "end":
            run = next(r for r in out[tag] if r["pid"] == int(pid) and r["end"] is None)
            run["end"] = float(t)
    return out


def wait_started(markers: Path, tag: str, n: int = 1) -> None:
    wait_for(lambda: len(runs(markers).get(tag, [])) >= n, timeout=60, what=f"{tag} to start")


def test_cancelled_run_holds_its_slot_until_its_step_ends(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    workers(2)  # concurrency=1 across both
    first = app.SINGLE.enqueue(app.held, "a", 3.0)
    wait_started(markers, "a")
    second = app.SINGLE.enqueue(app.held, "b", 0.1)
    wf.cancel(first.workflow_id)
    assert second.result(timeout=60)["tag"] == "b"
    got = runs(markers)
    (a,), (b,) = got["a"], got["b"]
    assert a["end"] is not None, got  # the cancelled run's step went on to its end ...
    assert b["start"] >= a["end"], got  # ... and only then did the next one start
    assert first.status().status == wf.Status.CANCELLED


def test_resumed_queued_workflow_waits_on_its_queue_for_a_slot(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    waiting = app.SINGLE.enqueue(app.held, "c", 0.1)
    wf.cancel(waiting.workflow_id)  # cancelled before any worker took it
    procs = workers(1)
    busy = app.SINGLE.enqueue(app.held, "d", 3.0)
    wait_started(markers, "d")
    resumed = wf.resume(waiting.workflow_id)
    assert resumed.result(timeout=60)["tag"] == "c"
    assert busy.result(timeout=60)["tag"] == "d"
    got = runs(markers)
    (c,), (d,) = got["c"], got["d"]
    assert c["start"] >= d["end"], got  # concurrency=1 held for the resumed workflow
    # the resuming process may take it itself (within the limit), or a worker
    assert c["pid"] in (procs[0].pid, os.getpid())
    assert wf.get_workflow(waiting.workflow_id).queue == "q1_single"


def test_resume_right_after_cancel_waits_for_the_cancelled_run_to_stop(
    enqueuer: str, workers: Any, markers: Path
) -> None:
    procs = workers(1)
    h = app.SINGLE.enqueue(app.held, "e", 3.0)
    wait_started(markers, "e")
    wf.cancel(h.workflow_id)
    wf.resume(h.workflow_id)
    assert h.result(timeout=60)["tag"] == "e"
    got = runs(markers)["e"]
    assert len(got) == 2, got  # the cancelled run's step was not recorded: it runs again
    first, second = got
    # never two runs of one workflow at once: the resumed one waited for its slot
    assert first["end"] is not None and second["start"] >= first["end"], got
    assert first["pid"] == procs[0].pid and second["pid"] in (procs[0].pid, os.getpid())
