"""Where a sequential step's time goes: ``python -m bench.profiling``.

Runs the sequential 10-step workflow on a fresh Postgres database (or
``--sqlite``) three ways, in one process, after a warm-up:

1. plain, interleaved with the raw-commit floor: ms per step vs ms per commit;
2. with every psycopg ``Cursor.execute`` timed and classified (wf's fast lane
   and SQLAlchemy both end there): round trips per workflow, by statement,
   and the time inside the driver (network, server, commit) vs the rest
   (Python: wf, SQLAlchemy, JSON, threads);
3. under cProfile: the functions that cost the most, in µs per step.

Writes the report to ``--out`` (default bench/profile.txt) and prints it."""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench.common import BENCH_DIR, DEFAULT_PG_URL, drop_database, recreate_database, sqlite_url

STEPS = 10


def _classify(sql: str) -> str:
    s = " ".join(str(sql).split())
    m = re.match(
        r"(?i)(INSERT INTO \S+|UPDATE \S+|DELETE FROM \S+|SELECT .*? FROM \S+|\w+(?: \w+)?)", s
    )
    head = m.group(1) if m else s[:40]
    if len(head) > 70:
        head = head[:67] + "..."
    return head


def _thread_group() -> str:
    """The calling thread's name without its pool index (wf-workflow_3 -> wf-workflow)."""
    return re.sub(r"[_-]\d+$", "", threading.current_thread().name)


