"""wf behind PgBouncer in transaction pooling (issue 14; issue 18's pooler
part), end to end: Debian's pgbouncer on a free port (tests/pgbouncer.py),
real wf processes going through it (``wf.launch(database_url=<pooler>)``,
``wf worker``, ``wf await``, ``wf send``) with WF_POOLER=transaction, and
the invariants checked on the database directly and on marker files
(tests/apps/pgbouncer_app.py):

- inline workflows from 16 threads over a 4-connection server pool: all
  SUCCESS, every step and transaction ran once; and without WF_POOLER the
  same run breaks on server-side prepared statements (what the mode prevents);
- a queue drained by two ``wf worker`` processes: every workflow SUCCESS once;
- ``wf await`` wakes with LISTEN on a direct URL (WF_LISTEN_URL) and by
  polling without it; messages across processes, FIFO, delivered once; the
  same settings from ``[tool.wf]``; an unknown WF_POOLER is a one-line error;
- a worker SIGKILLed mid-step: another recovers, completed steps never re-ran;
- RECONNECT, KILL/RESUME on the admin console and a pgbouncer restart during
  a queued workload: the same invariants.

Postgres only (PgBouncer speaks the Postgres protocol)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.helpers import REPO, counters, create_counter_table, wait_for
from tests.pgbouncer import Pooled, pooled_fixture, tcp_peers  # noqa: F401 - the fixture

APP = "tests.apps.pgbouncer_app"
TERMINAL = {wf.Status.SUCCESS, wf.Status.ERROR, wf.Status.CANCELLED, wf.Status.RETRIES_EXCEEDED}


def wf_exe() -> str:
    exe = Path(sys.executable).parent / "wf"
    if exe.exists():
        return str(exe)
    found = shutil.which("wf")
    if found is None:
        pytest.fail("the wf console script is not installed: pip install -e .")
    return found


class Procs:
    """The test's subprocesses, each logging to a file; all killed at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []
        self.logs: dict[int, Path] = {}

    def spawn(
        self, args: list[str], env: Mapping[str, str], cwd: Path = REPO
    ) -> subprocess.Popen[str]:
        log = self.tmp / f"proc-{len(self.procs)}.log"
        with open(log, "w") as out:
            p = subprocess.Popen(
                args,
                env=dict(env),
                cwd=str(cwd),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.procs.append(p)
        self.logs[p.pid] = log
        return p

    def wf(self, *args: str, env: Mapping[str, str], cwd: Path = REPO) -> subprocess.Popen[str]:
        return self.spawn([wf_exe(), *args], env, cwd)

    def app(self, *args: str, env: Mapping[str, str], cwd: Path = REPO) -> subprocess.Popen[str]:
        return self.spawn([sys.executable, "-m", APP, *args], env, cwd)

    def output(self, p: subprocess.Popen[str]) -> str:
        return self.logs[p.pid].read_text(errors="replace")

    def wait(self, p: subprocess.Popen[str], timeout: float = 120) -> str:
        """Wait for ``p`` to exit 0; its output."""
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
            raise AssertionError(f"{p.args} did not end in {timeout}s\n{self.output(p)}") from None
        assert p.returncode == 0, f"{p.args}: exit {p.returncode}\n{self.output(p)}"
        return self.output(p)

    def describe(self) -> str:
        return "\n".join(
            f"--- {self.logs[p.pid].name}: {' '.join(map(str, p.args))[-120:]}\n"
            + self.output(p)[-2500:]
            for p in self.procs
        )

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=30)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    ps = Procs(tmp_path)
    yield ps
    ps.close()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


def _ran(markers: Path) -> Counter[tuple[str, str, str]]:
    """(body, phase, tag) -> how many times that marker was written."""
    lines = markers.read_text().splitlines() if markers.exists() else []
    return Counter(tuple(line.split()[:3]) for line in lines)  # type: ignore[misc]


def _assert_each_ran_once(markers: Path, tags: list[str], bodies: tuple[str, ...]) -> None:
    ran = _ran(markers)
    for tag in tags:
        for body in bodies:
            assert ran[(body, "end", tag)] == 1, (body, tag, sorted(ran.items())[:50])


def _observe(pooled: Pooled) -> None:
    """The test process reads the record on the direct URL (it judges the
    pooled processes, it does not take part)."""
    wf.configure(database_url=pooled.direct, create=False)


