"""Garbage collection under load (issue 15 part 2), standalone:
``python -m bench.gc_bench [--rows N] [--threads T] [--pg URL]``.

1. A fresh Postgres database gets wf's schema, then N (default 1,000,000)
   ended workflows, bulk-loaded with generate_series: 1 % ERROR, the rest
   SUCCESS, each with one recorded step (so a collection deletes 2N rows),
   every 100th with a log line; their ages spread evenly from 12 days to 2.
2. This process launches wf and runs T (default 16) threads, each starting
   a 10-step workflow after another; steps/s is sampled every second.
3. Ten rounds, interleaved so that a drift of the machine's load (a shared
   machine) hits both sides alike: BASELINE seconds without collection, then
   ``wf gc --older-than Kd`` in another process (how an operator's cron job
   or a second worker would run it), K from 11 down to 2, each collecting a
   tenth of the rows.

Prints one JSON document: the time to collect the N workflows (the sum of
the ten runs, each a fresh process), the workload's steps/s without and
during collection (medians of the per-second samples) and their ratio. Not
part of ``python -m bench``: loading 1M rows alone takes longer than a
minute."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import threading
import time
from typing import Any

import wf

from bench.common import (
    DEFAULT_PG_URL,
    PY,
    child_env,
    drop_database,
    log,
    pg_settings,
    psycopg_url,
    recreate_database,
    wf_command,
)

DBNAME = "wf_gc_bench"
# a worker's retention pass (wf/_worker/gc.py: collect with PACE) in a process of its own
PACED = """
import json, sys, time
import wf
from wf import _root
from wf._sysdb.retention import collect
from wf._worker.gc import PACE
wf.configure(database_url=sys.argv[1])
cutoff = int(time.time() * 1000) - int(sys.argv[2]) * 86_400_000
print(json.dumps({"deleted": collect(_root.client(), None, cutoff_ms=cutoff, pace=PACE)}))
"""
BASELINE = 6.0
ROUNDS = 10
DAY_MS = 86_400_000


@wf.step()
def tick(i: int) -> int:
    return i


@wf.workflow()
def ten_steps() -> int:
    for i in range(10):
        tick(i)
    return 10


def load(url: str, n: int) -> float:
    """Bulk-load ``n`` ended workflows, 12 to 2 days old, with one step each."""
    import psycopg

    t0 = time.perf_counter()
    base = int(time.time() * 1000) - (ROUNDS + 2) * DAY_MS
    step = ROUNDS * DAY_MS // n  # ms between two rows
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO wf.workflows (workflow_id, status, name, inputs, output, error, executor_id,
                priority, recovery_attempts, max_recovery_attempts, created_at, updated_at, started_at)
            SELECT 'old-' || g, CASE WHEN g %% 100 = 7 THEN 'ERROR' ELSE 'SUCCESS' END,
                'bench.gc_bench:ten_steps', '{"args":[],"kwargs":{}}',
                CASE WHEN g %% 100 = 7 THEN NULL ELSE '10' END,
                CASE WHEN g %% 100 = 7 THEN '{"type":"builtins.ValueError","message":"boom"}' END,
                'bench-loader', 0, 0, 50, %(base)s + g * %(step)s, %(base)s + g * %(step)s + 1,
                %(base)s + g * %(step)s
            FROM generate_series(0, %(n)s - 1) AS g""",
            {"base": base, "n": n, "step": step},
        )
        conn.execute(
            """
            INSERT INTO wf.steps (workflow_id, position, name, kind, output, started_at, ended_at)
            SELECT 'old-' || g, 0, 'bench.gc_bench:tick', 'step', '0', %(base)s + g, %(base)s + g
            FROM generate_series(0, %(n)s - 1) AS g""",
            {"base": base, "n": n},
        )
        conn.execute(
            """
            INSERT INTO wf.logs (workflow_id, position, seq, time, level, step, message)
            SELECT 'old-' || g, 0, 0, %(base)s + g, 'INFO', 'tick', 'a line'
            FROM generate_series(0, %(n)s - 1, 100) AS g""",
            {"base": base, "n": n},
        )
        for table in ("workflows", "steps", "logs"):
            conn.execute(f"VACUUM ANALYZE wf.{table}")
    return time.perf_counter() - t0


