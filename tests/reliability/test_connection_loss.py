"""Connection loss: workflows keep their guarantees when the database goes
away under them, on a private Postgres cluster the tests stop
(``pg_ctl -m immediate``, a crash) and start again, or behind a TCP proxy that
cuts connections (a network partition) or loses the answer to a statement
that did run.

The workload (tests/apps/chaos_outage.py) makes every kind of recorded call
in a loop — step, transaction, send, recv, set_event — so an outage lands on
each kind. What must hold: the executor waits and continues (no crash, no
workflow marked failed), every workflow ends SUCCESS, each transaction
committed once (a UNIQUE-keyed ledger), no step re-ran (an outage alone
takes no workflow from its executor), nothing is stranded PENDING."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import wf

from tests.helpers import finish, marker_lines, outcome, spawn_app, wait_for
from tests.reliability.netproxy import NetProxy
from tests.reliability.pgcluster import PgCluster
from tests.reliability.procs import Procs

pytestmark = pytest.mark.timeout(300)

APP = "tests.apps.chaos_outage"


def _prepare(url: str) -> None:
    from tests.apps.chaos_outage import LEDGER_DDL

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(LEDGER_DDL)
    wf.configure(database_url=url)


def _ticks(markers: Path) -> Counter[tuple[str, int]]:
    """How many times each (workflow, k) step body started."""
    c: Counter[tuple[str, int]] = Counter()
    for line in marker_lines(markers):
        _, wid, k, _, _ = line.split()
        c[(wid, int(k))] += 1
    return c


def _states(url: str, ids: list[str]) -> dict[str, tuple[Any, ...]]:
    """(status, output, error, executor_id, recovery_attempts) of each workflow,
    read over a new connection (the test's own pooled client is not what is
    under test here)."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT workflow_id, status, output, error, executor_id, recovery_attempts "
            "FROM wf.workflows WHERE workflow_id = ANY(%s)",
            (ids,),
        ).fetchall()
    return {r[0]: tuple(r[1:]) for r in rows}


def _check(url: str, markers: Path, ids: list[str], n: int, *, reruns_allowed: bool) -> None:
    problems = []
    with psycopg.connect(url) as conn:
        ledger = Counter(r[0] for r in conn.execute("SELECT workflow_id FROM outage_ledger"))
        left = conn.execute("SELECT count(*) FROM wf.messages").fetchone()
    ticks = _ticks(markers)
    states = _states(url, ids)
    for wid in ids:
        status, output, error, executor, attempts = states[wid]
        if status != "SUCCESS" or output != str(sum(range(n))):
            problems.append(f"{wid}: {status} {output!r} {error}")
        if ledger[wid] != n:
            problems.append(f"{wid}: {ledger[wid]} ledger rows, want {n}")
        never = [k for k in range(n) if ticks[(wid, k)] < 1]
        twice = [k for k in range(n) if ticks[(wid, k)] > 1]
        if never:
            problems.append(f"{wid}: steps {never} never ran")
        if twice and not reruns_allowed:
            problems.append(f"{wid}: steps {twice} ran more than once")
        if not reruns_allowed and attempts:
            problems.append(f"{wid} was taken from its executor {executor} ({attempts})")
    if left and left[0]:
        problems.append(f"{left[0]} message(s) never received")
    assert not problems, "\n".join(problems)


@pytest.fixture
def procs(private_db: str, tmp_path: Path) -> Iterator[Procs]:
    p = Procs(private_db, tmp_path, {"WF_TEST_MARKERS": str(tmp_path / "markers.txt")})
    yield p
    p.close()


def _enqueue(ids: list[str], n: int) -> None:
    from tests.apps import chaos_outage

    for wid in ids:
        chaos_outage.QUEUE.enqueue(chaos_outage.mixed, n, workflow_id=wid)


def _wait_running(markers: Path, ids: list[str], at_least: int = 2) -> None:
    def running() -> bool:
        ticks = _ticks(markers)
        return all(sum(1 for (w, _k) in ticks if w == wid) >= at_least for wid in ids)

    wait_for(running, timeout=60, what=f"{ids} to be running")