def _wait_done(ids: list[str], procs: Procs, timeout: float = 180) -> dict[str, wf.WorkflowInfo]:
    """Wait until every workflow has ended; their records."""
    infos: dict[str, wf.WorkflowInfo] = {}

    def done() -> bool:
        for w in wf.list_workflows(limit=None):
            if w.status in TERMINAL:
                infos[w.workflow_id] = w
        return all(i in infos for i in ids)

    try:
        wait_for(done, timeout=timeout, interval=0.2, what="every workflow ended")
    except AssertionError:
        left = [i for i in ids if i not in infos]
        raise AssertionError(
            f"{len(left)} not ended, e.g. {left[:5]}\n{procs.describe()}"
        ) from None
    return infos


def _assert_all_success(infos: dict[str, wf.WorkflowInfo], procs: Procs) -> None:
    bad = {i: (w.status, w.error) for i, w in infos.items() if w.status != wf.Status.SUCCESS}
    if bad:
        first = sorted(bad)[0]
        steps = [(s.position, s.name, s.output, s.error) for s in wf.list_steps(first)]
        raise AssertionError(f"{len(bad)} not SUCCESS: {bad}\n{first}: {steps}\n{procs.describe()}")


def _workers(
    pooled: Pooled, procs: Procs, n: int, env: Mapping[str, str], cwd: Path = REPO
) -> list[Any]:
    """n ``wf worker`` processes through the pooler, once each has registered."""
    before = {e.executor_id for e in wf.list_executors()} if _migrated(pooled) else set()
    ps = [procs.wf("worker", APP, env=env, cwd=cwd) for _ in range(n)]
    pids = {p.pid for p in ps}

    def registered() -> bool:
        for p in ps:
            assert p.poll() is None, f"a worker exited\n{procs.describe()}"
        if not _migrated(pooled):
            return False
        alive = {e.executor_id for e in wf.list_executors() if e.alive and e.pid in pids}
        return len(alive - before) >= n

    wait_for(registered, timeout=90, interval=0.2, what=f"{n} workers registered")
    return ps


def _migrated(pooled: Pooled) -> bool:
    import psycopg

    with psycopg.connect(pooled.direct, autocommit=True) as conn:
        row = conn.execute("SELECT to_regclass('wf.executors') IS NOT NULL").fetchone()
    return bool(row and row[0])


def _enqueue(
    pooled: Pooled, procs: Procs, env: Mapping[str, str], queue: str, fn: str, n: int, prefix: str
) -> list[str]:
    p = procs.app("enqueue", pooled.url, queue, fn, str(n), prefix, env=env)
    assert f"ENQUEUED {n}" in procs.wait(p)
    return [f"{prefix}-{i}" for i in range(n)]


# -- 1. inline workflows, many clients over a few server connections ---------------------


class _PoolSampler:
    """Samples SHOW CLIENTS / SHOW SERVERS for one database while a run goes on."""

    def __init__(self, pooled: Pooled) -> None:
        self.pooled = pooled
        self.max_clients = 0
        self.max_servers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        db = self.pooled.dbname
        while not self._stop.wait(0.05):
            with contextlib.suppress(Exception):
                clients = [
                    r for r in self.pooled.bouncer.admin("SHOW CLIENTS") if r["database"] == db
                ]
                servers = [
                    r for r in self.pooled.bouncer.admin("SHOW SERVERS") if r["database"] == db
                ]
                self.max_clients = max(self.max_clients, len(clients))
                self.max_servers = max(self.max_servers, len(servers))

    def __enter__(self) -> _PoolSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


def _inline(
    pooled: Pooled, procs: Procs, env: Mapping[str, str], n: int, prefix: str
) -> tuple[dict[str, str], str]:
    """Run ``n`` inline pipelines from 16 threads of one process; wid -> its
    OK/FAIL line, and the whole output."""
    p = procs.app("inline", pooled.url, str(n), prefix, "16", env=env)
    out = procs.wait(p, timeout=180)
    lines: dict[str, str] = {}
    for line in out.splitlines():
        kind, _, rest = line.partition(" ")
        if kind in ("OK", "FAIL"):
            wid, _, detail = rest.partition(" ")
            lines[wid] = f"{kind} {detail}"
    return lines, out


