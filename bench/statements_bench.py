"""wf's own hot-path statements replayed by raw psycopg, beside the commit
floor, in interleaved rounds: what the design costs the server with none of
wf's Python around it.

    python -m bench.statements_bench [ADMIN_URL] [--rounds R]

Sequential (one connection): a 0-step workflow's two statements
(``insert_workflow`` + ``finish_workflow``) and one step's ``record_step``,
each as × the floor (one autocommit ``INSERT … ON CONFLICT DO NOTHING`` into
a one-index table). Concurrent (16 threads, a connection each, 300 steps of
its own workflow each): ``record_step`` one row per statement, and the same
rows written by group commit (runtime/_sysdb/group_commit.py, the
``record_steps`` statement), as a fraction of the 16-thread floor.

Medians over the rounds; the machine is shared, so read the ratios."""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from typing import Any

from bench.common import log, psycopg_url, recreate_database
from bench.floor import PgConcurrentFloor, PgFloor

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
THREADS = 16
STEPS = 300


def _workflow(key: str, now: int) -> dict[str, Any]:
    return {
        "workflow_id": key,
        "status": "PENDING",
        "name": "bench:w",
        "inputs": "[[], {}]",
        "executor_id": "bench",
        "queue": None,
        "priority": 0,
        "dedup_id": None,
        "parent_workflow_id": None,
        "max_recovery_attempts": 50,
        "now": now,
        "started_at": now,
        "deadline": None,
        "timeout_ms": None,
        "not_before": None,
        "app_version": None,
        "partition_key": None,
        "debounce_key": None,
        "debounce_until": None,
    }


def _step(key: str, pos: int, now: int) -> dict[str, Any]:
    return {
        "workflow_id": key,
        "executor_id": "bench",
        "position": pos,
        "name": "bench:s",
        "kind": "step",
        "output": "1",
        "error": None,
        "child_workflow_id": None,
        "started_at": now,
        "ended_at": now,
        "attempts": 1,
        "detail": None,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("admin", nargs="?", default=DEFAULT_ADMIN)
    ap.add_argument("--rounds", type=int, default=6)
    args = ap.parse_args(argv)

    import psycopg
    from wf._sysdb import SystemDatabase
    from wf._sysdb.driver import to_pyformat

    url = recreate_database(args.admin, "wf_bench_statements")
    db = SystemDatabase(url)
    db.ensure_reachable()
    db.migrate()
    sql = {name: to_pyformat(db.q(name)) for name in ("insert_workflow", "finish_workflow")}
    sql["record_step"] = to_pyformat(db.q("record_step"))
    finish = sql["finish_workflow"]
    conn = psycopg.connect(psycopg_url(url), autocommit=True)
    floor, cfloor = PgFloor(url), PgConcurrentFloor(url, THREADS)

    def zero() -> float:
        key, now = uuid.uuid4().hex, int(time.time() * 1000)
        t = time.perf_counter()
        conn.execute(sql["insert_workflow"], _workflow(key, now), prepare=True)
        conn.execute(
            finish,
            {"status": "SUCCESS", "output": "null", "error": None, "now": now}
            | {"workflow_id": key, "executor_id": "bench"},
            prepare=True,
        )
        return time.perf_counter() - t

    def step_each(n: int) -> float:
        key, now = uuid.uuid4().hex, int(time.time() * 1000)
        conn.execute(sql["insert_workflow"], _workflow(key, now), prepare=True)
        t = time.perf_counter()
        for pos in range(n):
            conn.execute(sql["record_step"], _step(key, pos, now), prepare=True)
        return (time.perf_counter() - t) / n

    def concurrent(batched: bool) -> float:
        now = int(time.time() * 1000)
        keys = [uuid.uuid4().hex for _ in range(THREADS)]
        for key in keys:
            conn.execute(sql["insert_workflow"], _workflow(key, now), prepare=True)
        group = db.step_group if batched else None

        def run(key: str) -> None:
            for pos in range(STEPS):
                p = _step(key, pos, now)
                ok = group.submit(p) if group is not None else db._record_one(p)
                assert ok, (key, pos)

        threads = [threading.Thread(target=run, args=(k,)) for k in keys]
        t = time.perf_counter()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        return THREADS * STEPS / (time.perf_counter() - t)

    out: dict[str, list[float]] = {}
    for r in range(args.rounds):
        fl = statistics.median(floor.sample(200))
        cf = cfloor.sample(STEPS)
        out.setdefault("floor ms", []).append(fl * 1000)
        out.setdefault("conc floor commits/s", []).append(cf)
        out.setdefault("0-step statements × floor", []).append(
            statistics.median(zero() for _ in range(100)) / fl
        )
        out.setdefault("record_step × floor", []).append(
            statistics.median(step_each(10) for _ in range(20)) / fl
        )
        out.setdefault("16 threads, one row a statement, % of conc floor", []).append(
            100 * concurrent(False) / cf
        )
        out.setdefault("16 threads, group commit, % of conc floor", []).append(
            100 * concurrent(True) / cf
        )
        log(f"round {r + 1}/{args.rounds}")
    print(f"{'measurement':52s} median  (rounds)")
    for name, values in out.items():
        print(f"{name:52s} {statistics.median(values):7.2f}  {[round(v, 2) for v in values]}")
    if db.step_group is not None:
        print(
            f"group commit: {db.step_group.batched / max(db.step_group.batches, 1):.1f} rows a batch"
        )
    conn.close()
    floor.close()
    cfloor.close()
    db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
