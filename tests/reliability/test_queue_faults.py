"""Queues, recovery, resume and schedules under faults (issue 11 items 1, 3,
6, 9, 10; issue 10 items 5 and 8), with real worker processes killed with
SIGKILL, frozen with SIGSTOP, and a private Postgres crashed under them.

What must hold:
- a queued workflow that kills its worker every time ends RETRIES_EXCEEDED
  after ``max_recovery_attempts`` re-runs (SPEC §4.6 on the queue path too);
- a queued workflow's deadline is fixed at its first dequeue: re-queued after
  a crash and dequeued again, it is cancelled on time;
- a rate limit counts the starts of runs that were killed and re-queued,
  also a run re-dequeued inside its own window;
- a cancelled run's slot is freed when its worker dies (no slot leaks);
- ``wf.resume`` never takes a workflow from the live executor that adopted it
  while resume was deciding (its step runs in one live process only);
- a worker frozen inside its dequeue transaction does not stall the queue
  for the others (Postgres: its locks are bounded);
- schedule ticks that came due during a Postgres outage run after it, each once."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import wf

from tests.apps import q1_queues as app
from tests.helpers import marker_lines, wait_for
from tests.reliability.pgcluster import PgCluster
from tests.reliability.procs import Procs

pytestmark = pytest.mark.timeout(180)

MODULE = "tests.apps.q1_queues"


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


@pytest.fixture
def make_procs(tmp_path: Path, markers: Path) -> Iterator[Callable[[str], Procs]]:
    made: list[Procs] = []

    def make(db_url: str) -> Procs:
        p = Procs(db_url, tmp_path, {"WF_TEST_MARKERS": str(markers)})
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()


@pytest.fixture
def procs(db_url: str, observe: str, make_procs: Callable[[str], Procs]) -> Procs:
    """Worker processes on ``db_url``; the test process only enqueues and observes."""
    return make_procs(db_url)


def kill(p: Any) -> None:
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)


def starts(markers: Path, tag: str | None = None) -> list[tuple[str, int, float]]:
    """(tag, pid, time) of each ``hold`` step start, in order."""
    out = []
    for line in marker_lines(markers):
        kind, t, pid, at = line.split()
        if kind == "start" and (tag is None or t == tag):
            out.append((t, int(pid), float(at)))
    return out


def status(wid: str) -> str:
    return wf.get_workflow(wid).status


def test_queued_workflow_that_kills_its_worker_ends_retries_exceeded(
    procs: Procs, markers: Path
) -> None:
    # max_recovery_attempts=1: the first run and one re-run, then RETRIES_EXCEEDED
    app.DOOMED.enqueue(app.doomed, workflow_id="doomed")
    for k in range(4):
        # not procs.worker: a worker may die before it says it is ready
        p = procs.spawn(
            "tests.apps.comm_worker",
            MODULE,
            str(procs.tmp / f"ready-doomed-{k}"),
            env={"WF_EXECUTOR_ID": f"doomed-{k}"},
        )
        wait_for(
            lambda p=p: p.poll() is not None or status("doomed") == wf.Status.RETRIES_EXCEEDED,
            timeout=60,
            what=f"worker {k} to die or the workflow to end",
        )
        if status("doomed") == wf.Status.RETRIES_EXCEEDED:
            break
    runs = [line for line in marker_lines(markers) if line.startswith("run ")]
    assert status("doomed") == wf.Status.RETRIES_EXCEEDED, (runs, procs.logs())
    assert len(runs) == 2, runs
    assert p.poll() is None  # the last worker did not run it again
    info = wf.get_workflow("doomed")
    assert info.recovery_attempts == 2 and info.executor_id is None
    with pytest.raises(wf.RetriesExceededError):
        wf.retrieve("doomed").result(timeout=5)


def test_queued_deadline_is_fixed_at_its_first_dequeue(procs: Procs, markers: Path) -> None:
    timeout = 6.0
    h = wf.start(app.ticking, 60, queue="q1_timed", timeout=timeout)  # 12 s of steps
    a = procs.worker(MODULE, "timed-a", env={"WF_TEST_KILL_AT": "tick5"})
    wait_for(lambda: any(x.startswith("tick 0 ") for x in marker_lines(markers)), timeout=60)
    first = wf.get_workflow(h.workflow_id)
    assert first.deadline is not None
    a.wait(timeout=60)  # it dies in its sixth step
    procs.worker(MODULE, "timed-b")  # re-queues and dequeues it again
    wait_for(
        lambda: any(x.startswith("tick 6 ") for x in marker_lines(markers)),
        timeout=60,
        what="the re-dequeued run",
    )
    assert wf.get_workflow(h.workflow_id).deadline == first.deadline
    wait_for(lambda: status(h.workflow_id) in wf.Status.ENDED, timeout=60)
    end = wf.get_workflow(h.workflow_id)
    assert end.status == wf.Status.CANCELLED, end
    # cancelled at the deadline set when it was first dequeued (checked
    # before each call, and once a second by the maintenance loop)
    assert end.updated_at <= first.deadline + timedelta(seconds=2.5), (end, first.deadline)


def test_rate_limit_counts_the_starts_of_killed_runs(procs: Procs, markers: Path) -> None:
    n, seconds = app.RATED.rate_limit or (0, 0.0)
    assert (n, seconds) == (3, 8.0)
    first = app.RATED.enqueue(app.held, "r0", 0.1)
    a = procs.worker(MODULE, "rated-a", env={"WF_TEST_HOLD": "60"})
    wait_for(lambda: starts(markers, "r0"), timeout=60)
    kill(a)
    procs.worker(MODULE, "rated-b")  # re-queues r0 and runs it again, inside r0's window
    wait_for(lambda: len(starts(markers, "r0")) == 2, timeout=60, what="r0 to run again")
    rest = [app.RATED.enqueue(app.held, f"r{i}", 0.1) for i in range(1, 4)]
    for h in [first, *rest]:
        assert h.result(timeout=60)["pid"] != a.pid
    times = sorted(t for _, _, t in starts(markers))
    assert len(times) == 5, starts(markers)
    # each start counts, the killed one too: at most n in any window (the
    # markers come a little after the dequeue that the limit holds for)
    window = seconds - 1.0
    for s in times:
        assert len([t for t in times if s <= t < s + window]) <= n, (s, times)


def test_a_killed_workers_cancelled_run_frees_its_slot(procs: Procs, markers: Path) -> None:
    a = procs.worker(MODULE, "slot-a", env={"WF_TEST_HOLD": "60"})
    first = app.SINGLE.enqueue(app.held, "s0", 0.1)
    wait_for(lambda: starts(markers, "s0"), timeout=60)
    wf.cancel(first.workflow_id)
    second = app.SINGLE.enqueue(app.held, "s1", 0.1)
    b = procs.worker(MODULE, "slot-b")
    time.sleep(1.5)  # while the cancelled run goes on, its slot stays taken
    assert not starts(markers, "s1"), starts(markers)
    kill(a)  # the run stops with its process: recovery frees the slot
    assert second.result(timeout=60)["pid"] == b.pid
    assert status(first.workflow_id) == wf.Status.CANCELLED


def test_resume_does_not_take_a_workflow_from_its_live_adopter(procs: Procs, markers: Path) -> None:
    mod = "tests.apps.q1_resume"
    a = procs.spawn(
        "tests.apps.driver", mod, "start", "adoptee", "adopted", env={"WF_TEST_HOLD": "60"}
    )
    wait_for(lambda: any(x.startswith("start ") for x in marker_lines(markers)), timeout=60)
    kill(a)
    # resume reads the row (PENDING under the dead executor), then imports the
    # module (slow here) while a live worker adopts the workflow
    resumer = procs.spawn("tests.apps.q1_resumer", "adoptee", env={"WF_TEST_IMPORT_DELAY": "6"})
    wait_for(
        lambda: any(x.startswith("importing ") for x in marker_lines(markers)),
        timeout=60,
        what="resume to be deciding",
    )
    adopter = procs.worker(mod, "adopter")
    resumer.wait(timeout=120)
    out = procs.output(resumer)
    assert f"RESULT {adopter.pid}" in out, (out, procs.logs())
    after = [x for x in marker_lines(markers) if x.startswith("start ")][1:]
    # the step ran once after the crash, in the adopter: never also in the resumer
    assert [int(x.split()[1]) for x in after] == [adopter.pid], marker_lines(markers)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_a_worker_frozen_in_its_dequeue_transaction_does_not_stall_the_queue(
    procs: Procs, markers: Path, tmp_path: Path
) -> None:
    from tests.apps import q1_freeze

    mod = "tests.apps.q1_freeze"
    freeze = tmp_path / "freeze"
    a = procs.worker(mod, "frozen-a", env={"WF_TEST_FREEZE_FILE": str(freeze)})
    b = procs.worker(mod, "frozen-b")
    freeze.touch()
    wait_for(lambda: f"frozen {a.pid}" in marker_lines(markers), timeout=30)
    handles = [q1_freeze.LIMITED.enqueue(q1_freeze.quick, f"f{i}") for i in range(6)]
    for h in handles:  # the frozen worker holds the queue's lock: not for long
        assert h.result(timeout=40) == b.pid
    os.kill(a.pid, signal.SIGCONT)
    more = [q1_freeze.LIMITED.enqueue(q1_freeze.quick, f"g{i}") for i in range(4)]
    for h in more:
        h.result(timeout=40)
    assert a.poll() is None, procs.output(a)  # thawed, it carries on
    a.send_signal(signal.SIGTERM)
    assert a.wait(timeout=60) == 0, procs.output(a)


def test_schedule_ticks_missed_during_an_outage_run_once_after_it(
    private_pg: PgCluster, private_db: str, make_procs: Callable[[str], Procs], markers: Path
) -> None:
    procs = make_procs(private_db)
    procs.worker("tests.apps.q1_schedule", "scheduler")

    def ticks(status: str | None = None) -> list[str]:
        with psycopg.connect(private_db, connect_timeout=5) as conn:
            rows = conn.execute(
                "SELECT workflow_id FROM wf.workflows WHERE workflow_id LIKE 'sched-%%'"
                + (" AND status = %s" if status else ""),
                (status,) if status else (),
            ).fetchall()
        return sorted(r[0] for r in rows)

    wait_for(lambda: len(ticks("SUCCESS")) >= 2, timeout=60, what="two ticks")
    private_pg.stop("immediate")
    time.sleep(4)  # the outage: four ticks come due while the database is down
    private_pg.start()
    back = datetime.now()
    wait_for(lambda: len(ticks("SUCCESS")) >= len(ticks()) >= 10, timeout=60, what="ticks after")
    procs.close()
    ids = ticks()
    at = [datetime.strptime(w[-20:], "%Y-%m-%dT%H:%M:%SZ") for w in ids]
    # every second from the first tick to the last, none skipped
    gaps = [(b - a).total_seconds() for a, b in zip(at, at[1:], strict=False)]
    assert set(gaps) == {1.0}, (ids, back)
    ran = Counter(line.split()[1] for line in marker_lines(markers))
    assert all(ran[w] <= 1 for w in ids), ran  # each tick's body ran once at most
    done = set(ticks("SUCCESS"))
    assert all(ran[w] == 1 for w in done), ran