def test_inline_workflows_share_server_connections_and_run_each_call_once(
    pooled: Pooled, procs: Procs, markers: Path
) -> None:
    create_counter_table(pooled.direct)
    env = pooled.env(extra={"WF_TEST_MARKERS": str(markers)})
    n = 160  # about 10 per client connection: psycopg prepares a statement at its 5th use
    with _PoolSampler(pooled) as sampler:
        lines, out = _inline(pooled, procs, env, n, "in")
    tags = [f"in-{i}" for i in range(n)]
    failed = {w: x for w, x in lines.items() if not x.startswith("OK ")}
    assert not failed and sorted(lines) == sorted(tags), out
    # the pooler really multiplexed: more wf clients than server connections
    assert sampler.max_servers <= 4, sampler.max_servers
    assert sampler.max_clients > sampler.max_servers, (sampler.max_clients, sampler.max_servers)
    _assert_each_ran_once(markers, tags, ("first", "bump", "second"))
    assert counters(pooled.direct) == dict.fromkeys(tags, 1)
    _observe(pooled)
    infos = {w.workflow_id: w for w in wf.list_workflows(limit=None)}
    assert {i: infos[i].status for i in tags} == dict.fromkeys(tags, wf.Status.SUCCESS)
    assert all(infos[t].output["n"] == 1 for t in tags)