def _wait_ended(url: str, ids: list[str], timeout: float, procs: Procs) -> None:
    def ended() -> bool:
        states = _states(url, ids)
        return len(states) == len(ids) and all(s[0] in wf.Status.ENDED for s in states.values())

    try:
        wait_for(ended, timeout=timeout, interval=0.2, what="the workflows to end")
    except AssertionError:
        states = {w: (s[0], s[3]) for w, s in _states(url, ids).items()}
        raise AssertionError(f"not ended: {states}\n{procs.logs()}") from None


def test_running_workflow_waits_through_a_postgres_crash_and_continues(
    private_pg: PgCluster, private_db: str, tmp_path: Path
) -> None:
    """The database dies (-m immediate) under a running workflow and comes
    back 3 s later: the workflow waits, continues and ends SUCCESS in the same
    process, with nothing run twice."""
    _prepare(private_db)
    markers = tmp_path / "markers.txt"
    n = 40
    proc = spawn_app(
        APP,
        "start",
        "restart-1",
        "mixed",
        f"[{n}]",
        db_url=private_db,
        env={"WF_TEST_MARKERS": str(markers)},
    )

    def at_step_5() -> bool:
        if proc.poll() is not None:
            raise AssertionError(finish(proc).describe())
        return _ticks(markers)[("restart-1", 5)] >= 1

    wait_for(at_step_5, timeout=60, what="step 5")
    private_pg.stop("immediate")
    time.sleep(3)
    assert proc.poll() is None, "the process died with the database"
    private_pg.start()
    res = finish(proc, timeout=120)
    assert outcome(res) == sum(range(n)), res.describe()
    assert "unreachable" in res.stderr, res.describe()  # it said it was waiting
    _check(private_db, markers, ["restart-1"], n, reruns_allowed=False)


def test_long_outage_executors_wait_without_failing_anything(
    private_pg: PgCluster, private_db: str, procs: Procs
) -> None:
    """A 20 s outage with workflows running on two workers and more queued:
    the workers stay up, wait, and finish everything once it is back; no
    workflow is marked failed, none changes hands, no step runs twice."""
    _prepare(private_db)
    markers = procs.tmp / "markers.txt"
    workers = [procs.worker(APP, f"outage-w{i}", {"WF_TEST_TICK": "0.1"}) for i in range(2)]
    n = 40
    ids = [f"long-{i}" for i in range(10)]
    _enqueue(ids, n)
    _wait_running(markers, ids[:6])
    private_pg.stop("immediate")
    down_until = time.monotonic() + 20
    while time.monotonic() < down_until:
        for w in workers:
            assert w.poll() is None, "a worker died in the outage\n" + procs.logs()
        time.sleep(0.5)
    private_pg.start()
    _wait_ended(private_db, ids, 180, procs)
    _check(private_db, markers, ids, n, reruns_allowed=False)
    for w in workers:
        assert w.poll() is None
        log = procs.output(w)
        assert "Traceback" not in log, log[-3000:]


def test_outage_longer_than_the_stale_limit_robs_no_live_executor(
    private_pg: PgCluster, private_db: str, procs: Procs
) -> None:
    """The database is away for longer than the stale-heartbeat limit (5 s
    here): when it returns every heartbeat looks stale, yet both executors are
    alive and must not adopt each other's running workflows."""
    _prepare(private_db)
    markers = procs.tmp / "markers.txt"
    env = {
        "WF_TEST_TICK": "0.1",
        "WF_STALE_AFTER": "5",
        "WF_HEARTBEAT_INTERVAL": "1",
        "WF_RECOVERY_INTERVAL": "0.5",
    }
    for i in range(2):
        procs.worker(APP, f"stale-w{i}", env)
    n = 40
    ids = [f"stale-{i}" for i in range(6)]
    _enqueue(ids, n)
    _wait_running(markers, ids)
    private_pg.stop("immediate")
    time.sleep(12)
    private_pg.start()
    _wait_ended(private_db, ids, 180, procs)
    _check(private_db, markers, ids, n, reruns_allowed=False)


