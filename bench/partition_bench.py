"""The partitioned dequeue at scale: 10,000 ENQUEUED workflows over 1,000
partitions of one queue (half of the partitions with a workflow running),
``partition_concurrency=1``. Timed: one dequeue of 16 through wf's own
``SystemDatabase.dequeue`` (the statement the worker sends, with its lock and
transaction), and the same for a queue of the same size without partitions
for comparison; the partitioned candidates statement is EXPLAINed.

    python -m bench.partition_bench [--pg URL] [--n 10000] [--partitions 1000]

Postgres only (the partition query's plan is the point); the rows are
bulk-loaded with generate_series into a fresh database."""

from __future__ import annotations

import statistics
import time
from typing import Any

from bench.common import drop_database, log, psycopg_url, recreate_database

NAME = "bench.workloads:one_step_workflow"


def _load(url: str, n: int, partitions: int) -> None:
    import psycopg

    now = int(time.time() * 1000) - n
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        # waiting: n over `partitions` partitions of queue "parts", and n on "plain"
        for queue, part in (("parts", f"'p' || (g %% {partitions})"), ("plain", "NULL")):
            conn.execute(
                f"""
                INSERT INTO wf.workflows (workflow_id, status, name, inputs, queue, priority,
                    recovery_attempts, max_recovery_attempts, created_at, updated_at, partition_key)
                SELECT %(q)s || '-' || g, 'ENQUEUED', %(name)s, '{{"args":[],"kwargs":{{}}}}',
                    %(q)s, 0, 0, 50, %(now)s + g, %(now)s + g, {part}
                FROM generate_series(0, %(n)s - 1) AS g""",
                {"q": queue, "name": NAME, "now": now, "n": n},
            )
        # running: one in each even partition
        conn.execute(
            f"""
            INSERT INTO wf.workflows (workflow_id, status, name, inputs, queue, priority, executor_id,
                recovery_attempts, max_recovery_attempts, created_at, updated_at, started_at,
                partition_key, slot_held)
            SELECT 'run-' || g, 'PENDING', %(name)s, '{{"args":[],"kwargs":{{}}}}', 'parts', 0,
                'bench-other', 0, 50, %(now)s, %(now)s, %(now)s, 'p' || (g * 2), 1
            FROM generate_series(0, {partitions // 2} - 1) AS g""",
            {"name": NAME, "now": now},
        )
        conn.execute("VACUUM ANALYZE wf.workflows")


def _time_dequeue(db: Any, queue: str, parts: int | None, rounds: int) -> list[float]:
    """Median-able times of dequeueing 16, each taken batch put back (so every
    round sees the same table)."""
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        taken = db.dequeue(
            queue,
            "bench-executor",
            16,
            [NAME],
            concurrency=None if parts is None else 100_000,
            rate_limit=None,
            partition_concurrency=parts,
        )
        out.append((time.perf_counter() - t0) * 1000)
        for c in taken:
            db.release_taken(c.workflow_id, "bench-executor")
    return out


def run(admin_url: str, n: int, partitions: int, rounds: int = 30) -> dict[str, Any]:
    from wf._sysdb import SystemDatabase
    from wf._sysdb.queries import render

    url = recreate_database(admin_url, "wf_bench_partitions")
    db = SystemDatabase(url.replace("postgresql://", "postgresql+psycopg://", 1), outage_timeout=0)
    try:
        db.ensure_reachable()
        db.migrate()
        _load(url, n, partitions)
        part = _time_dequeue(db, "parts", 1, rounds)
        plain = _time_dequeue(db, "plain", None, rounds)
        import psycopg

        sql = render(
            "queue_candidates_partitioned",
            db.backend,
            app_version_terms="",
            app_version_stamp="",
        )
        from wf._sysdb.driver import expand_lists, to_pyformat

        params = {
            "queue": "parts",
            "now": int(time.time() * 1000),
            "names": [NAME],
            "n": 16,
            "app_version": None,
            "p_concurrency": 1,
            "p_rate": 2**31 - 1,
            "p_since": int(time.time() * 1000),
        }
        text, bound = expand_lists(sql, params)
        with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
            plan = "\n".join(
                r[0]
                for r in conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS) " + to_pyformat(text), bound
                ).fetchall()
            )
        return {
            "n": n,
            "partitions": partitions,
            "partitioned_ms": statistics.median(part),
            "plain_ms": statistics.median(plain),
            "plan": plan,
        }
    finally:
        db.dispose()
        drop_database(admin_url, "wf_bench_partitions")


def main(argv: list[str] | None = None) -> int:
    """Time the partitioned dequeue at scale and EXPLAIN it."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.partition_bench", description=main.__doc__)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--partitions", type=int, default=1_000)
    args = p.parse_args(argv)
    r = run(args.pg, args.n, args.partitions)
    log(
        f"dequeue 16 of {r['n']:,} enqueued over {r['partitions']:,} partitions "
        f"(partition_concurrency=1, half the partitions busy): {r['partitioned_ms']:.2f} ms; "
        f"the same queue size without partitions: {r['plain_ms']:.2f} ms"
    )
    print(r["plan"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
