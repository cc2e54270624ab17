"""A primary failover (issue 18): a primary and a synchronous streaming
standby (tests/reliability/pgpair.py), wf on the multi-host URL
``postgresql://postgres@127.0.0.1:Pa,127.0.0.1:Pb/db?target_session_attrs=read-write``.

Under a queued workload on two ``wf worker`` processes plus inline workflows
in a third process (tests/apps/failover_workload.py), the primary's
postmaster is SIGKILLed and the standby promoted; the old primary comes back
as the new one's standby (a fresh base backup) and it all happens again the
other way. What must hold: every workflow ends SUCCESS, no transaction
committed twice (a ledger without a unique key), no completed step ran
again (marker lines), no message lost or doubled (a workflow receiving its
own, and sinks receiving from sources), no workflow changed hands, no
process crashed.

And a node that answers read-only is an outage, not an error: the primary
turned read-only under running workflows (as a demoted node answers, SQLSTATE
25006) makes wf wait until it is writable again; a URL whose first host is a
standby goes to the writable one; a URL naming only a standby waits until it
is promoted."""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import wf

from tests.helpers import (
    finish,
    marker_lines,
    outcome,
    run_app,
    skip_unless_ci,
    spawn_app,
    wait_for,
)
from tests.reliability.netproxy import NetProxy
from tests.reliability.pgcluster import PgCluster
from tests.reliability.pgpair import PgPair, available
from tests.reliability.procs import Procs

pytestmark = pytest.mark.timeout(240)

APP = "tests.apps.failover_workload"


@pytest.fixture(scope="module")
def pair() -> Iterator[PgPair]:
    why = available()
    if why is not None:
        skip_unless_ci(f"cannot build a primary + standby pair: {why}")
    p = PgPair()
    try:
        yield p
    finally:
        p.destroy()


@pytest.fixture
def database(pair: PgPair) -> str:
    """A fresh database (and the ledger table) on the pair; its multi-host URL.
    The pair is whole first (a failed test may have left it without a standby)."""
    if pair.standby is None:
        pair.rejoin(pair.b if pair.primary is pair.a else pair.a)
    name = f"wf_fo_{uuid.uuid4().hex[:10]}"
    pair.create_database(name)
    url = pair.url(name)
    from tests.apps.failover_workload import LEDGER_DDL

    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(LEDGER_DDL)
    return url


@pytest.fixture
def procs(database: str, tmp_path: Path) -> Iterator[Procs]:
    p = Procs(database, tmp_path, {"WF_TEST_MARKERS": str(tmp_path / "markers.txt")})
    yield p
    p.close()


# -- reading the outcome --------------------------------------------------------------------


def _steps(markers: Path) -> Counter[tuple[str, str, int]]:
    """(phase, workflow, k) -> how many times a step body wrote that marker."""
    c: Counter[tuple[str, str, int]] = Counter()
    for line in marker_lines(markers):
        kind, wid, k, phase, _pid, _at = line.split()
        if kind == "step":
            c[(phase, wid, int(k))] += 1
    return c


