"""The client's CPU per step: ``python -m bench.cpu_bench``.

Sixteen workflow threads share this machine's two cores with Postgres, so
what a step costs the Python process in CPU bounds the concurrent rows more
than any round trip does. This runs, in one process on a fresh Postgres
database, waves of 16 × 10-step workflows (``wf.start``, then each
handle's ``result()``) and sequential 10-step workflows, and reports steps/s
and the process's CPU (``getrusage``: user + system, every thread) per step,
beside the raw-commit loop's CPU per commit. To compare two versions of wf,
run it twice in alternation with ``PYTHONPATH`` pointing at the other one."""

from __future__ import annotations

import argparse
import resource
import statistics
import time

from bench.common import DEFAULT_PG_URL, drop_database, psycopg_url, recreate_database

WIDTH = 16
STEPS = 10


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _floor(url: str, n: int) -> tuple[float, float]:
    """ms and µs of CPU per raw autocommitted INSERT."""
    import psycopg

    with psycopg.connect(psycopg_url(url), autocommit=True) as c:
        c.execute("CREATE TABLE IF NOT EXISTS cpu_floor (k TEXT PRIMARY KEY)")
        cur = c.cursor()
        t, cpu = time.perf_counter(), _cpu()
        for i in range(n):
            cur.execute("INSERT INTO cpu_floor VALUES (%s) ON CONFLICT DO NOTHING", (f"{i}",))
        return (time.perf_counter() - t) / n * 1e3, (_cpu() - cpu) / n * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pg", default=DEFAULT_PG_URL, help="Postgres admin URL")
    ap.add_argument("--waves", type=int, default=30, help="concurrent waves (default 30)")
    ap.add_argument("--seq", type=int, default=30, help="sequential workflows (default 30)")
    args = ap.parse_args(argv)

    import wf

    from bench.workloads import steps_workflow

    url = recreate_database(args.pg, "wf_bench_cpu")
    try:
        floor_ms, floor_cpu = _floor(url, 500)
        wf.launch(url)
        try:
            for _ in range(3):  # warm: connections, prepared statements, threads
                for h in [wf.start(steps_workflow, STEPS) for _ in range(WIDTH)]:
                    h.result()
            rates, cpus = [], []
            for _ in range(args.waves):
                t, cpu = time.perf_counter(), _cpu()
                for h in [wf.start(steps_workflow, STEPS) for _ in range(WIDTH)]:
                    h.result()
                rates.append(WIDTH * STEPS / (time.perf_counter() - t))
                cpus.append((_cpu() - cpu) / (WIDTH * STEPS) * 1e6)
            t, cpu = time.perf_counter(), _cpu()
            for _ in range(args.seq):
                steps_workflow(STEPS)
            n = args.seq * STEPS
            seq_ms, seq_cpu = (time.perf_counter() - t) / n * 1e3, (_cpu() - cpu) / n * 1e6
        finally:
            wf.shutdown()
    finally:
        drop_database(args.pg, "wf_bench_cpu")
    print(f"floor: {floor_ms:.3f} ms a commit, {floor_cpu:.0f} µs of CPU")
    print(
        f"{WIDTH} × {STEPS}-step at once: {statistics.median(rates):,.0f} steps/s, "
        f"{statistics.median(cpus):.0f} µs of CPU a step (medians of {args.waves} waves)"
    )
    print(f"sequential: {seq_ms:.3f} ms a step, {seq_cpu:.0f} µs of CPU a step")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