class Workload:
    """``threads`` threads running ten_steps back to back; counts steps."""

    def __init__(self, threads: int) -> None:
        self.steps = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                ten_steps()
            except BaseException as e:  # reported at the end
                self.errors.append(e)
                return
            with self.lock:
                self.steps += 10

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def rate_while(self, keep_going: Any, seconds: float | None = None) -> list[float]:
        """Steps/s per second while ``keep_going()`` (or for ``seconds``),
        checked every 20 ms; a last partial second counts if it is >= 0.5 s."""
        samples = []
        end = None if seconds is None else time.monotonic() + seconds
        last, t_last = self.steps, time.monotonic()
        while True:
            going = (end is None or time.monotonic() < end) and keep_going()
            now = time.monotonic()
            if now - t_last >= 1.0 or (not going and now - t_last >= 0.5):
                n = self.steps
                samples.append((n - last) / (now - t_last))
                last, t_last = n, now
            if not going:
                return samples
            time.sleep(0.02)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)


def old_rows_left(url: str) -> int:
    import psycopg

    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM wf.workflows WHERE workflow_id LIKE 'old-%'")
        return int(row.fetchone()[0])  # type: ignore[index]


def explain(url: str) -> str:
    """The plan of a collection's batch query at this size."""
    import psycopg

    cutoff = int(time.time() * 1000) - DAY_MS
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        rows = conn.execute(
            """EXPLAIN SELECT created_at, workflow_id FROM wf.workflows
            WHERE (created_at, workflow_id) > (%(c)s, '') AND created_at <= %(cutoff)s
                AND updated_at <= %(cutoff)s AND parent_workflow_id IS NULL
                AND status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'RETRIES_EXCEEDED')
            ORDER BY created_at, workflow_id LIMIT 1000 FOR UPDATE SKIP LOCKED""",
            {"c": -(2**62), "cutoff": cutoff},
        ).fetchall()
    return "\n".join(r[0] for r in rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--pg", default=DEFAULT_PG_URL, help="admin URL of the Postgres server")
    ap.add_argument("--keep", action="store_true", help="keep the bench database afterwards")
    ap.add_argument(
        "--paced",
        action="store_true",
        help="collect as a worker's retention loop does (paced: a pause as long as each batch) "
        "instead of with `wf gc` at full speed",
    )
    args = ap.parse_args()
    cli = wf_command()
    assert cli is not None, "the wf CLI is not installed"

    url = recreate_database(args.pg, DBNAME)
    try:
        wf.migrate(url)
        log(f"loading {args.rows:,} ended workflows")
        load_s = load(url, args.rows)
        log(f"loaded in {load_s:.1f}s")
        plan = explain(url)
        wf.launch(database_url=url)
        work = Workload(args.threads)
        work.start()
        work.rate_while(lambda: True, 3.0)  # warm up
        without: list[float] = []
        during: list[float] = []
        gc_s = 0.0
        deleted = 0
        for k in range(ROUNDS + 1, 1, -1):
            without += work.rate_while(lambda: True, BASELINE)
            t0 = time.perf_counter()
            command = [*cli, "gc", "--older-than", f"{k}d", "--db", url, "-o", "json"]
            if args.paced:
                command = [PY, "-c", PACED, url, str(k)]
            proc = subprocess.Popen(
                command,
                env=child_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            during += work.rate_while(lambda p=proc: p.poll() is None)
            out, err = proc.communicate()
            took = time.perf_counter() - t0
            assert proc.returncode == 0, err
            n = json.loads(out)["deleted"]
            gc_s += took
            deleted += n
            log(
                f"  --older-than {k}d: {n:,} in {took:.1f}s; steps/s "
                f"{statistics.median(without[-int(BASELINE) :]):,.0f} without, "
                f"{statistics.median(during[-max(1, int(took)) :] or [0]):,.0f} during"
            )
        work.finish()
        assert not work.errors, work.errors[:3]
        left = old_rows_left(url)
        doc = {
            "rows": args.rows,
            "threads": args.threads,
            "mode": "paced (a worker's retention loop)" if args.paced else "wf gc (full speed)",
            "load_s": round(load_s, 1),
            "gc_deleted": deleted,
            "gc_s": round(gc_s, 1),
            "gc_workflows_per_s": round(deleted / gc_s),
            "steps_per_s_without_gc": round(statistics.median(without)),
            "steps_per_s_during_gc": round(statistics.median(during)),
            "ratio_during_vs_without": round(
                statistics.median(during) / statistics.median(without), 3
            ),
            "ended_workflows_left": left,
            "postgres": pg_settings(url),
            "batch_plan": plan,
        }
        print(json.dumps(doc, indent=2))
    finally:
        wf.shutdown()
        if not args.keep:
            drop_database(args.pg, DBNAME)


if __name__ == "__main__":
    main()
