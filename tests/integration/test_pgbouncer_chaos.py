"""PgBouncer chaos with waiters (issue 18): Debian's pgbouncer in transaction
pooling in front (tests/pgbouncer.py), two ``wf worker`` processes and a
process of inline workflows going through it, workflows blocked in
``wf.recv`` and a process waiting for their outcomes (``handle.result()``). During
the workload the pooler is put through RECONNECT, KILL/RESUME, a restart
(SIGTERM, down a second) and a crash (SIGKILL, started again), with
messages sent between the blows (``wf send`` through the pooler).

What must hold, with LISTEN on a direct URL (WF_LISTEN_URL) and with the
polling fallback: every workflow SUCCESS, each transaction committed once
(wf_test_counters), no step body ran twice (marker lines), every message
received once and in order, every waiter (workflows in ``wf.recv``, a
process in ``handle.result()``) woke with the outcome, no
workflow changed hands, no worker died.

(tests/integration/test_pgbouncer.py has the plain queue workload under the
same blows; this one adds the waiters, inline workflows and the crash.)"""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from wf._serialization import loads

from tests.helpers import counters, create_counter_table, wait_for
from tests.integration.test_pgbouncer import (
    APP,
    Procs,
    _assert_all_success,
    _enqueue,
    _observe,
    _ran,
    _wait_done,
    _workers,
)
from tests.pgbouncer import Pooled, pooled_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.timeout(300)

# its ``await`` (a result waiter) and ``inline`` (long inline workflows) commands
WAITER = "tests.apps.failover_workload"
INLINE_N = 150
MESSAGES = ["one", "two", "three", "four", "five", "six"]


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    ps = Procs(tmp_path)
    yield ps
    ps.close()


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


