"""Workers and liveness under faults (issue 11, items 4, 5, 7, 8, 11), with
real processes, signals and SIGKILL on both backends:

- SIGTERM on a worker lets its running step finish (a bounded grace period)
  before any other process may run the workflow; past the grace, the work
  stays with the stopping process until it is gone; a second signal stops
  the wait.
- A process restarted with the same fixed WF_EXECUTOR_ID is not judged dead
  by its peers on the pid of the process it replaced.
- 300 parents waiting on background children all finish (waiting gives its
  pool slot back).
- Waiting for a database connection from an exhausted pool is waiting, not
  the workflow's error.
- ``wf worker`` started while the database is down waits for it; one-shot
  commands still fail fast (exit 5).

Step bodies write ``<step> <tag> start|end <pid> <time>`` marker lines
(tests/apps/q2_faults.py); liveness is made fast through WF_RECOVERY_INTERVAL
and friends, which runtime/_worker/executor.py reads at import (so only in the child
processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.helpers import AppResult, marker_lines, outcome, wait_for
from tests.reliability.pgcluster import PgCluster
from tests.reliability.procs import Procs

APP = "tests.apps.q2_faults"
CLI = "wf.cli.main"


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


@pytest.fixture
def procs(db_url: str, tmp_path: Path, markers: Path) -> Iterator[Procs]:
    wf.configure(database_url=db_url)
    p = Procs(
        db_url,
        tmp_path,
        {"WF_TEST_MARKERS": str(markers), "WF_TEST_RELEASE": str(tmp_path / "release")},
    )
    yield p
    p.close()


def _runs(markers: Path, step: str, tag: str, what: str = "start") -> list[tuple[int, float]]:
    """(pid, time) of each ``what`` marker of ``step`` for ``tag``, in order."""
    out = []
    for line in marker_lines(markers):
        name, t, w, pid, at = line.split()
        if (name, t, w) == (step, tag, what):
            out.append((int(pid), float(at)))
    return out


def _pids(markers: Path, step: str, tag: str) -> list[int]:
    return [pid for pid, _ in _runs(markers, step, tag)]


def _worker(procs: Procs, executor_id: str, **env: str) -> subprocess.Popen[str]:
    """A real ``wf worker`` for the app, once it says it is serving."""
    p = procs.spawn(CLI, "worker", APP, env={"WF_EXECUTOR_ID": executor_id, **env})

    def serving() -> bool:
        if p.poll() is not None:
            raise AssertionError(f"the worker exited ({p.returncode}):\n{procs.output(p)}")
        return "serving" in procs.output(p)

    wait_for(serving, timeout=60, what=f"worker {executor_id} to serve")
    return p


def _enqueue(procs: Procs, tag: str, seconds: float) -> str:
    p = procs.spawn(
        CLI, "start", "--detach", "--queue", "q2_one", "--id", tag, f"{APP}:guarded", tag,
        str(seconds),
    )  # fmt: skip
    assert p.wait(timeout=60) == 0, procs.output(p)
    return tag


def _ended(wid: str) -> bool:
    return wf.get_workflow(wid).status in wf.Status.ENDED


def _exit_within(p: subprocess.Popen[str], seconds: float, procs: Procs) -> float:
    """Wait for ``p`` to exit; returns how long that took."""
    t0 = time.monotonic()
    try:
        p.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"still running after {seconds}s\n{procs.logs()}") from None
    return time.monotonic() - t0


# -- 11.4: a clean stop never hands over a workflow whose step still runs ----------------


def test_sigterm_lets_the_running_step_finish_before_anyone_adopts(
    procs: Procs, markers: Path
) -> None:
    """SIGTERM a worker 1 s into a 4 s step of a concurrency-1 queue while a
    peer polls for dead executors every 0.5 s. The stopping worker finishes
    the step (recording it), stops at the next call and only then gives the
    workflow away: the peer runs only what follows, and never at the same
    time. Today the row is deleted first and the peer starts the step again
    while it still runs."""
    fast = {"WF_RECOVERY_INTERVAL": "0.5"}
    a = _worker(procs, "stopping-a", **fast)
    wid = _enqueue(procs, "t1", 4)
    wait_for(lambda: _pids(markers, "work", "t1"), timeout=60, what="the step to start")
    b = _worker(procs, "peer-b", **fast)
    a.send_signal(signal.SIGTERM)
    wait_for(lambda: _ended(wid), timeout=60, what="the workflow to end")
    _exit_within(a, 30, procs)
    log = procs.logs()
    assert a.returncode == 0, log
    info = wf.get_workflow(wid)
    assert info.status == wf.Status.SUCCESS, (info, log)
    # the step ran once, to its end, in the stopping worker; the rest in the peer
    assert _pids(markers, "work", "t1") == [a.pid], (marker_lines(markers), log)
    assert [p for p, _ in _runs(markers, "work", "t1", "end")] == [a.pid], log
    assert info.output == {"work": a.pid, "after": b.pid}, (info, log)
    ended_at = _runs(markers, "work", "t1", "end")[0][1]
    assert _runs(markers, "after", "t1")[0][1] >= ended_at


def test_sigterm_past_the_grace_keeps_the_work_until_the_process_is_gone(
    procs: Procs, markers: Path
) -> None:
    """A step longer than the grace period (1 s here): the stopping worker
    exits after the grace without deleting its row, and the peer adopts the
    workflow only once that process is gone (its pid), never while the step
    can still run there."""
    fast = {"WF_RECOVERY_INTERVAL": "0.5", "WF_STALE_AFTER": "120"}
    a = _worker(procs, "stopping-a", WF_SHUTDOWN_GRACE="1", **fast)
    wid = _enqueue(procs, "t2", 8)
    wait_for(lambda: _pids(markers, "work", "t2"), timeout=60, what="the step to start")
    b = _worker(procs, "peer-b", **fast)
    a.send_signal(signal.SIGTERM)
    signalled = time.monotonic()
    a_alive_when_b_started: list[bool] = []

    def peer_started() -> bool:
        alive = a.poll() is None
        if b.pid in _pids(markers, "work", "t2"):
            a_alive_when_b_started.append(alive)
            return True
        return False

    wait_for(peer_started, timeout=60, what="the peer to run the step")
    assert a_alive_when_b_started == [False], "the peer ran the step while it ran in the stopper"
    assert a.poll() is not None and time.monotonic() - signalled < 30
    wait_for(lambda: _ended(wid), timeout=60, what="the workflow to end")
    info = wf.get_workflow(wid)
    assert info.status == wf.Status.SUCCESS, (info, procs.logs())
    assert _pids(markers, "work", "t2") == [a.pid, b.pid]


def test_a_second_signal_stops_waiting_for_the_grace(procs: Procs, markers: Path) -> None:
    """With a 60 s grace and a 30 s step, a second SIGTERM ends the worker at
    once (exit 130); its row stays, so its work goes to a peer when it is gone."""
    a = _worker(procs, "stopping-a", WF_SHUTDOWN_GRACE="60")
    _enqueue(procs, "t3", 30)
    wait_for(lambda: _pids(markers, "work", "t3"), timeout=60, what="the step to start")
    a.send_signal(signal.SIGTERM)
    wait_for(lambda: "stopping" in procs.output(a), timeout=30, what="the first signal")
    time.sleep(1.0)
    assert a.poll() is None, "the worker did not wait for its running step"
    a.send_signal(signal.SIGTERM)
    assert _exit_within(a, 15, procs) < 15
    assert a.returncode == 130, procs.output(a)
    assert "Traceback" not in procs.output(a)


# -- 11.5: a restart under a fixed executor ID is not robbed ---------------------------------


def test_restart_with_a_fixed_executor_id_is_not_judged_dead(
    procs: Procs, markers: Path, tmp_path: Path
) -> None:
    """A process with WF_EXECUTOR_ID=fixed is SIGKILLed; a new one with the same
    ID starts three workflows that sit inside a step. A peer polling every
    0.5 s must leave them: the executor row now names the live process, not
    the dead one's pid."""
    fast = {"WF_RECOVERY_INTERVAL": "0.5", "WF_STALE_AFTER": "120", "WF_HEARTBEAT_INTERVAL": "0.5"}
    first = _worker(procs, "fixed", **fast)
    first.kill()
    first.wait(timeout=30)
    _worker(procs, "peer", **fast)
    again = procs.spawn(APP, "held", "fx-", "3", env={"WF_EXECUTOR_ID": "fixed", **fast})
    ids = [f"fx-{i}" for i in range(3)]

    def inside() -> bool:
        if again.poll() is not None:
            raise AssertionError(procs.output(again))
        return all(_pids(markers, "hold", w) for w in ids)

    wait_for(inside, timeout=60, what="the restarted process's steps")
    time.sleep(3.0)  # six recovery passes of the peer
    for w in ids:
        assert wf.get_workflow(w).executor_id == "fixed", (w, procs.logs())
    (tmp_path / "release").touch()
    wait_for(lambda: all(_ended(w) for w in ids), timeout=60, what="the workflows")
    for w in ids:
        info = wf.get_workflow(w)
        assert info.status == wf.Status.SUCCESS, info
        assert info.output == {"hold": again.pid, "after": again.pid}, (info, procs.logs())
        assert _pids(markers, "hold", w) == [again.pid], marker_lines(markers)
        assert _pids(markers, "after", w) == [again.pid], marker_lines(markers)


