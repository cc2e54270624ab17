"""The workflow's start and finish against the commit floor, with and without
schema 4 (NOTIFY only when someone registered interest), side by side.

    python -m bench.hotpath_bench [ADMIN_URL] [--seconds S] [--rounds R]

Two fresh databases on the same Postgres: ``wf_hot3`` migrated to schema 3
(every finish and enqueue notifies) and ``wf_hot4`` to the latest schema.
Interleaved rounds, so both see the same minute of the disk:

1. ``finishes``: C sessions (raw psycopg, one thread each) running wf's own
   ``insert_workflow`` + ``finish_workflow`` statements for fresh IDs:
   finishes/s, beside the C-thread raw commit floor of the same round.
2. ``zero``: a 0-step workflow through the public API (a child process per
   schema: ``wf.launch``, then calls of a workflow that returns at once),
   ms each and × the raw commit measured in the same process and minute.
3. ``conc``: 16 concurrent 10-step workflows in one process (``wf.start`` ×
   16, then ``result()``), steps/s, as a fraction of a 16-thread raw commit
   loop measured in the same process right after.

Medians over the rounds; the machine is shared, so read the ratios."""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

from bench.common import PY, REPO, child_env, log, psycopg_url, recreate_database
from bench.floor import PgConcurrentFloor, PgFloor, _Concurrent

DEFAULT_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _sql(name: str) -> str:
    from wf._sysdb import queries
    from wf._sysdb.dialects import PostgresDialect

    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", queries.render(name, PostgresDialect()))


def _migrate(url: str, version: int) -> None:
    from wf._sysdb import SystemDatabase
    from wf._sysdb import schema as wf_schema

    class Db(SystemDatabase):
        migrations = wf_schema.MIGRATIONS[:version]

    db = Db(url)
    db.ensure_reachable()
    assert db.migrate() == version
    db.dispose()


class Finishes(_Concurrent):
    """C sessions, each inserting a PENDING workflow and finishing it."""

    def __init__(self, url: str, connections: int) -> None:
        import psycopg

        conns = [psycopg.connect(psycopg_url(url), autocommit=True) for _ in range(connections)]
        insert, fin = _sql("insert_workflow"), _sql("finish_workflow")

        def op(conn: Any, key: str) -> None:
            now = int(time.time() * 1000)
            conn.execute(
                insert,
                {
                    "workflow_id": key,
                    "status": "PENDING",
                    "name": "bench:zero",
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
                },
                prepare=True,
            )
            conn.execute(
                fin,
                {
                    "status": "SUCCESS",
                    "output": "null",
                    "error": None,
                    "now": now,
                    "workflow_id": key,
                    "executor_id": "bench",
                },
                prepare=True,
            )

        super().__init__(conns, op)


# -- the child process: wf through its public API ------------------------------------------


def agent(url: str, version: int, rounds: int) -> None:
    import logging

    import wf
    from wf._sysdb import SystemDatabase
    from wf._sysdb import schema as wf_schema

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    SystemDatabase.migrations = wf_schema.MIGRATIONS[:version]

    @wf.workflow()
    def zero() -> None:
        return None

    @wf.step()
    def one(i: int) -> int:
        return i

    @wf.workflow()
    def ten() -> int:
        return sum(one(i) for i in range(10))

    wf.launch(url)
    floor = PgFloor(url)
    cfloor = PgConcurrentFloor(url, 16)
    for _ in range(30):  # warm
        zero()
    for h in [wf.start(ten) for _ in range(16)]:
        h.result()
    zero_ms, floor_ms, conc, cfl = [], [], [], []
    for _ in range(rounds):
        for _ in range(40):
            t = time.perf_counter()
            zero()
            zero_ms.append((time.perf_counter() - t) * 1000)
        floor_ms.extend(x * 1000 for x in floor.sample(40))
        t = time.perf_counter()
        handles = [wf.start(ten) for _ in range(16)]
        for h in handles:
            h.result()
        conc.append(160 / (time.perf_counter() - t))
        cfl.append(cfloor.sample(10))
    floor.close()
    cfloor.close()
    wf.shutdown()
    print(
        json.dumps(
            {
                "zero_ms": statistics.median(zero_ms),
                "floor_ms": statistics.median(floor_ms),
                "conc_steps_s": statistics.median(conc),
                "conc_floor_s": statistics.median(cfl),
            }
        )
    )


def _run_agent(url: str, version: int, rounds: int) -> dict[str, float]:
    out = subprocess.run(
        [PY, "-m", "bench.hotpath_bench", "--agent", url, str(version), str(rounds)],
        cwd=str(REPO),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"agent failed: {out.stderr[-2000:]}")
    result: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str]) -> None:
    if argv[:1] == ["--agent"]:
        agent(argv[1], int(argv[2]), int(argv[3]))
        return
    p = argparse.ArgumentParser(prog="python -m bench.hotpath_bench")
    p.add_argument("admin_url", nargs="?", default=DEFAULT_ADMIN)
    p.add_argument("--sessions", type=int, default=16)
    p.add_argument("--ops", type=int, default=150, help="finishes per session per round")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--versions", default="3,4")
    args = p.parse_args(argv)
    from wf._sysdb.schema import LATEST_VERSION

    versions = [int(v) for v in args.versions.split(",")]
    assert all(1 <= v <= LATEST_VERSION for v in versions)
    urls = {}
    for v in versions:
        urls[v] = recreate_database(args.admin_url, f"wf_hot{v}_{uuid.uuid4().hex[:6]}")
        _migrate(urls[v], v)
    rows: dict[int, dict[str, list[float]]] = {v: {} for v in versions}

    log(f"finishes: {args.sessions} sessions, {args.rounds} rounds")
    # one set of connections at a time: the server is shared (max_connections)
    for r in range(args.rounds):
        for v in versions:
            bench = Finishes(urls[v], args.sessions)
            rows[v].setdefault("finishes_s", []).append(bench.sample(args.ops) / 2)
            bench.close()
        floor = PgConcurrentFloor(urls[versions[0]], args.sessions)
        rows[versions[0]].setdefault("floor_s", []).append(floor.sample(args.ops))
        floor.close()
        done = ", ".join(f"v{v} {rows[v]['finishes_s'][-1]:.0f}/s" for v in versions)
        log(f"  round {r + 1}: {done}, floor {rows[versions[0]]['floor_s'][-1]:.0f}/s")

    log("zero-step and 16 concurrent 10-step workflows through the API")
    for r in range(args.rounds):
        for v in versions:
            res = _run_agent(urls[v], v, 5)
            for k, x in res.items():
                rows[v].setdefault(k, []).append(x)
            log(f"  round {r + 1} v{v}: {res}")

    fl = statistics.median(rows[versions[0]]["floor_s"])
    print(
        f"{'schema':>6} | finishes/s ({args.sessions} sessions) | floor commits/s | 0-step ms | "
        "× raw commit | 16×10-step steps/s | of 16-thread floor"
    )
    for v in versions:
        m = {k: statistics.median(x) for k, x in rows[v].items()}
        print(
            f"{v:>6} | {m['finishes_s']:>10.0f} | {fl:>10.0f} | {m['zero_ms']:.3f} | "
            f"{m['zero_ms'] / m['floor_ms']:.2f} | {m['conc_steps_s']:.0f} | "
            f"{m['conc_steps_s'] / m['conc_floor_s']:.0%}"
        )
    print(json.dumps({str(v): rows[v] for v in versions}))


if __name__ == "__main__":
    main(sys.argv[1:])