def test_client_calls_work_as_soon_as_the_database_is_back(
    private_pg: PgCluster, private_db: str
) -> None:
    """A process that only manages workflows (wf.configure, no executor: a web
    app, a script) keeps pooled connections; after a database restart its next
    call must succeed, not report the database unreachable."""
    _prepare(private_db)
    for _ in range(3):  # several pooled connections
        assert wf.list_workflows() == []
    private_pg.stop("immediate")
    private_pg.start()
    assert wf.list_workflows() == []
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow("nope")


@pytest.fixture
def proxy(private_pg: PgCluster) -> Iterator[NetProxy]:
    p = NetProxy("127.0.0.1", private_pg.port)
    yield p
    p.close()


def test_network_partition_cuts_every_connection(
    private_db: str, procs: Procs, proxy: NetProxy
) -> None:
    """Every connection of a worker is cut three times (and new ones refused
    for 2 s) while its workflows run: it reconnects and finishes them all."""
    _prepare(private_db)
    markers = procs.tmp / "markers.txt"
    dbname = private_db.rsplit("/", 1)[1]
    procs.db_url = proxy.url(dbname)
    procs.worker(APP, "partitioned", {"WF_TEST_TICK": "0.1"})
    n = 40
    ids = [f"cut-{i}" for i in range(4)]
    _enqueue(ids, n)
    _wait_running(markers, ids)
    cuts = 0
    for _ in range(3):
        proxy.refusing.set()
        cuts += proxy.cut_all()
        time.sleep(2)
        proxy.refusing.clear()
        time.sleep(1.5)
    assert cuts >= 3
    _wait_ended(private_db, ids, 180, procs)
    _check(private_db, markers, ids, n, reruns_allowed=False)


# the statements whose answer is lost: the COMMIT after a queue take, and a
# recovery claim (an autocommitted UPDATE ... RETURNING, a prepared statement:
# its text goes in the Parse message, and it runs on the message after)
LOST = {
    "dequeue commit": b"SET status = 'PENDING', executor_id",
    "recovery claim": b"AND (queue IS NULL OR",
}


@pytest.mark.parametrize("what", list(LOST))
def test_lost_answer_to_a_claim_does_not_strand_the_workflow(
    private_db: str, procs: Procs, proxy: NetProxy, what: str
) -> None:
    """A worker's claim of a workflow commits, but the answer is lost with
    its connection (a crash or partition at that instant): the workflow is now
    PENDING under the worker's own, live executor ID, and only that worker
    can run it. It must, not leave it stranded."""
    from tests.apps import chaos_outage

    _prepare(private_db)
    markers = procs.tmp / "markers.txt"
    dbname = private_db.rsplit("/", 1)[1]
    marker = LOST[what]
    trap = proxy.drop_answer_after
    wid = f"lost-{what.replace(' ', '-')}"
    if what == "dequeue commit":
        procs.db_url = proxy.url(dbname)
        procs.worker(APP, "claimer", {"WF_RECOVERY_INTERVAL": "0.5"})
        trap(marker)
        chaos_outage.QUEUE.enqueue(chaos_outage.mixed, 3, workflow_id=wid)
    else:
        # a workflow left by an executor that died on this host (its pid is gone)
        gone = subprocess.Popen(["true"])
        gone.wait()
        from wf import _root as _executor
        from wf._core import encode_inputs
        from wf._liveness import HOST

        db = _executor.client()
        db.heartbeat("dead-one", HOST, gone.pid)
        assert db.insert_workflow(
            workflow_id=wid,
            status="PENDING",
            name=f"{APP}:mixed",
            inputs=encode_inputs([3], {}),
            executor_id="dead-one",
        )
        trap(marker)
        procs.db_url = proxy.url(dbname)
        procs.worker(APP, "claimer", {"WF_RECOVERY_INTERVAL": "0.5"})
    wait_for(proxy.trap_sprung.is_set, timeout=60, what=f"the {what}")
    _wait_ended(private_db, [wid], 60, procs)
    _check(private_db, markers, [wid], 3, reruns_allowed=True)