# -- 11.7: waiting never starves what it waits on ---------------------------------------


def test_300_parents_waiting_on_background_children_all_finish(procs: Procs) -> None:
    """300 background parents each start a background child and wait for its
    result: more than the 256 pool slots. A waiting parent gives its slot back,
    so the children run (today: deadlock, nothing finishes)."""
    p = procs.spawn(APP, "fanout", "300", env={"WF_TEST_WAIT": "90"})
    try:
        p.wait(timeout=150)
    except subprocess.TimeoutExpired:
        raise AssertionError("the fan-out never finished\n" + procs.logs()) from None
    res = AppResult(p.returncode, procs.output(p), "")
    assert outcome(res) == {
        "statuses": {"SUCCESS": 300},
        "total": sum(2 * i + 1 for i in range(300)),
    }, procs.logs()
    children = wf.list_workflows(name=f"{APP}:child", limit=1000)
    assert len(children) == 300 and {c.status for c in children} == {wf.Status.SUCCESS}


# -- 11.8: an exhausted connection pool is waited for ------------------------------------


def test_pool_exhaustion_is_waited_for_not_the_workflows_error(
    pg_database: str, tmp_path: Path
) -> None:
    """160 concurrent 4.5 s transactions through the pool's 20 connections:
    the last ones wait longer than SQLAlchemy's 30 s pool timeout, and still
    every workflow ends SUCCESS (today 20 end ERROR with "QueuePool limit of
    size 10 overflow 10 reached"). Postgres only: on SQLite, transactions
    queue for the write lock inside the driver, whose busy timeouts hand the
    connections round, so the pool wait never grows that long."""
    wf.configure(database_url=pg_database)
    procs = Procs(pg_database, tmp_path, {})
    try:
        p = procs.spawn(APP, "txs", "160", "4.5")
        try:
            p.wait(timeout=240)
        except subprocess.TimeoutExpired:
            raise AssertionError("the transactions never finished\n" + procs.logs()) from None
        res = AppResult(p.returncode, procs.output(p), "")
        errors = wf.list_workflows(status="ERROR", limit=3)
        assert outcome(res) == {"statuses": {"SUCCESS": 160}}, [e.error for e in errors]
    finally:
        procs.close()