class DriverTimer:
    """Times every psycopg ``Cursor.execute`` (outermost call per thread),
    by statement, and by thread group and statement."""

    def __init__(self) -> None:
        import psycopg

        self.cls = psycopg.Cursor
        self.original = self.cls.execute
        self.local = threading.local()
        self.count: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.by_thread: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0, 0.0])
        self.lock = threading.Lock()
        self.enabled = True  # off while the floor is sampled in between

    def __enter__(self) -> DriverTimer:
        original, local = self.original, self.local

        def execute(cur: Any, query: Any, *args: Any, **kwargs: Any) -> Any:
            if getattr(local, "busy", False) or not self.enabled:
                return original(cur, query, *args, **kwargs)
            local.busy = True
            t = time.perf_counter()
            try:
                return original(cur, query, *args, **kwargs)
            finally:
                dt = time.perf_counter() - t
                local.busy = False
                key = _classify(
                    query
                    if isinstance(query, str)
                    else getattr(query, "as_string", lambda _c: str(query))(None)
                )
                group = _thread_group()
                with self.lock:
                    self.count[key] += 1
                    self.seconds[key] += dt
                    self.samples[key].append(dt)
                    slot = self.by_thread[group, key]
                    slot[0] += 1
                    slot[1] += dt

        self.cls.execute = execute  # type: ignore[method-assign,assignment]
        return self

    def __exit__(self, *_: Any) -> None:
        self.cls.execute = self.original  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m bench.profiling", description=__doc__.splitlines()[0]
    )
    p.add_argument(
        "--pg",
        default=DEFAULT_PG_URL,
        metavar="URL",
        help="Postgres admin URL (default %(default)s)",
    )
    p.add_argument("--sqlite", action="store_true", help="profile on a SQLite file instead")
    p.add_argument(
        "--kind",
        choices=("step", "transaction"),
        default="step",
        help="what the 10 calls are: trivial steps (default) or trivial transactions",
    )
    p.add_argument(
        "--recovery",
        type=int,
        metavar="N",
        help="instead: seed N PENDING one-step workflows of a dead executor, wf.launch() here, and "
        "show the round trips of the recovery, by thread (Postgres)",
    )
    p.add_argument(
        "--workflows", type=int, default=300, help="workflows per phase (default %(default)s)"
    )
    p.add_argument(
        "--out", default=str(BENCH_DIR / "profile.txt"), help="report file (default %(default)s)"
    )
    args = p.parse_args(argv)

    import logging

    import wf

    from bench.floor import PgFloor, SqliteFloor
    from bench.workloads import WORKFLOWS, steps_workflow

    workload = WORKFLOWS[args.kind]

    logging.basicConfig(level=logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="wf-profile-"))
    if args.sqlite:
        url = sqlite_url(tmp / "profile.sqlite")
        floor: Any = SqliteFloor(tmp / "floor.sqlite")
    else:
        url = recreate_database(args.pg, "wf_bench_profile")
        floor = PgFloor(url)
    n = args.workflows
    out = io.StringIO()

    def say(line: str = "") -> None:
        print(line)
        out.write(line + "\n")

    if args.recovery:
        try:
            recovery_profile(url, args.recovery, say)
        finally:
            floor.close()
            if not args.sqlite:
                drop_database(args.pg, "wf_bench_profile")
            shutil.rmtree(tmp, ignore_errors=True)
        Path(args.out).write_text(out.getvalue())
        print(f"(written to {args.out})", file=sys.stderr)
        return 0

    wf.launch(url)
    try:
        for _ in range(30):
            workload(STEPS)
            steps_workflow(0)

        # 1. plain timing, interleaved with the floor, in batches of 10
        wf_ms: list[float] = []
        empty_ms: list[float] = []
        floor_ms: list[float] = []
        for _ in range(max(1, n // 10)):
            floor_ms += [x * 1000 for x in floor.sample(20)]
            for _ in range(10):
                t = time.perf_counter()
                workload(STEPS)
                wf_ms.append((time.perf_counter() - t) * 1000)
            for _ in range(3):
                t = time.perf_counter()
                steps_workflow(0)
                empty_ms.append((time.perf_counter() - t) * 1000)
        w, e, f = statistics.median(wf_ms), statistics.median(empty_ms), statistics.median(floor_ms)
        kind = args.kind
        say(
            f"# wf profile of the sequential {STEPS}-{kind} workflow ({'SQLite' if args.sqlite else 'Postgres'})"
        )
        say(f"# {time.strftime('%Y-%m-%d %H:%M %Z')}, {n} workflows per phase, medians")
        say()
        say("## 1. Plain timing (no instrumentation)")
        say(f"raw commit (floor)              {f:8.3f} ms")
        say(
            f"{f'{STEPS}-{kind} workflow':32}{w:8.3f} ms  = {w / STEPS:.3f} ms per {kind} = {w / STEPS / f:.2f}× floor"
        )
        say(f"{'0-step workflow':32}{e:8.3f} ms  = {e / f:.2f}× floor (start + finish)")
        say(
            f"{f'marginal {kind} (10 − 0) / 10':32}{(w - e) / STEPS:8.3f} ms  = {(w - e) / STEPS / f:.2f}× floor"
        )
        say()

        # 2. driver time and round trips
        if not args.sqlite:
            walls: list[float] = []
            floor2: list[float] = []
            with DriverTimer() as dt:
                for i in range(n):
                    if i % 10 == 0:
                        dt.enabled = False
                        floor2 += [x * 1000 for x in floor.sample(20)]
                        dt.enabled = True
                    t = time.perf_counter()
                    workload(STEPS)
                    walls.append(time.perf_counter() - t)
            f2 = statistics.median(floor2)
            total_wall = sum(walls)
            total_driver = sum(dt.seconds.values())
            trips = sum(dt.count.values())
            say(
                "## 2. Round trips and time inside the driver (psycopg Cursor.execute), per workflow"
            )
            say(f"{'statement':66} {'calls':>6} {'median':>7} {'mean':>7} {'ms/wf':>7}")
            for key in sorted(dt.seconds, key=lambda k: -dt.seconds[k]):
                c, s = dt.count[key], dt.seconds[key]
                med = statistics.median(dt.samples[key]) * 1000
                say(
                    f"{key[:66]:66} {c / n:6.2f} {med:7.3f} {s / c * 1000:7.3f} {s / n * 1000:7.3f}"
                )
            say(
                f"{'total':66} {trips / n:6.2f} {'':7} {total_driver / trips * 1000:7.3f} "
                f"{total_driver / n * 1000:7.3f}"
            )
            say()
            say(
                f"wall {total_wall / n * 1000:.3f} ms per workflow (instrumented) = driver "
                f"{total_driver / n * 1000:.3f} ms ({total_driver / total_wall:.0%}) + outside the driver "
                f"{(total_wall - total_driver) / n * 1000:.3f} ms ({1 - total_driver / total_wall:.0%})"
            )
            say(
                f"per {kind}: {total_wall / n / STEPS * 1000:.3f} ms wall, {total_driver / n / STEPS * 1000:.3f} ms in "
                f"the driver, {(total_wall - total_driver) / n / STEPS * 1000:.3f} ms outside it; floor "
                f"{f2:.3f} ms (median, sampled between these workflows)"
            )
            say()

        # 4 (reported after 3). the step's INSERT, piece by piece
        variants = [] if args.sqlite or args.kind != "step" else insert_variants(url, n * 2)

        # 3. cProfile
        prof = cProfile.Profile()
        t = time.perf_counter()
        prof.enable()
        for _ in range(n):
            workload(STEPS)
        prof.disable()
        wall = time.perf_counter() - t
        steps_total = n * STEPS
        say(f"## 3. cProfile ({wall / steps_total * 1e6:.0f} µs per {kind} under the profiler)")
        stats = pstats.Stats(prof)
        for order, label in (("tottime", "own time"), ("cumulative", "cumulative time")):
            say(f"### top functions by {label}, µs per {kind} (calling thread only)")
            say(f"{'µs/call':>8} {'calls/call':>10}  function")
            entries = sorted(
                stats.stats.items(),  # type: ignore[attr-defined]
                key=lambda kv: -(kv[1][2] if order == "tottime" else kv[1][3]),
            )
            for (file, line, fn), (_cc, nc, tt, ct, _callers) in entries[:30]:
                v = tt if order == "tottime" else ct
                where = f"{_short(file)}:{line}({fn})" if line else fn
                say(f"{v / steps_total * 1e6:8.1f} {nc / steps_total:10.2f}  {where}")
            say()
        if variants:
            say("## 4. The step's write, piece by piece (psycopg, prepared, autocommit; medians)")
            say(
                "Each line adds one thing to the line above; the last is wf's own SystemDatabase.record_step."
            )
            for label, value in variants:
                say(
                    f"{value:8.3f} ms  {label}" if isinstance(value, float) else f"{value}  {label}"
                )
            say()
    finally:
        wf.shutdown()
        floor.close()
        if not args.sqlite:
            drop_database(args.pg, "wf_bench_profile")
        shutil.rmtree(tmp, ignore_errors=True)
    Path(args.out).write_text(out.getvalue())
    print(f"(written to {args.out})", file=sys.stderr)
    return 0


def insert_variants(url: str, n: int) -> list[tuple[str, float | str]]:
    """One durable write per op, from the floor's INSERT up to wf's step
    record, interleaved in rounds so disk drift hits every variant alike."""
    import psycopg
    from wf._sysdb import SystemDatabase

    from bench.common import psycopg_url

    sysdb = SystemDatabase(url)
    wid, eid = "profile-variants", "profile-executor"
    sysdb.insert_workflow(
        workflow_id=wid, status="PENDING", name="x:y", inputs="{}", executor_id=eid
    )
    conn = psycopg.connect(psycopg_url(url), autocommit=True)
    cols = "(workflow_id, position, name, kind, output, started_at, ended_at)"
    vals = "%(w)s, %(p)s, 'noop_step', 'step', '1', %(t)s, %(t)s"
    owned = "SELECT 1 FROM wf.workflows WHERE workflow_id = %(w)s AND status = 'PENDING' AND executor_id = %(e)s"
    conflict = "ON CONFLICT (workflow_id, position) DO NOTHING"
    sqls = {
        "floor: INSERT ... ON CONFLICT DO NOTHING into a 2-column table": (
            "INSERT INTO bench_floor (k, v) VALUES (%(w)s || '-' || %(p)s, 'x') ON CONFLICT DO NOTHING"
        ),
        "INSERT into wf.steps (its primary key, its foreign key to wf.workflows)": (
            f"INSERT INTO wf.steps {cols} VALUES ({vals}) {conflict}"
        ),
        "+ WHERE EXISTS (the workflow is PENDING and ours)": (
            f"INSERT INTO wf.steps {cols} SELECT {vals} WHERE EXISTS ({owned}) {conflict}"
        ),
        "+ FOR SHARE on the workflow row (wf's statement)": (
            f"INSERT INTO wf.steps {cols} SELECT {vals} WHERE EXISTS ({owned} FOR SHARE) {conflict}"
        ),
    }
    times: dict[str, list[float]] = defaultdict(list)
    broken: dict[str, str] = {}
    pos = 100_000
    label_lib = "wf's SystemDatabase.record_step (the above, through wf's Python)"
    for _ in range(max(1, n // 50)):
        for label, sql in sqls.items():
            if label in broken:
                continue
            for _ in range(50):
                pos += 1
                t = time.perf_counter()
                try:
                    conn.execute(sql, {"w": wid, "p": pos, "e": eid, "t": 0}, prepare=True)
                except psycopg.Error as e:
                    broken[label] = f"skipped: {type(e).__name__}: {str(e).splitlines()[0]}"
                    break
                times[label].append((time.perf_counter() - t) * 1000)
        for _ in range(50):
            pos += 1
            t = time.perf_counter()
            sysdb.record_step(wid, eid, pos, "noop_step", "step", "1", None, 0)
            times[label_lib].append((time.perf_counter() - t) * 1000)
    conn.close()
    sysdb.dispose()
    out: list[tuple[str, float | str]] = []
    for label in [*sqls, label_lib]:
        out.append((label, broken.get(label) or statistics.median(times[label])))
    return out


def recovery_profile(url: str, n: int, say: Any) -> None:
    """Round trips of recovering ``n`` workflows, by thread group and statement."""
    import wf

    from bench.queue_bench import _Sql
    from bench.recovery_bench import seed

    seed(url, n, 0)
    sql = _Sql(url)
    table = "wf.workflows" if sql.pg else "workflows"
    with DriverTimer() as dt:
        t0 = time.perf_counter()
        wf.launch(url)
        polls = 0
        while sql.q(f"SELECT COUNT(*) FROM {table} WHERE status = 'PENDING'")[0][0] > 0:
            polls += 1
            time.sleep(0.1)
        wall = time.perf_counter() - t0
    wf.shutdown()
    sql.close()
    say(f"# wf recovery of {n:,} PENDING one-step workflows ({time.strftime('%Y-%m-%d %H:%M %Z')})")
    say(
        f"wall {wall:.2f} s from wf.launch() to no PENDING row = {wall / n * 1000:.2f} ms per workflow"
    )
    say("(MainThread's COUNT(*) is this script polling every 100 ms)")
    say()
    say(f"{'thread':20} {'statement':60} {'calls/wf':>8} {'ms/call':>8} {'s total':>8}")
    for (group, key), (c, secs) in sorted(
        dt.by_thread.items(), key=lambda kv: (kv[0][0], -kv[1][1])
    ):
        say(f"{group:20} {key[:60]:60} {c / n:8.3f} {secs / c * 1000:8.3f} {secs:8.2f}")
    say()
    for group in sorted({g for g, _ in dt.by_thread}):
        busy = sum(v[1] for (g, _), v in dt.by_thread.items() if g == group)
        say(f"{group:20} {busy:8.2f} s inside the driver ({busy / wall:.0%} of the wall time)")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/runtime/", "/bench/", "/lib/python3"):
        i = path.find(marker)
        if i >= 0:
            return ("wf/" if marker == "/runtime/" else "") + path[i + len(marker) :]
    return path


if __name__ == "__main__":
    raise SystemExit(main())
