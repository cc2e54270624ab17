"""What one workflow and one step cost the database, counted rather than
timed: statements (wf's own count of what it sends, BEGIN and COMMIT of
its transactions not counted), commits (pg_stat_database.xact_commit) and WAL bytes
(pg_current_wal_lsn) per 0-step workflow, per 10-step workflow and per
queued 1-step workflow, in this process on a fresh database.

    python -m bench.footprint [--pg URL] [--count N]

The README's "Scaling" section quotes its output."""

from __future__ import annotations

import argparse
import json
from typing import Any

import psycopg

from bench.common import DEFAULT_PG_URL, drop_database, psycopg_url, recreate_database

DB = "wf_bench_footprint"


def _counters(url: str) -> tuple[int, int]:
    # a fresh connection each time: a backend publishes its counts when it ends
    with psycopg.connect(psycopg_url(url), autocommit=True) as c:
        c.execute("SELECT pg_stat_clear_snapshot()")
        row = c.execute(
            "SELECT xact_commit, pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint "
            "FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def measure(url: str, count: int) -> dict[str, Any]:
    import wf
    from wf._sysdb import driver

    from bench import workloads

    queue = wf.Queue("footprint")
    wf.launch(url)
    statements = [0]
    run, execute = driver.Pool.run, driver.RawConnection.execute

    def counted(self: Any, sql: str, params: Any) -> Any:
        statements[0] += 1
        return run(self, sql, params)

    def counted_in_tx(self: Any, sql: str, params: Any = None) -> Any:
        statements[0] += 1
        return execute(self, sql, params)

    driver.Pool.run = counted  # type: ignore[method-assign]
    driver.RawConnection.execute = counted_in_tx  # type: ignore[method-assign]
    out: dict[str, Any] = {}
    try:
        cases = {
            "0-step workflow": lambda: workloads.steps_workflow(0),
            "10-step workflow": lambda: workloads.steps_workflow(10),
            "queued 1-step workflow (enqueue, dequeue, run)": lambda: queue.enqueue(
                workloads.one_step_workflow, 1
            ).result(),
        }
        for name, fn in cases.items():
            for _ in range(20):
                fn()  # warm: prepared statements, pools
            wf.shutdown()
            wf.launch(url)
            c0, w0 = _counters(url)
            s0 = statements[0]
            for _ in range(count):
                fn()
            s1 = statements[0]
            wf.shutdown()  # the backends end and publish their commit counts
            c1, w1 = _counters(url)
            wf.launch(url)
            out[name] = {
                "statements": (s1 - s0) / count,
                "commits": (c1 - c0 - 1) / count,  # less the counter read itself
                "wal_bytes": (w1 - w0) / count,
            }
    finally:
        driver.Pool.run = run  # type: ignore[method-assign]
        driver.RawConnection.execute = execute  # type: ignore[method-assign]
        wf.shutdown()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pg", default=DEFAULT_PG_URL)
    ap.add_argument("--count", type=int, default=500)
    args = ap.parse_args()
    url = recreate_database(args.pg, DB)
    try:
        res = measure(url, args.count)
    finally:
        drop_database(args.pg, DB)
    print(json.dumps(res, indent=2))
    print("| per | statements | commits | WAL bytes |")
    print("|---|---|---|---|")
    for name, d in res.items():
        print(f"| {name} | {d['statements']:.1f} | {d['commits']:.1f} | {d['wal_bytes']:,.0f} |")


if __name__ == "__main__":
    main()