def test_without_pooler_mode_prepared_statements_break(
    pooled: Pooled, procs: Procs, markers: Path
) -> None:
    """What WF_POOLER=transaction prevents: psycopg's server-side prepared
    statements meet each other on the shared server connections."""
    create_counter_table(pooled.direct)
    env = pooled.env(pooler=False, extra={"WF_TEST_MARKERS": str(markers)})
    p = procs.app("inline", pooled.url, "48", "np", "16", env=env)
    try:
        p.wait(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    out = procs.output(p)
    assert "prepared statement" in out, out[-3000:]


# -- 2. a queue drained by two wf worker processes ----------------------------------------


def test_two_workers_drain_a_queue_each_workflow_once(
    pooled: Pooled, procs: Procs, markers: Path
) -> None:
    create_counter_table(pooled.direct)
    env = pooled.env(extra={"WF_TEST_MARKERS": str(markers)})
    _observe(pooled)
    workers = _workers(pooled, procs, 2, env)
    ids = _enqueue(pooled, procs, env, "pgb_work", "pipeline", 80, "q")
    infos = _wait_done(ids, procs)
    _assert_all_success(infos, procs)
    _assert_each_ran_once(markers, ids, ("first", "bump", "second"))
    assert counters(pooled.direct) == dict.fromkeys(ids, 1)
    assert all(infos[i].recovery_attempts == 0 for i in ids)
    assert all(w.poll() is None for w in workers), procs.describe()


# -- 3. wake-ups and messages through the pooler --------------------------------------------


@pytest.mark.parametrize("listen", ["listen_direct", "polling"])
def test_await_and_messages_across_processes(
    pooled: Pooled, procs: Procs, markers: Path, listen: str
) -> None:
    """``wf await`` (through the pooler) returns the outcome of a workflow
    that ends in a worker after messages sent by other processes (``wf send``
    and ``wf.send``): LISTEN on the direct URL, or polling without one."""
    env = pooled.env(listen=listen == "listen_direct", extra={"WF_TEST_MARKERS": str(markers)})
    _observe(pooled)
    (worker,) = _workers(pooled, procs, 1, env)
    gate = procs.wf(
        "start", "--detach", "--queue", "pgb_gates", "--id", "g1", f"{APP}:gate", "g1", env=env
    )
    procs.wait(gate)
    box = procs.wf(
        "start",
        "--detach",
        "--queue",
        "pgb_gates",
        "--id",
        "m1",
        f"{APP}:mailbox",
        "m1",
        "4",
        env=env,
    )
    procs.wait(box)
    wait_for(lambda: _ran(markers)[("first", "end", "g1")] == 1, timeout=60, what="g1 at its recv")
    waiters = {
        wid: procs.wf("await", "--json", "--timeout", "120", wid, env=env) for wid in ("g1", "m1")
    }
    _assert_listen_connections(
        pooled, [worker.pid, *(p.pid for p in waiters.values())], listen == "listen_direct"
    )
    # messages from other processes: the CLI and wf.send, through the pooler
    procs.wait(procs.wf("send", "m1", "one", "--topic", "m", env=env))
    procs.wait(procs.app("send", pooled.url, "m1", "two", "m", env=env))
    procs.wait(procs.wf("send", "m1", "three", "--topic", "m", env=env))
    procs.wait(procs.app("send", pooled.url, "m1", "four", "m", env=env))
    procs.wait(procs.wf("send", "g1", "hello", "--topic", "go", env=env))
    docs = {wid: json.loads(procs.wait(p, timeout=150)) for wid, p in waiters.items()}
    assert docs["g1"]["status"] == "SUCCESS" and docs["g1"]["output"] == "g1 got hello", docs
    assert docs["m1"]["status"] == "SUCCESS", docs
    assert docs["m1"]["output"] == ["one", "two", "three", "four"], docs
    _assert_each_ran_once(markers, ["m1"], ("second",))


def _direct_connections(pooled: Pooled, pid: int) -> int:
    """How many TCP connections process ``pid`` holds to the Postgres itself
    (around the pooler): behind the pooler, wf's only direct one is LISTEN's."""
    server = (pooled.bouncer.server_host, pooled.bouncer.server_port)
    return sum(1 for peer in tcp_peers(pid) if peer == server)


def _assert_listen_connections(pooled: Pooled, pids: list[int], direct: bool) -> None:
    """With WF_LISTEN_URL each waiting process LISTENs on a direct connection
    around the pooler; without it none opens any direct connection."""
    if direct:
        wait_for(
            lambda: all(_direct_connections(pooled, p) >= 1 for p in pids),
            timeout=30,
            interval=0.2,
            what=f"a direct LISTEN connection in each of {pids}",
        )
    else:
        assert all(_direct_connections(pooled, p) == 0 for p in pids), [tcp_peers(p) for p in pids]


def test_pooler_settings_from_pyproject_toml(
    pooled: Pooled, procs: Procs, markers: Path, tmp_path: Path
) -> None:
    """``[tool.wf] database_url``, ``pooler`` and ``listen_url`` in
    ./pyproject.toml, no WF_* variables: a worker, ``wf start --detach`` and
    ``wf await`` work through the pooler, and the waiters LISTEN directly."""
    create_counter_table(pooled.direct)
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "pyproject.toml").write_text(
        "[tool.wf]\n"
        f'database_url = "{pooled.url}"\n'
        'pooler = "transaction"\n'
        f'listen_url = "{pooled.direct}"\n'
    )
    env = pooled.env(pooler=False, extra={"WF_TEST_MARKERS": str(markers)})
    env.pop("WF_DATABASE_URL")
    _observe(pooled)
    (worker,) = _workers(pooled, procs, 1, env, cwd=proj)
    start = procs.wf(
        "start", "--detach", "--queue", "pgb_work", "--id", "p1", f"{APP}:pipeline", "p1",
        env=env, cwd=proj,
    )  # fmt: skip
    procs.wait(start)
    waiter = procs.wf("await", "--json", "--timeout", "120", "p1", env=env, cwd=proj)
    doc = json.loads(procs.wait(waiter, timeout=150))
    assert doc["status"] == "SUCCESS" and doc["output"]["n"] == 1, doc
    _assert_listen_connections(pooled, [worker.pid], direct=True)
    _assert_each_ran_once(markers, ["p1"], ("first", "bump", "second"))


def test_an_unknown_pooler_is_a_one_line_error(pooled: Pooled, procs: Procs) -> None:
    env = pooled.env(pooler=False)
    env["WF_POOLER"] = "statement"
    p = procs.wf("status", "x", env=env)
    p.wait(timeout=60)
    lines = [ln for ln in procs.output(p).splitlines() if ln.strip()]
    assert p.returncode == 2 and len(lines) == 1, procs.output(p)
    assert "WF_POOLER" in lines[0] and "statement" in lines[0], lines


# -- 4. a worker killed mid-step -------------------------------------------------------------


