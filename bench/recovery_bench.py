"""Recovery: N one-step workflows left PENDING by a dead executor, finished by
a fresh process.

The N rows are written through wf's own SystemDatabase as PENDING workflows
owned by an executor ID that has no executor row (exactly what a process
killed before its first heartbeat leaves; a SIGKILLed process's row is also
judged dead at once on the same host). A fresh process
(``python -m bench.recovery_bench child URL N``) then imports the workload,
calls ``wf.launch()`` and polls every 50 ms until no PENDING row is left; the
figure is the time from the ``launch()`` call to that moment, all N checked
SUCCESS."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import Agent, log, parallel, reply, summary

DEAD_EXECUTOR = "bench-dead-executor"


def seed(url: str, n: int, rep: int) -> None:
    from wf._core import encode_inputs
    from wf._sysdb import SystemDatabase

    from bench.workloads import one_step_workflow

    sysdb = SystemDatabase(url)
    sysdb.ensure_reachable()
    sysdb.migrate()
    name = one_step_workflow.wf_spec.name

    def insert(i: int) -> None:
        sysdb.insert_workflow(
            workflow_id=f"r{rep}-{i:06d}",
            status="PENDING",
            name=name,
            inputs=encode_inputs([i], {}),
            executor_id=DEAD_EXECUTOR,
        )

    try:
        parallel(insert, n)
    finally:
        sysdb.dispose()


def child(url: str, n: int) -> None:
    import wf

    import bench.workloads  # noqa: F401  (the recovered workflows' code)
    from bench.queue_bench import _Sql

    sql = _Sql(url)
    table = "wf.workflows" if sql.pg else "workflows"
    t0 = time.perf_counter()
    wf.launch(url)
    launched = time.perf_counter() - t0
    pending = f"SELECT COUNT(*) FROM {table} WHERE status = 'PENDING'"
    while sql.q(pending)[0][0] > 0:
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    ok = sql.q(
        f"SELECT COUNT(*) FROM {table} WHERE status = 'SUCCESS' AND executor_id <> %s",
        (DEAD_EXECUTOR,),
    )
    sql.close()
    wf.shutdown()
    reply({"elapsed": elapsed, "launch": launched, "success": ok[0][0], "n": n})


def run(url: str, n: int, reps: int) -> dict[str, Any]:
    times, launches = [], []
    done = 0
    for rep in range(reps):
        seed(url, n, rep)
        a = Agent(f"recovery-{rep}", "bench.recovery_bench", "child", url, str(n))
        r = a.ready
        a.proc.wait()
        done += n
        if r["success"] < done:
            raise RuntimeError(f"recovery: {r['success']} SUCCESS of {done} expected")
        times.append(r["elapsed"])
        launches.append(r["launch"])
        log(
            f"  recovery rep {rep + 1}: {n} workflows in {r['elapsed']:.2f}s (launch() {r['launch'] * 1000:.0f} ms)"
        )
    return {"seconds": summary(times), "launch_seconds": summary(launches), "n": n}


def main(argv: list[str]) -> int:
    """``python -m bench.recovery_bench [-n N] [--reps R] [--pg URL] [--no-sqlite]``:
    this scenario alone, on a fresh Postgres database and a fresh SQLite file,
    printing the median (and every repetition) per backend."""
    import argparse
    import shutil
    import tempfile
    from pathlib import Path

    from bench.common import DEFAULT_PG_URL, drop_database, recreate_database, sqlite_url

    p = argparse.ArgumentParser(prog="python -m bench.recovery_bench", description=main.__doc__)
    p.add_argument("-n", type=int, default=10_000, help="workflows (default %(default)s)")
    p.add_argument("--reps", type=int, default=3, help="repetitions (default %(default)s)")
    p.add_argument("--pg", default=DEFAULT_PG_URL, help="Postgres admin URL")
    p.add_argument("--no-sqlite", action="store_true", help="Postgres only")
    p.add_argument("--no-pg", action="store_true", help="SQLite only")
    args = p.parse_args(argv)
    out: dict[str, Any] = {}
    if not args.no_pg:
        url = recreate_database(args.pg, "wf_bench_recovery")
        try:
            out["Postgres"] = run(url, args.n, args.reps)
        finally:
            drop_database(args.pg, "wf_bench_recovery")
    if not args.no_sqlite:
        tmp = Path(tempfile.mkdtemp(prefix="wf-recovery-"))
        try:
            out["SQLite"] = run(sqlite_url(tmp / "recovery.sqlite"), args.n, args.reps)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    for backend, r in out.items():
        s = r["seconds"]
        print(
            f"{backend}: recovery of {r['n']:,} workflows, median {s['median']:.2f} s "
            f"(p10 {s['p10']:.2f}, p90 {s['p90']:.2f}, {s['n']} runs)"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(main(sys.argv[1:]))
