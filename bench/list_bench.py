"""Listing at scale: ``wf list --status ERROR --limit 20`` over N workflow rows,
and EXPLAIN of the list, dequeue and recovery queries.

The rows are bulk-loaded straight into wf's ``workflows`` table (Postgres:
``INSERT ... SELECT FROM generate_series``; SQLite: a recursive CTE) after
wf's own migrations created it with its indexes, then ``VACUUM ANALYZE`` /
``ANALYZE`` (what autovacuum does shortly after a large load). Shape: 1 % ERROR
spread evenly over time, 0.1 % ENQUEUED on queue ``bench``, the rest SUCCESS,
three workflow names, one row per 10 ms of ``created_at``.

Timed: the API call ``wf.list_workflows(status="ERROR", limit=20)`` on a warm
connection (what the query and decoding cost), and the CLI command in a fresh
process (what a user waits for). The statements EXPLAINed are the ones wf
actually sends, captured from its engine, so the file follows the code."""

from __future__ import annotations

import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

from bench.cli_bench import time_command
from bench.common import log, sqlite_path, summary, wf_command

ERROR_JSON = '{"type": "builtins.ValueError", "message": "boom"}'
NAMES = (
    "bench.workloads:steps_workflow",
    "bench.workloads:tx_workflow",
    "bench.workloads:one_step_workflow",
)
SENTINEL = "bench-explain-no-such-workflow"


def _pg_load(url: str, n: int) -> None:
    import psycopg

    from bench.common import psycopg_url

    base = int(time.time() * 1000) - n * 10
    status = (
        "CASE WHEN g % 100 = 7 THEN 'ERROR' WHEN g % 1000 = 5 THEN 'ENQUEUED' ELSE 'SUCCESS' END"
    )
    sql = f"""
        INSERT INTO wf.workflows (workflow_id, status, name, inputs, output, error, executor_id, queue,
            priority, recovery_attempts, max_recovery_attempts, created_at, updated_at, started_at)
        SELECT md5(g::text)::uuid::text, s.status,
            (ARRAY['{NAMES[0]}', '{NAMES[1]}', '{NAMES[2]}'])[g %% 3 + 1],
            '{{"args":[' || g || '],"kwargs":{{}}}}',
            CASE WHEN s.status = 'SUCCESS' THEN g::text END,
            CASE WHEN s.status = 'ERROR' THEN %(err)s END,
            CASE WHEN s.status = 'ENQUEUED' THEN NULL ELSE 'bench-loader' END,
            CASE WHEN s.status = 'ENQUEUED' OR g %% 10 = 1 THEN 'bench' END,
            0, 0, 50, %(base)s + g * 10, %(base)s + g * 10 + 5,
            CASE WHEN s.status = 'ENQUEUED' THEN NULL ELSE %(base)s + g * 10 + 1 END
        FROM generate_series(0, %(n)s - 1) AS g, LATERAL (SELECT {status.replace("%", "%%")} AS status) AS s"""
    with psycopg.connect(psycopg_url(url), autocommit=True) as conn:
        conn.execute(sql, {"err": ERROR_JSON, "base": base, "n": n})
        conn.execute("VACUUM ANALYZE wf.workflows")


def _sqlite_load(url: str, n: int) -> None:
    import sqlite3

    base = int(time.time() * 1000) - n * 10
    status = (
        "CASE WHEN g % 100 = 7 THEN 'ERROR' WHEN g % 1000 = 5 THEN 'ENQUEUED' ELSE 'SUCCESS' END"
    )
    sql = f"""
        WITH RECURSIVE seq(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM seq WHERE g < :n - 1),
        rows AS (SELECT g, {status} AS status FROM seq)
        INSERT INTO workflows (workflow_id, status, name, inputs, output, error, executor_id, queue,
            priority, recovery_attempts, max_recovery_attempts, created_at, updated_at, started_at)
        SELECT lower(hex(randomblob(16))), status,
            CASE g % 3 WHEN 0 THEN '{NAMES[0]}' WHEN 1 THEN '{NAMES[1]}' ELSE '{NAMES[2]}' END,
            '{{"args":[' || g || '],"kwargs":{{}}}}',
            CASE WHEN status = 'SUCCESS' THEN CAST(g AS TEXT) END,
            CASE WHEN status = 'ERROR' THEN :err END,
            CASE WHEN status = 'ENQUEUED' THEN NULL ELSE 'bench-loader' END,
            CASE WHEN status = 'ENQUEUED' OR g % 10 = 1 THEN 'bench' END,
            0, 0, 50, :base + g * 10, :base + g * 10 + 5,
            CASE WHEN status = 'ENQUEUED' THEN NULL ELSE :base + g * 10 + 1 END
        FROM rows"""
    conn = sqlite3.connect(str(sqlite_path(url)), isolation_level=None)
    try:
        conn.execute("BEGIN")
        conn.execute(sql, {"err": ERROR_JSON, "base": base, "n": n})
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    finally:
        conn.close()