def _rows(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    # a connection of its own each time: the test's reads cross failovers too
    deadline = time.monotonic() + 60
    while True:
        try:
            with psycopg.connect(url, connect_timeout=5) as conn:
                return list(conn.execute(sql, args).fetchall())
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _states(url: str) -> dict[str, tuple[Any, ...]]:
    rows = _rows(
        url, "SELECT workflow_id, status, output, error, recovery_attempts FROM wf.workflows"
    )
    return {r[0]: tuple(r[1:]) for r in rows}


def _progress(markers: Path, ids: list[str]) -> int:
    """The fewest steps any of ``ids`` has finished."""
    done = Counter(wid for (phase, wid, _k) in _steps(markers) if phase == "end")
    return min(done[w] for w in ids)


def _wait_progress(markers: Path, ids: list[str], at_least: int, procs: Procs) -> None:
    try:
        wait_for(
            lambda: _progress(markers, ids) >= at_least,
            # a normal run gets there in seconds; a minute is a stall (the
            # waits in the workload time out after 120 s, longer than this)
            timeout=60,
            interval=0.1,
            what=f"{at_least} steps of every workflow",
        )
    except AssertionError:
        done = Counter(wid for (phase, wid, _k) in _steps(markers) if phase == "end")
        behind = {w: done[w] for w in ids if done[w] < at_least}
        raise AssertionError(f"no progress: {behind}\n{_diagnose(procs, list(behind))}") from None


def _diagnose(procs: Procs, stuck: list[str]) -> str:
    """Why something stalled: the stuck workflows' records, what every
    database session is doing (a lock or a replication wait?), and every
    thread's stack of each process (SIGABRT: faulthandler prints them into
    its log)."""
    states = _states(procs.db_url)
    activity = _rows(
        procs.db_url,
        "SELECT pid, application_name, state, wait_event_type, wait_event, "
        "now() - xact_start, left(query, 120) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    sessions = "\n".join(map(str, activity))
    for p in procs.procs:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGABRT)
            p.wait(30)
    return (
        f"{ {w: states.get(w) for w in stuck} }\n--- sessions\n{sessions}\n"
        f"(full logs, with the stacks: {procs.tmp})\n{procs.logs()}"
    )


def _wait_ended(url: str, ids: list[str], procs: Procs, timeout: float = 90) -> None:
    def ended() -> bool:
        states = _states(url)
        return all(w in states and states[w][0] in wf.Status.ENDED for w in ids)

    try:
        wait_for(ended, timeout=timeout, interval=0.3, what="every workflow to end")
    except AssertionError:
        states = _states(url)
        left = [w for w in ids if states.get(w, ("absent",))[0] not in wf.Status.ENDED]
        raise AssertionError(f"not ended: {left}\n{_diagnose(procs, left)}") from None


def _check(
    url: str, markers: Path, mixed: dict[str, int], sinks: dict[str, int], procs: Procs
) -> None:
    """Every invariant, every problem listed at once."""
    from wf._serialization import loads

    problems = []
    states = _states(url)
    ledger = Counter((r[0], r[1]) for r in _rows(url, "SELECT workflow_id, k FROM failover_ledger"))
    steps = _steps(markers)
    for wid, n in mixed.items():
        status, output, error, attempts = states[wid]
        if status != "SUCCESS" or output != str(sum(range(n))):
            problems.append(f"{wid}: {status} {output!r} {error}")
        twice = [k for k in range(n) if ledger[(wid, k)] != 1]
        if twice:
            problems.append(f"{wid}: ledger rows of k={twice}: {[ledger[(wid, k)] for k in twice]}")
        # a dequeue whose COMMIT landed but whose answer the crash lost is
        # re-claimed by its executor's orphan sweep: one attempt (README,
        # guarantee 7), its steps still started once (below); never more
        if attempts > 1:
            problems.append(f"{wid} changed hands ({attempts} recovery attempts)")
    for wid, n in {**mixed, **{f"src-{s}": n for s, n in sinks.items()}}.items():
        reran = [k for k in range(n) if steps[("start", wid, k)] != 1]
        if reran:
            problems.append(
                f"{wid}: steps {reran} started {[steps[('start', wid, k)] for k in reran]}x"
            )
    for sid, n in sinks.items():
        status, output, error, _ = states[sid]
        got = loads(output) if output else None
        if status != "SUCCESS" or got != list(range(n)):
            problems.append(f"{sid}: {status} received {got!r} {error}")
    left = _rows(url, "SELECT count(*) FROM wf.messages")[0][0]
    if left:
        problems.append(f"{left} message(s) never received")
    assert not problems, "\n".join(problems) + "\n" + procs.logs()


# -- the failover ---------------------------------------------------------------------------


# a stalled test SIGABRTs its processes: faulthandler prints every thread's stack
DUMPS = {"PYTHONFAULTHANDLER": "1"}


def _wf_worker(procs: Procs, name: str) -> subprocess.Popen[str]:
    return procs.spawn("wf.cli.main", "worker", APP, "--executor-id", name, env=DUMPS)


def _wait_workers(url: str, names: list[str], procs: Procs) -> None:
    def up() -> bool:
        try:
            rows = _rows(url, "SELECT executor_id FROM wf.executors")
        except psycopg.errors.UndefinedTable:
            return False
        return set(names) <= {r[0] for r in rows}

    try:
        wait_for(up, timeout=90, interval=0.2, what=f"workers {names}")
    except AssertionError:
        raise AssertionError(procs.logs()) from None


def test_two_failovers_under_a_queued_and_inline_workload(
    pair: PgPair, database: str, procs: Procs
) -> None:
    """SIGKILL the primary, promote the standby; the old primary rejoins as
    the standby; fail over again the other way. Nothing is lost, doubled or
    re-run."""
    from wf._serialization import loads

    url = database
    markers = procs.tmp / "markers.txt"
    names = ["fo-w0", "fo-w1"]
    workers = [_wf_worker(procs, n) for n in names]
    _wait_workers(url, names, procs)
    n = 40
    wf.configure(database_url=url)
    from tests.apps import failover_workload as app

    queued = {f"q-{i}": n for i in range(6)}
    for wid, k in queued.items():
        app.QUEUE.enqueue(app.mixed, k, workflow_id=wid)
    sinks = {f"sink-{i}": 20 for i in range(2)}
    for sid, k in sinks.items():
        app.QUEUE.enqueue(app.sink, k, workflow_id=sid)
        app.QUEUE.enqueue(app.source, sid, k, workflow_id=f"src-{sid}")
    inline = procs.spawn(APP, "inline", "in", "4", str(n), env=DUMPS)
    inline_ids = [f"in-{i}" for i in range(4)]
    everyone = [*queued, *inline_ids]
    wf.shutdown()  # the test's own client must not be what crosses the failover

    assert pair.standby is pair.b
    _wait_progress(markers, everyone, 3, procs)
    first = pair.primary
    pair.crash(first)
    time.sleep(1.0)  # an outage, as an orchestrator takes to notice
    pair.promote(pair.b)
    _wait_progress(markers, everyone, 12, procs)
    pair.rejoin(first)  # the old primary, as the new one's standby
    _wait_progress(markers, everyone, 18, procs)
    pair.crash(pair.b)
    time.sleep(1.0)
    pair.promote(first)
    _wait_ended(url, [*everyone, *sinks, *(f"src-{s}" for s in sinks)], procs)

    inline.wait(timeout=60)
    printed = procs.output(inline)
    oks = {}
    for line in printed.splitlines():
        if line.startswith(("OK ", "FAIL ")):
            kind, wid, detail = line.split(" ", 2)
            oks[wid] = (kind, detail)
    assert all(oks.get(w, ("missing",))[0] == "OK" for w in inline_ids), printed
    assert all(loads(oks[w][1]) == sum(range(n)) for w in inline_ids)
    _check(url, markers, {**queued, **dict.fromkeys(inline_ids, n)}, sinks, procs)
    for w in workers:
        assert w.poll() is None, "a worker died\n" + procs.logs()
        log = procs.output(w)
        assert "Traceback" not in log, log[-3000:]
        assert "unreachable" in log, log[-3000:]  # the failovers landed mid-workload
    # every worker's LISTEN session followed the primary (its reconnect
    # backoff is at most 5 s)
    wait_for(
        lambda: (
            pair.primary.sql(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'wf listener'"
            )[0][0]
            >= 2
        ),
        timeout=30,
        interval=0.2,
        what="both workers' LISTEN sessions on the new primary",
    )
    # the second failover is over: the pair is whole again for the next test
    pair.rejoin(pair.b)


# -- read-only nodes ----------------------------------------------------------------------------


def _set_read_only(node: Any, on: bool) -> None:
    node.sql(f"ALTER SYSTEM SET default_transaction_read_only = {'on' if on else 'off'}")
    node.sql("SELECT pg_reload_conf()")


def test_a_primary_that_turns_read_only_is_waited_out(
    pair: PgPair, database: str, procs: Procs
) -> None:
    """The primary answers read-only (SQLSTATE 25006, as a demoted node
    does) for 4 s under running workflows: wf waits, then finishes them all,
    none failed, nothing twice."""
    url = database
    markers = procs.tmp / "markers.txt"
    worker = _wf_worker(procs, "ro-w0")
    _wait_workers(url, ["ro-w0"], procs)
    n = 20
    wf.configure(database_url=url)
    from tests.apps import failover_workload as app

    queued = {f"ro-{i}": n for i in range(4)}
    for wid, k in queued.items():
        app.QUEUE.enqueue(app.mixed, k, workflow_id=wid)
    wf.shutdown()
    _wait_progress(markers, list(queued), 3, procs)
    primary = pair.primary
    _set_read_only(primary, True)
    try:
        time.sleep(4)
        assert worker.poll() is None, procs.logs()
        # libpq refuses a read-only node for a read-write URL; read it directly
        dbname = url.rsplit("/", 1)[1].split("?")[0]
        states = _states(pair.node_url(primary, dbname))
        assert all(states[w][0] != "ERROR" for w in queued), states
    finally:
        _set_read_only(primary, False)
    _wait_ended(url, list(queued), procs)
    _check(url, markers, queued, {}, procs)
    assert "unreachable" in procs.output(worker)  # it said it was waiting


def test_a_standby_first_in_the_url_and_a_url_naming_only_a_standby(
    pair: PgPair, database: str, tmp_path: Path
) -> None:
    """The URL's first host is the standby: wf runs on the writable node,
    never on the standby. A URL that names only the standby: a workflow
    waits (read-only answers are an outage) until that node is promoted,
    then ends SUCCESS."""
    dbname = database.rsplit("/", 1)[1].split("?")[0]
    standby = pair.standby
    assert standby is not None
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    first_standby = pair.url(dbname, first=standby)
    res = run_app(APP, "start", "sb-1", "mixed", "[5]", db_url=first_standby, env=env, timeout=120)
    assert outcome(res) == sum(range(5))
    on_standby = standby.sql(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'wf%%'"
    )[0][0]
    assert on_standby == 0

    only_standby = pair.node_url(standby, dbname)
    waiting = spawn_app(APP, "start", "sb-2", "mixed", "[5]", db_url=only_standby, env=env)
    time.sleep(4)
    assert waiting.poll() is None, finish(waiting).describe()
    assert _states(pair.url(dbname)).get("sb-2") is None  # nothing could be written
    old = pair.primary
    pair.crash(old)
    pair.promote(standby)
    res2 = finish(waiting, timeout=120)
    assert outcome(res2) == sum(range(5)), res2.describe()
    assert "unreachable" in res2.stderr, res2.describe()
    pair.rejoin(old)


def test_a_write_in_a_read_only_transaction_is_an_error_not_an_outage(pg_database: str) -> None:
    """The same SQLSTATE 25006 from a @wf.transaction(read_only=True) body
    that writes is the body's fault: the call fails at once (on the shared
    test server, no pair needed)."""
    from tests.apps import failover_workload as app

    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute(app.LEDGER_DDL)
    wf.launch(database_url=pg_database)
    try:
        out = wf.start(app.writes_in_read_only, workflow_id="ro-tx").result(timeout=60)
    finally:
        wf.shutdown()
    assert "read-only transaction" in out, out
    assert _rows(pg_database, "SELECT count(*) FROM failover_ledger")[0][0] == 0


def test_a_recv_whose_commit_landed_but_whose_answer_was_lost_goes_on(
    private_pg: PgCluster, private_db: str
) -> None:
    """What a failover (or a crash) does to a commit in flight: the recv's
    transaction (message taken, receipt recorded) commits, the answer is
    lost with the connection. The message is gone from the table, so the
    retry must find the receipt, not wait for the message until its timeout
    (an hour here: the test's 30 s are a hang)."""
    dbname = private_db.rsplit("/", 1)[1]
    proxy = NetProxy("127.0.0.1", private_pg.port)
    try:
        # the receipt's INSERT: its name and kind parameters, both "recv"
        proxy.drop_answer_after(b"\x00\x00\x00\x04recv\x00\x00\x00\x04recv")
        res = run_app(
            APP, "start", "echo-1", "echo", '["hi"]', db_url=proxy.url(dbname), timeout=30
        )
        assert proxy.trap_sprung.is_set(), res.describe()
        assert outcome(res) == "hi"
    finally:
        proxy.close()
