"""The chaos test: a queued workload on three ``wf worker`` processes while a
driver SIGKILLs and restarts workers and stops Postgres (``pg_ctl -m
immediate``) and starts it again; then a Jepsen-style count of what was lost
or duplicated.

Run it alone with ``pytest -m chaos -s`` (the figures are printed either way).
WF_CHAOS_SEED fixes the random schedule; WF_CHAOS_WORKFLOWS the workload size.

Invariants checked at the end:
- every workflow ended SUCCESS; none is left ENQUEUED or PENDING;
- every transaction's effect happened exactly once (a UNIQUE-keyed ledger row
  per entry and a per-workflow counter that would show a second commit);
- a completed step never ran again: each re-run of a step is accounted for
  by a crash of the process that ran it (re-runs <= the workflow's recovery
  attempts), and the recorded result is the token of a run that ended;
- every message was delivered exactly once and in order (each receiver got
  exactly its peer's messages; none is left undelivered); every event read
  returned the value set;
- each durable log line is stored once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, child_env
from tests.reliability.pgcluster import PgCluster, available

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(420)]

MODULE = "tests.apps.chaos_workload"
WORKERS = 3
MESSAGES = 3


def _wf_exe() -> str:
    exe = Path(sys.executable).parent / "wf"
    if not exe.exists():
        pytest.fail("the wf console script is not installed: pip install -e .")
    return str(exe)


class Worker:
    """One ``wf worker`` slot; each (re)start is a new process and log file."""

    def __init__(self, slot: int, url: str, env: dict[str, str], logdir: Path) -> None:
        self.slot = slot
        self.url = url
        self.env = env
        self.logdir = logdir
        self.proc: subprocess.Popen[bytes] | None = None
        self.log: Path | None = None
        self.incarnation = 0

    @property
    def executor_id(self) -> str:
        return f"chaos-w{self.slot}-{self.incarnation}"

    def start(self, timeout: float = 60) -> None:
        self.incarnation += 1
        self.log = self.logdir / f"worker-{self.slot}-{self.incarnation}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [_wf_exe(), "worker", MODULE, "--db", self.url, "--executor-id", self.executor_id],
                env=self.env,
                cwd=str(REPO),
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + timeout
        while b"wf worker " not in self.log.read_bytes():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker {self.slot} exited at start:\n{self.tail()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"worker {self.slot} not ready in {timeout}s:\n{self.tail()}")
            time.sleep(0.05)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def tail(self, n: int = 40) -> str:
        if self.log is None or not self.log.exists():
            return ""
        lines = self.log.read_text(errors="replace").splitlines()
        return f"--- {self.log.name}\n" + "\n".join(lines[-n:])


class Enqueuer(threading.Thread):
    """Enqueues the workload in batches from this (client) process, through
    the outages: a call that finds the database down is tried again."""

    def __init__(self, url: str, prefix: str, n: int, batches: int, pause: float) -> None:
        super().__init__(name="chaos-enqueuer", daemon=True)
        self.url, self.prefix, self.n, self.batches, self.pause = url, prefix, n, batches, pause
        self.error: BaseException | None = None
        self.retries = 0
        self.done = threading.Event()

    def run(self) -> None:
        import wf

        from tests.apps import chaos_workload as app

        try:
            per = (self.n + self.batches - 1) // self.batches
            for b in range(self.batches):
                if b:
                    time.sleep(self.pause)
                for i in range(b * per, min(self.n, (b + 1) * per)):
                    deadline = time.monotonic() + 90
                    while True:
                        try:
                            app.QUEUE.enqueue(
                                app.job,
                                i,
                                i ^ 1,
                                self.prefix,
                                MESSAGES,
                                workflow_id=f"{self.prefix}{i}",
                            )
                            break
                        except wf.DatabaseUnreachableError:
                            if time.monotonic() > deadline:
                                raise
                            self.retries += 1
                            time.sleep(0.2)
        except BaseException as e:  # noqa: BLE001 - reported by the test
            self.error = e
        finally:
            self.done.set()


def _query(url: str, sql: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, connect_timeout=10) as conn:
        return list(conn.execute(sql).fetchall())


def _report(text: str) -> None:
    from tests.chaos.conftest import FIGURES

    FIGURES.append(text)
    print(text)
    out = os.environ.get("WF_CHAOS_REPORT")
    if out:
        with open(out, "a") as f:
            f.write(text + "\n")


@pytest.fixture
def cluster() -> Any:
    why = available()
    if why is not None:
        pytest.skip(f"cannot start a private Postgres cluster: {why}")
    c = PgCluster()
    try:
        yield c
    finally:
        c.destroy()


def test_chaos(cluster: PgCluster, tmp_path: Path) -> None:
    import psycopg
    import wf

    seed = int(os.environ.get("WF_CHAOS_SEED") or random.randrange(1_000_000))
    n = int(os.environ.get("WF_CHAOS_WORKFLOWS") or 240)
    n -= n % 2  # pairs
    rng = random.Random(seed)
    url = cluster.create_database("chaos")
    with psycopg.connect(url, autocommit=True) as conn:
        from tests.apps.chaos_workload import LEDGER_DDL

        for ddl in LEDGER_DDL:
            conn.execute(ddl)
    wf.migrate(url)
    wf.configure(database_url=url)
    markers = tmp_path / "markers.txt"
    env = child_env(
        None,
        {
            "WF_TEST_MARKERS": str(markers),
            "WF_RECOVERY_INTERVAL": "1",
        },
    )
    workers = [Worker(s, url, env, tmp_path) for s in range(WORKERS)]
    prefix = f"chaos-{seed}-"
    t0 = time.monotonic()
    figures: Counter[str] = Counter()
    timeline: list[str] = []

    def note(event: str) -> None:
        timeline.append(f"{time.monotonic() - t0:6.1f}s {event}")

    def check_workers() -> None:
        for w in workers:
            if not w.alive():
                raise AssertionError(
                    f"worker {w.slot} died on its own (exit {w.proc.returncode if w.proc else '?'}):\n"
                    + w.tail()
                    + "\n"
                    + "\n".join(timeline)
                )

    def kill(w: Worker) -> None:
        in_flight = _query(
            url,
            "SELECT count(*) FROM wf.workflows WHERE status = 'PENDING' AND executor_id = "
            f"'{w.executor_id}'",
        )[0][0]
        w.kill()
        figures["kills"] += 1
        figures["in flight at kills"] += int(in_flight)
        note(f"SIGKILL worker {w.slot} ({in_flight} workflows in flight)")

    def restart(w: Worker) -> None:
        w.start()
        figures["worker restarts"] += 1
        note(f"restarted worker {w.slot}")

    def pg_restart(down: float) -> None:
        cluster.stop("immediate")
        note("postgres stopped (-m immediate)")
        time.sleep(down)
        cluster.start()
        figures["postgres restarts"] += 1
        note(f"postgres started after {down:.1f}s")

    try:
        for w in workers:
            w.start()
        note("workers up")
        enqueuer = Enqueuer(url, prefix, n, batches=6, pause=5.0)
        enqueuer.start()

        # the schedule: at least 2 Postgres restarts (one while a worker is
        # dead and its workflows await recovery) and several kills
        actions = ["kill", "kill", "kill", "kill", "pg", "kill+pg", "kill2", "pg"]
        rng.shuffle(actions)
        for action in actions:
            time.sleep(rng.uniform(2.5, 5.0))
            check_workers()
            if action == "kill":
                w = rng.choice(workers)
                kill(w)
                time.sleep(rng.uniform(0.3, 2.0))
                restart(w)
            elif action == "kill2":
                pair = rng.sample(workers, 2)
                for w in pair:
                    kill(w)
                time.sleep(rng.uniform(0.5, 2.0))
                for w in pair:
                    restart(w)
            elif action == "pg":
                pg_restart(rng.uniform(2.0, 5.0))
            elif action == "kill+pg":
                w = rng.choice(workers)
                kill(w)
                time.sleep(rng.uniform(0.1, 1.0))
                pg_restart(rng.uniform(2.0, 4.0))
                restart(w)
        note("chaos over")
        enqueuer.join(timeout=120)
        assert enqueuer.done.is_set(), "the enqueuer never finished"
        if enqueuer.error is not None:
            raise AssertionError(f"enqueueing failed: {enqueuer.error!r}")
        figures["enqueue retries"] = enqueuer.retries

        # let the workload finish with every worker up
        deadline = time.monotonic() + 180
        while True:
            check_workers()
            rows = _query(
                url,
                "SELECT status, count(*) FROM wf.workflows GROUP BY status",
            )
            by_status = dict(rows)
            if sum(by_status.values()) == n and not (
                by_status.get("PENDING") or by_status.get("ENQUEUED")
            ):
                break
            if time.monotonic() > deadline:
                stuck = _query(
                    url,
                    "SELECT workflow_id, status, executor_id, recovery_attempts FROM wf.workflows "
                    "WHERE status IN ('PENDING', 'ENQUEUED') ORDER BY workflow_id LIMIT 20",
                )
                execs = _query(url, "SELECT executor_id, pid, heartbeat_at FROM wf.executors")
                raise AssertionError(
                    f"workflows stuck after the chaos: {by_status}\n{stuck}\nexecutors: {execs}\n"
                    + "\n".join(timeline)
                    + "\n"
                    + "\n".join(w.tail(15) for w in workers)
                )
            time.sleep(0.5)
        note("all ended")
        elapsed = time.monotonic() - t0
    finally:
        for w in workers:
            w.stop()

    problems = _check_invariants(url, prefix, n, markers, figures)
    figures["workflows"] = n
    summary = {
        "seed": seed,
        "seconds": round(elapsed, 1),
        **{k: figures[k] for k in sorted(figures)},
    }
    _report("chaos figures: " + json.dumps(summary))
    assert not problems, f"{len(problems)} invariant violation(s):\n" + "\n".join(
        problems[:40] + ["--- timeline", *timeline]
    )


def _check_invariants(
    url: str, prefix: str, n: int, markers: Path, figures: Counter[str]
) -> list[str]:
    from wf._serialization import loads

    problems: list[str] = []
    rows = _query(
        url, "SELECT workflow_id, status, output, error, recovery_attempts FROM wf.workflows"
    )
    wfs = {r[0]: r for r in rows}
    expected = {f"{prefix}{i}" for i in range(n)}
    if set(wfs) != expected:
        problems.append(
            f"workflow set differs: missing {sorted(expected - set(wfs))[:5]}, "
            f"extra {sorted(set(wfs) - expected)[:5]}"
        )
    outputs: dict[str, Any] = {}
    for wid, status, output, error, _attempts in rows:
        if status != "SUCCESS":
            problems.append(f"{wid} ended {status}: {error}")
        else:
            outputs[wid] = loads(output)
    figures["recoveries"] = sum(int(r[4]) for r in rows)

    # transactions: exactly once
    ledger = Counter(r[0] for r in _query(url, "SELECT workflow_id, entry FROM chaos_ledger"))
    counts = dict(_query(url, "SELECT workflow_id, n FROM chaos_counts"))
    for wid in expected:
        if ledger.get(wid) != 2 or counts.get(wid) != 2:
            problems.append(
                f"{wid}: ledger entries {ledger.get(wid)}, counter {counts.get(wid)} (want 2, 2)"
            )
        out = outputs.get(wid)
        if out is not None and out["counts"] != [1, 2]:
            problems.append(f"{wid}: the transactions returned {out['counts']}, want [1, 2]")

    # messages and events
    left = _query(url, "SELECT destination_id, topic, message FROM wf.messages")
    if left:
        problems.append(f"{len(left)} message(s) never delivered: {left[:3]}")
    for wid, out in outputs.items():
        i = out["i"]
        want = [{"from": i ^ 1, "k": k} for k in range(MESSAGES)]
        if out["got"] != want:
            problems.append(f"{wid} received {out['got']}, want {want}")
        if out["peer_ready"] != i ^ 1:
            problems.append(f"{wid} read the peer's event as {out['peer_ready']!r}")
    events = Counter(r[0] for r in _query(url, "SELECT workflow_id, key FROM wf.events"))
    for wid in expected:
        if events.get(wid) != 2:
            problems.append(f"{wid} has {events.get(wid)} events, want 2 (ready, done)")

    # steps: re-runs only where a crash interrupted them
    starts: dict[tuple[str, str], list[str]] = defaultdict(list)
    ends: dict[tuple[str, str], set[str]] = defaultdict(set)
    for line in markers.read_text().splitlines():
        kind, wid, name, token, _pid = line.split()
        (starts[(wid, name)].append(token) if kind == "start" else ends[(wid, name)].add(token))
    recorded = {
        (r[0], r[1]): loads(r[2])
        for r in _query(url, "SELECT workflow_id, name, output FROM wf.steps WHERE kind = 'step'")
    }
    reruns = 0
    for wid in expected:
        attempts = int(wfs[wid][4]) if wid in wfs else 0
        mine = 0
        for name in ("work_a", "work_b"):
            key = (wid, name)
            recorded_token = recorded.get(key)
            if recorded_token is None:
                problems.append(f"{wid}: step {name} not recorded")
                continue
            if recorded_token not in ends[key]:
                problems.append(
                    f"{wid}: {name} recorded {recorded_token}, not a run that ended {ends[key]}"
                )
            if outputs.get(wid) and outputs[wid]["tokens"][name] != recorded_token:
                problems.append(f"{wid}: {name} returned another value than it recorded")
            mine += len(starts[key]) - 1
        reruns += mine
        if mine > attempts:
            problems.append(
                f"{wid}: steps re-ran {mine} time(s) with only {attempts} recovery(ies)"
            )
    figures["step re-runs"] = reruns
    figures["step runs"] = sum(len(v) for v in starts.values())
    if reruns > figures["in flight at kills"]:  # at most one step re-run per interrupted workflow
        problems.append(
            f"{reruns} step re-runs for {figures['in flight at kills']} workflows interrupted by kills"
        )

    # durable logs: each line once, even after recovery replays
    logs = Counter(
        r[0]
        for r in _query(url, "SELECT workflow_id FROM wf.logs WHERE message LIKE 'job % begins'")
    )
    for wid in expected:
        if logs.get(wid) != 1:
            problems.append(f"{wid}: its log line is stored {logs.get(wid)} times")

    return problems
