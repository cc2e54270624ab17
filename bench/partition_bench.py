"""The partitioned dequeue at scale. Timed: one dequeue of 16 through wf's
own ``SystemDatabase.dequeue`` (the statements the worker sends, with its
lock and transaction), ``partition_concurrency=1``, on queues of ``--n``
ENQUEUED workflows each:

- *spread*: over ``--partitions`` partitions, half of them with a workflow
  running (the queue's head answers: the usual case);
- *skewed*: half of them in one partition enqueued first, the rest over
  ``--partitions`` partitions (the head is that one partition's backlog, so
  the statement reads on past it: its worst case);
- for comparison the same queue size without partitions, once with a
  concurrency limit (the same lock, count and takes, no partition terms)
  and once without limits (one statement, no lock).

The candidates statements are EXPLAINed (Postgres): the head's on the
spread queue, the whole one (sent after the head's) on the skewed.

    python -m bench.partition_bench [--pg URL | --sqlite] [--n 10000] [--partitions 1000]

The rows are bulk-loaded with one INSERT ... SELECT each into a fresh
database (Postgres) or a temporary SQLite file."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import drop_database, log, psycopg_url, recreate_database

NAME = "bench.workloads:one_step_workflow"
DBNAME = "wf_bench_partitions"

# the integers 0 .. :n - 1, on both backends
_SERIES = "WITH RECURSIVE g(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM g WHERE x < :n - 1) "
_COLUMNS = """INSERT INTO {s}workflows (workflow_id, status, name, inputs, queue, priority,
    recovery_attempts, max_recovery_attempts, created_at, updated_at, partition_key{extra}) """
_INPUTS = """'{"args":[],"kwargs":{}}'"""


def _load(db: Any, n: int, partitions: int) -> None:
    s = db.backend.schema_prefix
    now = int(time.time() * 1000) - 2 * n
    waiting = (
        # spread: n over `partitions` partitions
        ("parts", "'p' || (x % :parts)", ":now + x"),
        # skewed: n/2 of partition 'big' first, then n/2 over `partitions`
        ("skew", "CASE WHEN x < :n / 2 THEN 'big' ELSE 's' || (x % :parts) END", ":now + x"),
        # no partitions
        ("plain", "NULL", ":now + x"),
    )
    with db.transaction() as conn:
        for queue, part, created in waiting:
            conn.execute(
                _SERIES
                + _COLUMNS.format(s=s, extra="")
                + f"""SELECT :q || '-' || x, 'ENQUEUED', :name, {_INPUTS}, :q, 0, 0, 50,
                    {created}, {created}, {part} FROM g""",
                {"q": queue, "name": NAME, "now": now, "n": n, "parts": partitions},
            )
        # spread: one running in each even partition
        conn.execute(
            _SERIES
            + _COLUMNS.format(s=s, extra=", executor_id, started_at, slot_held")
            + f"""SELECT 'run-' || x, 'PENDING', :name, {_INPUTS}, 'parts', 0, 0, 50,
                :now, :now, 'p' || (x * 2), 'bench-other', :now, 1 FROM g""",
            {"name": NAME, "now": now, "n": partitions // 2},
        )


def _analyze(db: Any) -> None:
    if db.backend.listens:  # Postgres: outside a transaction
        import psycopg

        with psycopg.connect(psycopg_url(db.url), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE wf.workflows")
    else:
        db.execute("ANALYZE")


def _time_dequeue(
    db: Any, queue: str, concurrency: int | None, parts: int | None, rounds: int
) -> list[float]:
    """Times of dequeueing 16, each taken batch put back (so every round
    sees the same table)."""
    out = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        taken = db.dequeue(
            queue,
            "bench-executor",
            16,
            [NAME],
            concurrency=concurrency,
            rate_limit=None,
            partition_concurrency=parts,
        )
        out.append((time.perf_counter() - t0) * 1000)
        assert len(taken) == 16, (queue, len(taken))
        for c in taken:
            db.release_taken(c.workflow_id, "bench-executor")
    return out


def _explain(db: Any, queue: str, statement: str) -> str:
    """EXPLAIN (ANALYZE, BUFFERS) of a candidates statement the dequeue sends."""
    import psycopg
    from wf._sysdb.driver import expand_lists, to_pyformat
    from wf._sysdb.queries import render

    sql = render(statement, db.backend, app_version_terms="", app_version_stamp="")
    now = int(time.time() * 1000)
    params = {
        "queue": queue,
        "now": now,
        "names": [NAME],
        "n": 16,
        "app_version": None,
        "p_concurrency": 1,
        "p_rate": 2**31 - 1,
        "p_since": now,
    }
    text, bound = expand_lists(sql, params)
    with psycopg.connect(psycopg_url(db.url), autocommit=True) as conn:
        return "\n".join(
            r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) " + to_pyformat(text), bound)
        )


def run(admin_url: str | None, n: int, partitions: int, rounds: int = 30) -> dict[str, Any]:
    """``admin_url`` None: SQLite, in a temporary directory."""
    from wf._sysdb import SystemDatabase

    tmp = None
    if admin_url is None:
        tmp = tempfile.TemporaryDirectory()
        url = "sqlite:///" + str(Path(tmp.name) / "partitions.sqlite")
    else:
        url = recreate_database(admin_url, DBNAME)
        url = url.replace("postgresql://", "postgresql+psycopg://", 1)
    db = SystemDatabase(url, outage_timeout=0)
    try:
        db.ensure_reachable()
        db.migrate()
        _load(db, n, partitions)
        _analyze(db)
        out: dict[str, Any] = {
            "backend": db.backend.name,
            "n": n,
            "partitions": partitions,
            "spread_ms": statistics.median(_time_dequeue(db, "parts", 100_000, 1, rounds)),
            "skewed_ms": statistics.median(_time_dequeue(db, "skew", 100_000, 1, rounds)),
            "limited_ms": statistics.median(_time_dequeue(db, "plain", 100_000, None, rounds)),
            "plain_ms": statistics.median(_time_dequeue(db, "plain", None, None, rounds)),
        }
        if db.backend.listens:
            # spread: the head answers (the dequeue sends only that); skewed:
            # the dequeue then sends the whole statement, which reads on
            out["plan_spread"] = _explain(db, "parts", "queue_partition_head")
            out["plan_skewed"] = _explain(db, "skew", "queue_candidates_partition_heads")
        return out
    finally:
        db.dispose()
        if tmp is not None:
            tmp.cleanup()
        if admin_url is not None:
            drop_database(admin_url, DBNAME)


def main(argv: list[str] | None = None) -> int:
    """Time the partitioned dequeue at scale and EXPLAIN it."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m bench.partition_bench", description=main.__doc__)
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    p.add_argument("--sqlite", action="store_true", help="SQLite (a temporary file) instead")
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--partitions", type=int, default=1_000)
    args = p.parse_args(argv)
    r = run(None if args.sqlite else args.pg, args.n, args.partitions)
    log(
        f"{r['backend']}: dequeue 16 of {r['n']:,} enqueued (partition_concurrency=1): "
        f"over {r['partitions']:,} partitions, half of them busy: {r['spread_ms']:.2f} ms; "
        f"half of them in one partition at the head: {r['skewed_ms']:.2f} ms; "
        f"without partitions, concurrency-limited: {r['limited_ms']:.2f} ms, "
        f"unlimited: {r['plain_ms']:.2f} ms"
    )
    for shape, statement in (
        ("spread", "queue_partition_head"),
        ("skewed", "queue_candidates_partition_heads"),
    ):
        if "plan_" + shape in r:
            print(f"-- {shape}: {statement}")
            print(r["plan_" + shape])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