# -- 11.11: a worker waits for the database; one-shot commands do not -----------------------


@pytest.fixture
def down_db(backend: str, db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """(URL, bring_up): a database that is down now and comes up on demand.
    Postgres: a private cluster, stopped. SQLite: a file whose directory does
    not exist yet (the driver cannot open it)."""
    if backend == "postgres":
        cluster: PgCluster = request.getfixturevalue("private_pg")
        if not cluster.is_running():
            cluster.start()
        url = cluster.create_database(f"wf_r_{os.getpid()}_{time.monotonic_ns()}")
        cluster.stop()
        yield url, cluster.start
        if not cluster.is_running():
            cluster.start()
        return
    missing = tmp_path / "not-yet"
    yield f"sqlite:///{missing}/wf.sqlite", lambda: missing.mkdir()


def test_worker_started_while_the_database_is_down_waits_for_it(
    procs: Procs, markers: Path, down_db: Any
) -> None:
    url, bring_up = down_db
    procs.db_url = url
    w = procs.spawn(CLI, "worker", APP, env={"WF_EXECUTOR_ID": "patient"})
    wait_for(
        lambda: "unreachable" in procs.output(w) or w.poll() is not None,
        timeout=60,
        what="the worker's warning",
    )
    time.sleep(3.0)  # a few retries, and still waiting
    assert w.poll() is None, procs.output(w)
    out = procs.output(w)
    assert out.count("unreachable") == 1, out
    assert "Traceback" not in out and "serving" not in out, out
    # a one-shot command fails fast meanwhile
    t0 = time.monotonic()
    st = procs.spawn(CLI, "status", "nothing")
    assert st.wait(timeout=60) == 5, procs.output(st)
    assert time.monotonic() - t0 < 30

    bring_up()
    wait_for(lambda: "serving" in procs.output(w), timeout=60, what="the worker to connect")
    wf.configure(database_url=url)
    wid = _enqueue(procs, "t4", 0)
    wait_for(lambda: _ended(wid), timeout=60, what="the worker to run a workflow")
    assert wf.get_workflow(wid).status == wf.Status.SUCCESS
    w.send_signal(signal.SIGTERM)
    _exit_within(w, 30, procs)
    assert w.returncode == 0, procs.output(w)


# -- 11.12: a shared hostname is not a shared machine ---------------------------------------


def _pid_namespaces_work() -> bool:
    try:
        r = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0


def test_same_hostname_in_another_pid_namespace_is_judged_by_heartbeat(
    procs: Procs, markers: Path, tmp_path: Path
) -> None:
    """A container sharing this hostname (here: a process in its own pid
    namespace, same UTS name, as with host networking) owns two workflows
    inside a step. Its pid means nothing here (it is chosen to be free here):
    a peer polling every 0.5 s must judge it by its fresh heartbeat and leave
    its work alone (today it looks up that pid here, finds nothing and adopts)."""
    if os.geteuid() != 0 or not _pid_namespaces_work():
        pytest.skip("needs unshare --pid (root) to make a second pid namespace")
    target = next(p for p in range(40, 5000) if not Path(f"/proc/{p}").exists())
    fast = {"WF_RECOVERY_INTERVAL": "0.5", "WF_STALE_AFTER": "120", "WF_HEARTBEAT_INTERVAL": "0.5"}
    _worker(procs, "peer", **fast)
    # in the new namespace sh is pid 1; burning pids makes the app's pid `target`
    script = (
        f"i=0; while [ $i -lt {target - 2} ]; do /bin/true; i=$((i+1)); done; "
        '"$0" -m tests.apps.q2_faults held ns- 2; exit $?'
    )
    from tests.helpers import REPO, child_env

    log = tmp_path / "proc-nested.log"
    with open(log, "w") as out:
        nested = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "sh", "-c", script,
             sys.executable],
            env=child_env(procs.db_url, {**procs.env, **fast, "WF_EXECUTOR_ID": "nested"}),
            cwd=str(REPO), stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    procs.procs.append(nested)
    ids = [f"ns-{i}" for i in range(2)]

    def inside() -> bool:
        if nested.poll() is not None:
            raise AssertionError(log.read_text())
        return all(_pids(markers, "hold", w) for w in ids)

    wait_for(inside, timeout=60, what="the nested process's steps")
    assert {p for w in ids for p in _pids(markers, "hold", w)} == {target}, log.read_text()
    assert not Path(f"/proc/{target}").exists()
    time.sleep(3.0)  # six recovery passes of the peer
    for w in ids:
        assert wf.get_workflow(w).executor_id == "nested", (w, procs.logs())
    (tmp_path / "release").touch()
    wait_for(lambda: all(_ended(w) for w in ids), timeout=60, what="the workflows")
    for w in ids:
        info = wf.get_workflow(w)
        assert info.status == wf.Status.SUCCESS, info
        assert info.output == {"hold": target, "after": target}, (info, procs.logs())
        assert _pids(markers, "hold", w) == [target], marker_lines(markers)