def load(url: str, n: int) -> str:
    """Create wf's schema and load ``n`` rows; return the ID of an ERROR row."""
    from wf._sysdb import SystemDatabase

    sysdb = SystemDatabase(url)
    sysdb.ensure_reachable()
    sysdb.migrate()
    t = time.perf_counter()
    if sysdb.dialect == "postgresql":
        _pg_load(url, n)
    else:
        _sqlite_load(url, n)
    table = "wf.workflows" if sysdb.dialect == "postgresql" else "workflows"
    wid = sysdb.execute(
        f"SELECT workflow_id FROM {table} WHERE status = 'ERROR' ORDER BY created_at LIMIT 1"
    ).scalar()
    total = sysdb.execute(f"SELECT COUNT(*) FROM {table}").scalar()
    sysdb.dispose()
    log(f"  loaded {total:,} rows into {sysdb.dialect} in {time.perf_counter() - t:.1f}s")
    return str(wid)


class _Capture:
    """The statements wf sends, with their parameters, from whichever layer
    sends them: ``SystemDatabase.execute`` (SQLAlchemy text, ``:name``
    parameters), a raw-driver fast lane if the engine has one, and the
    SQLAlchemy engine (multi-statement transactions). Only the outermost
    layer of a call is recorded; each record says how to replay it."""

    def __init__(self, sysdb: Any) -> None:
        import threading

        import sqlalchemy as sa

        self.sysdb = sysdb
        self.seen: list[tuple[str, str, Any]] = []  # (kind, statement, params)
        self._depth = threading.local()
        self._sa = sa
        self._patched: list[tuple[Any, str]] = []
        self._wrap(sysdb, "execute", "text")
        lane = getattr(sysdb, "lane", None)
        if lane is not None and hasattr(lane, "execute"):
            self._wrap(lane, "execute", "driver")
        sa.event.listen(sysdb.engine, "before_cursor_execute", self._hook)

    def _wrap(self, obj: Any, attr: str, kind: str) -> None:
        original = getattr(obj, attr)

        def wrapper(sql: str, params: Any = None, *a: Any, **kw: Any) -> Any:
            depth = getattr(self._depth, "n", 0)
            if depth == 0:
                self.seen.append((kind, sql, params or {}))
            self._depth.n = depth + 1
            try:
                return original(sql, params, *a, **kw)
            finally:
                self._depth.n = depth

        setattr(obj, attr, wrapper)
        self._patched.append((obj, attr))

    def _hook(
        self, _conn: Any, _cursor: Any, statement: str, parameters: Any, _ctx: Any, _many: bool
    ) -> None:
        if getattr(self._depth, "n", 0) == 0:
            self.seen.append(("driver", statement, parameters))

    def take(self) -> list[tuple[str, str, Any]]:
        out, self.seen = self.seen, []
        skip = ("BEGIN", "COMMIT", "ROLLBACK")
        return [(k, s, p) for k, s, p in out if not s.lstrip().upper().startswith(skip)]

    def close(self) -> None:
        for obj, attr in self._patched:
            with contextlib.suppress(AttributeError):
                delattr(obj, attr)  # back to the class's method
        self._sa.event.remove(self.sysdb.engine, "before_cursor_execute", self._hook)


def _substitute(params: Any, real: str) -> Any:
    if isinstance(params, dict):
        return {k: (real if v == SENTINEL else v) for k, v in params.items()}
    if isinstance(params, list | tuple):
        return type(params)(real if v == SENTINEL else v for v in params)
    return params


def _explain(sysdb: Any, kind: str, statement: str, params: Any) -> str:
    pg = sysdb.dialect == "postgresql"
    prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "

    def run(sql: str) -> list[Any]:
        if kind == "text":  # wf's named-parameter SQL, as wf runs it (its raw driver pool)
            return list(sysdb.execute(sql, params).fetchall())
        return list(conn.exec_driver_sql(sql, params).fetchall())

    with sysdb.engine.connect() as conn:
        rows = run(prefix + statement)
        ms = []
        for _ in range(5):  # the statement itself, from the client, as wf runs it
            t = time.perf_counter()
            run(statement)
            ms.append((time.perf_counter() - t) * 1000)
    if pg:
        plan = "\n".join(str(r[0]) for r in rows)
    else:
        plan = "\n".join(f"{'  ' * int(r[1] != 0)}{r[-1]}" for r in rows)
    return plan + f"\n-- executed from the client: median {statistics.median(ms):.3f} ms of 5 runs"