def test_worker_killed_mid_step_another_recovers_completed_steps_never_rerun(
    pooled: Pooled, procs: Procs, markers: Path
) -> None:
    """SIGKILL while both running workflows (the queue's concurrency is 2)
    sleep inside their ``hold`` step; a second worker adopts them."""
    create_counter_table(pooled.direct)
    env = pooled.env(extra={"WF_TEST_MARKERS": str(markers), "WF_TEST_HOLD_S": "2.0"})
    _observe(pooled)
    (first,) = _workers(pooled, procs, 1, env)
    ids = _enqueue(pooled, procs, env, "pgb_slow", "slow_pipeline", 6, "k")

    def holding() -> set[str]:
        ran = _ran(markers)
        return {t for (b, ph, t) in ran if (b, ph) == ("hold", "start") and not ran[(b, "end", t)]}

    wait_for(lambda: len(holding()) == 2, timeout=60, what="two workflows inside their hold step")
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    interrupted = holding()
    assert len(interrupted) == 2, sorted(_ran(markers).items())
    _workers(pooled, procs, 1, env)
    infos = _wait_done(ids, procs)
    _assert_all_success(infos, procs)
    ran = _ran(markers)
    for tag in ids:
        for body in ("first", "bump", "hold", "second"):
            assert ran[(body, "end", tag)] == 1, (body, tag, sorted(ran.items()))
            # only the step that was running when the worker died started again
            again = body == "hold" and tag in interrupted
            assert ran[(body, "start", tag)] == 1 + again, (body, tag, sorted(ran.items()))
        assert infos[tag].recovery_attempts == (1 if tag in interrupted else 0), infos[tag]
    assert counters(pooled.direct) == dict.fromkeys(ids, 1)


# -- 5. the pooler itself misbehaves (issue 18) ----------------------------------------------


def test_reconnect_kill_resume_and_restart_of_the_pooler_mid_workload(
    pooled: Pooled, procs: Procs, markers: Path
) -> None:
    """During a queued workload on two workers: RECONNECT (server connections
    recycled), KILL/RESUME (every client and server connection of the
    database dropped, new ones held until RESUME) and a restart of pgbouncer
    (SIGTERM, down a second, up on the same port). Every workflow SUCCESS,
    each transaction committed once, no completed step ran again."""
    create_counter_table(pooled.direct)
    env = pooled.env(listen=True, extra={"WF_TEST_MARKERS": str(markers), "WF_TEST_HOLD_S": "0.2"})
    bouncer = pooled.bouncer
    _observe(pooled)
    workers = _workers(pooled, procs, 2, env)
    ids = _enqueue(pooled, procs, env, "pgb_work", "slow_pipeline", 240, "r")

    def ended() -> int:
        return sum(1 for k, _ in _ran(markers).items() if k[:2] == ("second", "end"))

    def progressed(past: int) -> None:
        wait_for(lambda: ended() > past, timeout=120, interval=0.1, what=f"more than {past} done")

    progressed(10)
    bouncer.admin(f"RECONNECT {pooled.dbname}")
    progressed(ended() + 10)
    bouncer.admin(f"KILL {pooled.dbname}")
    time.sleep(1.0)  # clients queue up behind the killed database
    bouncer.admin(f"RESUME {pooled.dbname}")
    progressed(ended() + 10)
    bouncer.restart(signal.SIGTERM, down_for=1.0)
    progressed(ended() + 10)
    infos = _wait_done(ids, procs, timeout=240)
    _assert_all_success(infos, procs)
    # each transaction committed once; its body may have run to its end in
    # an attempt whose COMMIT the pooler's KILL or restart dropped (rolled
    # back, so retried): a transaction's guarantee is the counter, not the marker
    assert counters(pooled.direct) == dict.fromkeys(ids, 1)
    ran = _ran(markers)
    for tag in ids:
        for body in ("first", "hold", "second"):
            assert ran[(body, "end", tag)] == 1, (body, tag, procs.describe())
        assert ran[("bump", "end", tag)] >= 1, (tag, procs.describe())
    assert all(w.poll() is None for w in workers), procs.describe()
    # a dequeue whose COMMIT committed but whose answer the KILL dropped is
    # re-claimed by its own executor's orphan sweep: one recovery attempt
    # (README, guarantee 7), its steps still ran once (above); never more
    assert all(i.recovery_attempts <= 1 for i in infos.values()), [
        (i.workflow_id, i.recovery_attempts) for i in infos.values() if i.recovery_attempts
    ]