@pytest.mark.parametrize("listen", ["listen_direct", "polling"])
def test_waiters_wake_through_pooler_reconnect_kill_restart_and_crash(
    pooled: Pooled, procs: Procs, markers: Path, listen: str
) -> None:
    from tests.apps.failover_workload import LEDGER_DDL

    create_counter_table(pooled.direct)
    with psycopg.connect(pooled.direct, autocommit=True) as conn:
        conn.execute(LEDGER_DDL)
    env = pooled.env(
        listen=listen == "listen_direct",
        extra={"WF_TEST_MARKERS": str(markers), "WF_TEST_HOLD_S": "1.0", "WF_TEST_TICK": "0.1"},
    )
    bouncer = pooled.bouncer
    _observe(pooled)
    workers = _workers(pooled, procs, 2, env)

    # waiters: four gates blocked in recv, a mailbox expecting six messages,
    # and a process waiting for the results of one gate and of the mailbox
    gates = _enqueue(pooled, procs, env, "pgb_gates", "gate", 4, "g")
    box = procs.wf(
        "start", "--detach", "--queue", "pgb_gates", "--id", "m0", f"{APP}:mailbox", "m0", "6",
        env=env,
    )  # fmt: skip
    procs.wait(box)
    wait_for(
        lambda: all(_ran(markers)[("first", "end", g)] == 1 for g in gates),
        timeout=90,
        interval=0.1,
        what="every gate at its recv",
    )
    # a result waiter in a launched process (``wf await`` is a CLI read: it
    # fails fast when the database goes away, by design)
    awaiter = procs.spawn([sys.executable, "-m", WAITER, "await", gates[0], "m0"], env)
    # inline workflows (a step, a transaction, a message to itself each
    # round) long enough to meet every blow
    inline = procs.spawn([sys.executable, "-m", WAITER, "inline", "i", "3", str(INLINE_N)], env)
    inline_ids = [f"i-{k}" for k in range(3)]
    queued: list[str] = []

    def wave() -> None:
        """40 more queued pipelines (each holds 1 s in a step; 8 run at
        once); returns once some are inside their step, most still queued."""
        ids = _enqueue(pooled, procs, env, "pgb_work", "slow_pipeline", 40, f"w{len(queued)}")
        queued.extend(ids)
        wait_for(
            lambda: sum(1 for t in ids if _ran(markers)[("hold", "start", t)]) >= 4,
            timeout=120,
            interval=0.1,
            what=f"wave {ids[0]} running",
        )
        assert _ran(markers)[("second", "end", ids[-1])] == 0  # the blow lands mid-wave

    def serving() -> bool:
        try:
            with psycopg.connect(pooled.url, connect_timeout=2, prepare_threshold=None) as c:
                c.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def send(wid: str, message: str, topic: str) -> None:
        procs.wait(procs.wf("send", wid, message, "--topic", topic, env=env), timeout=120)

    wave()
    send("m0", MESSAGES[0], "m")
    bouncer.admin(f"RECONNECT {pooled.dbname}")  # server connections recycled
    send(gates[0], "hello", "go")
    send("m0", MESSAGES[1], "m")
    wave()
    bouncer.admin(f"KILL {pooled.dbname}")  # every connection of the database dropped
    time.sleep(1.0)
    bouncer.admin(f"RESUME {pooled.dbname}")
    # PgBouncer may hold new logins to a killed database for up to
    # server_login_retry (15 s): running processes wait it out; a new one
    # (wf.launch, a CLI call: 10 s connect timeout, then it fails) is
    # started once the pool serves again
    wait_for(serving, timeout=60, interval=0.2, what="the pooler serving again")
    wave()
    send("m0", MESSAGES[2], "m")
    bouncer.restart(signal.SIGTERM, down_for=1.0)
    send(gates[1], "hello", "go")
    send("m0", MESSAGES[3], "m")
    wave()
    bouncer.restart(signal.SIGKILL, down_for=1.0)  # a crash
    send(gates[2], "hello", "go")
    send(gates[3], "hello", "go")
    send("m0", MESSAGES[4], "m")
    send("m0", MESSAGES[5], "m")
    assert inline.poll() is None, "the inline workflows ended before the last blow"

    infos = _wait_done([*gates, "m0", *queued], procs, timeout=240)
    _assert_all_success(infos, procs)
    printed = procs.wait(awaiter, timeout=120)
    results = {}
    for line in printed.splitlines():
        if line.startswith("RESULT "):
            _, wid, doc = line.split(" ", 2)
            results[wid] = loads(doc)
    assert results == {gates[0]: f"{gates[0]} got hello", "m0": MESSAGES}, printed
    for g in gates:
        assert infos[g].output == f"{g} got hello", (g, infos[g].output)
    out = procs.wait(inline, timeout=240)
    for wid in inline_ids:
        assert f"OK {wid} {sum(range(INLINE_N))}" in out, out[-3000:]
    ran = _ran(markers)
    for tag in queued:
        for body in ("first", "hold", "second"):
            assert ran[(body, "end", tag)] == 1, (body, tag, procs.describe())
        # a transaction's body may reach its end in an attempt whose COMMIT a
        # KILL or restart dropped (rolled back, retried): its guarantee is the
        # counter committed once (below), not the marker
        assert ran[("bump", "end", tag)] >= 1, (tag, procs.describe())
    for tag in inline_ids:
        for k in range(INLINE_N):
            assert ran[("step", tag, str(k))] == 2, (tag, k)  # its start and end, once
    with psycopg.connect(pooled.direct) as conn:
        ledger = conn.execute("SELECT workflow_id, k, count(*) FROM failover_ledger GROUP BY 1, 2")
        rows = {(w, k): c for w, k, c in ledger}
    assert rows == {(w, k): 1 for w in inline_ids for k in range(INLINE_N)}
    assert ran[("second", "end", "m0")] == 1
    assert counters(pooled.direct) == dict.fromkeys(queued, 1)
    assert all(w.poll() is None for w in workers), procs.describe()
    # a dequeue whose COMMIT committed but whose answer a KILL dropped is
    # re-claimed by its own executor's orphan sweep: one recovery attempt
    # (README, guarantee 7), its steps still ran once (above); never more
    moved = {i.workflow_id: i.recovery_attempts for i in infos.values() if i.recovery_attempts}
    assert all(n <= 1 for n in moved.values()), moved