def explain_all(sysdb: Any) -> list[tuple[str, str, Any, str]]:
    """(title, statement, parameters, plan) for the queries that must stay
    fast at scale: list, dequeue, recovery."""
    cap = _Capture(sysdb)
    out: list[tuple[str, str, Any, str]] = []
    try:
        jobs: list[tuple[str, Any, str | None]] = [
            (
                "wf list --status ERROR --limit 20",
                lambda: sysdb.list_workflows(statuses=["ERROR"], limit=20),
                None,
            ),
            ("wf list --limit 20 (no filter)", lambda: sysdb.list_workflows(limit=20), None),
            (
                "wf list --status ERROR --limit 20 --offset 10000",
                lambda: sysdb.list_workflows(statuses=["ERROR"], limit=20, offset=10000),
                None,
            ),
            (
                "dequeue: queue 'bench', 16 slots, concurrency 4 and rate limit (global limits)",
                lambda: sysdb.dequeue(
                    "bench",
                    "bench-explain",
                    16,
                    [SENTINEL],
                    concurrency=4,
                    rate_limit=(100, 1.0),
                ),
                NAMES[2],
            ),
            (
                "dequeue: queue 'bench', 16 slots, no global limits",
                lambda: sysdb.dequeue(
                    "bench",
                    "bench-explain",
                    16,
                    [SENTINEL],
                    concurrency=None,
                    rate_limit=None,
                ),
                NAMES[2],
            ),
            ("recovery: executors with PENDING workflows", sysdb.inflight_executors, None),
            (
                "recovery: PENDING workflows of one executor",
                lambda: sysdb.inflight_of_executor("bench-loader"),
                None,
            ),
        ]
        for title, call, real in jobs:
            cap.take()
            call()
            captured = cap.take()
            if not captured:
                out.append(
                    (
                        title,
                        "(no statement captured: the bench's capture missed this path)",
                        None,
                        "",
                    )
                )
            for i, (kind, stmt, params) in enumerate(captured):
                p = _substitute(params, real) if real else params
                if stmt.lstrip().upper().startswith(("SELECT PG_ADVISORY", "UPDATE")):
                    plan = "(not explained: a lock, or the UPDATE by primary key of the rows the SELECT returned)"
                else:
                    plan = _explain(sysdb, kind, stmt, p)
                out.append((f"{title} [{i + 1}]", stmt, p, plan))
    finally:
        cap.close()
    return out


def run(
    url: str, n: int, reps: int, cli_reps: int
) -> tuple[dict[str, Any], list[tuple[str, str, Any, str]]]:
    """The timings, and the EXPLAIN sections for bench/explain.txt."""
    import wf
    from wf import _root as _executor

    status_id = load(url, n)
    wf.configure(url)
    try:
        sysdb = _executor.client()
        wf.list_workflows(status="ERROR", limit=20)  # warm: connection, migration check

        def timed(**kw: Any) -> dict[str, float]:
            ms = []
            for _ in range(reps):
                t = time.perf_counter()
                rows = wf.list_workflows(limit=20, **kw)
                ms.append((time.perf_counter() - t) * 1000)
                assert len(rows) == 20
            return summary(ms)

        api_error = timed(status="ERROR")
        api_all = timed()
        plans = explain_all(sysdb)
    finally:
        wf.shutdown()
    result: dict[str, Any] = {
        "rows": n,
        "api_error_ms": api_error,
        "api_all_ms": api_all,
        "status_id": status_id,
    }
    cli = wf_command()
    if cli is not None:
        list_cmd = [*cli, "list", "--status", "ERROR", "--limit", "20", "--db", url]
        result["cli_error_ms"] = time_command(list_cmd, cli_reps)["ms"]
        result["cli_status_ms"] = time_command([*cli, "status", status_id, "--db", url], cli_reps)[
            "ms"
        ]
    return result, plans


def write_explain(
    path: Path, sections: list[tuple[str, dict[str, Any], list[tuple[str, str, Any, str]]]]
) -> None:
    """``sections``: (title, timings, plans) per database."""
    with path.open("w") as f:
        f.write(
            "# EXPLAIN of wf's list, dequeue and recovery queries\n\n"
            f"Written by `python -m bench` on {time.strftime('%Y-%m-%d %H:%M:%S %Z')}. The statements are\n"
            "captured from wf's engine as it sends them (parameters as bound); Postgres plans are\n"
            "EXPLAIN (ANALYZE, BUFFERS), SQLite's EXPLAIN QUERY PLAN.\n\n"
        )
        for title, result, plans in sections:
            f.write(f"## {title}\n\n")
            f.write(
                f"wf.list_workflows(status='ERROR', limit=20): median {result['api_error_ms']['median']:.2f} ms; "
                f"without a filter: {result['api_all_ms']['median']:.2f} ms (warm connection, {result['rows']:,} rows)\n\n"
            )
            for name, stmt, params, plan in plans:
                f.write(
                    f"### {name}\n\n```sql\n{' '.join(stmt.split())}\n-- params: {params!r}\n```\n\n"
                )
                f.write(f"```\n{plan}\n```\n\n")
