"""The one table: every figure of a run, Postgres and SQLite side by side,
with ratios to the raw-commit floor and wf's speed-up over DBOS."""

from __future__ import annotations

import math
from typing import Any

COLUMNS = (
    "measurement",
    "Postgres",
    "PG × floor",
    "PG wf ÷ DBOS",
    "SQLite",
    "SQLite × floor",
    "SQLite wf ÷ DBOS",
    "target (SPEC §9, Postgres)",
)


def _get(d: Any, *path: str) -> Any:
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def _med(d: Any, *path: str) -> float | None:
    v = _get(d, *path, "median")
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _num(x: float) -> str:
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    if x >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


def ms(x: float | None) -> str:
    return "—" if x is None else f"{_num(x)} ms"


def ms_rate(x_ms: float | None, unit: str) -> str:
    if x_ms is None:
        return "—"
    return f"{_num(x_ms)} ms ({_num(1000 / x_ms)} {unit}/s)"


def rate(x: float | None, unit: str) -> str:
    return "—" if x is None else f"{_num(x)} {unit}/s"


def secs(x: float | None) -> str:
    return "—" if x is None else f"{_num(x)} s"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return ""
    return f"{a / b:.2f}×"


def pct(a: float | None, b: float | None, of: str) -> str:
    if a is None or b is None or b == 0:
        return ""
    return f"{100 * a / b:.0f} % of {of}"


def check(ok: bool | None, text: str) -> str:
    if ok is None:
        return text
    return f"{text} {'✓' if ok else '✗'}"


def rows(res: dict[str, Any]) -> list[list[str]]:
    out: list[list[str]] = []
    fl = res.get("floor", {})
    f_pg, f_sq = _med(fl, "pg", "ms_per_op"), _med(fl, "sqlite", "ms_per_op")
    if f_pg is not None or f_sq is not None:
        out.append(
            [
                "floor: one durable commit, raw driver (psycopg INSERT … ON CONFLICT DO NOTHING, autocommit · "
                "sqlite3 BEGIN/INSERT/COMMIT, WAL, synchronous=NORMAL)",
                ms_rate(f_pg, "op"),
                "1.00×" if f_pg else "",
                "",
                ms_rate(f_sq, "op"),
                "1.00×" if f_sq else "",
                "",
                "",
            ]
        )
    cfl = res.get("concurrent_floor", {})
    cf = {b: _med(cfl, b, "commits_per_s") for b in ("pg", "sqlite")}
    if cf["pg"] is not None or cf["sqlite"] is not None:
        conns = _get(cfl, "pg", "connections") or _get(cfl, "sqlite", "connections") or 16
        out.append(
            [
                f"concurrent floor: {conns} connections in {conns} Python threads, each committing the same "
                "INSERT in a loop (sqlite3: BEGIN IMMEDIATE, as wf), total",
                rate(cf["pg"], "commits"),
                "",
                "",
                rate(cf["sqlite"], "commits"),
                "",
                "",
                "",
            ]
        )
    wl = res.get("workflows", {})
    n = wl.get("steps", 10)
    width = wl.get("width", 16)
    for kind, label in (("step", "step"), ("transaction", "transaction")):
        what = f"{n}-{label} workflow" if kind == "step" else f"{n}-transaction workflow"
        s = {
            (sy, b): _med(wl, sy, b, kind, "seq_ms_per_call")
            for sy in ("wf", "dbos")
            for b in ("pg", "sqlite")
        }
        c = {
            (sy, b): _med(wl, sy, b, kind, "conc_calls_per_s")
            for sy in ("wf", "dbos")
            for b in ("pg", "sqlite")
        }
        if any(v is not None for v in s.values()):
            ok = None if s["wf", "pg"] is None or f_pg is None else s["wf", "pg"] <= 1.4 * f_pg
            dbos_ok = (
                None
                if s["wf", "pg"] is None or s["dbos", "pg"] is None
                else s["dbos", "pg"] >= 10 * s["wf", "pg"]
            )
            target = ""
            if kind == "step":
                target = check(ok, "≤ 1.4× floor") + "; " + check(dbos_ok, "≥ 10× DBOS")
            out.append(
                [
                    f"wf: {what}, sequential, per {label}",
                    ms_rate(s["wf", "pg"], label + "s"),
                    ratio(s["wf", "pg"], f_pg),
                    ratio(s["dbos", "pg"], s["wf", "pg"]),
                    ms_rate(s["wf", "sqlite"], label + "s"),
                    ratio(s["wf", "sqlite"], f_sq),
                    ratio(s["dbos", "sqlite"], s["wf", "sqlite"]),
                    target,
                ]
            )
            if s["dbos", "pg"] is not None or s["dbos", "sqlite"] is not None:
                out.append(
                    [
                        "DBOS: same",
                        ms_rate(s["dbos", "pg"], label + "s"),
                        ratio(s["dbos", "pg"], f_pg),
                        "",
                        ms_rate(s["dbos", "sqlite"], label + "s"),
                        ratio(s["dbos", "sqlite"], f_sq),
                        "",
                        "",
                    ]
                )
        if any(v is not None for v in c.values()):
            dbos_ok = (
                None
                if c["wf", "pg"] is None or c["dbos", "pg"] is None
                else c["wf", "pg"] >= 10 * c["dbos", "pg"]
            )
            floor_ok = (
                None
                if c["wf", "pg"] is None or cf["pg"] is None
                else c["wf", "pg"] >= 0.7 * cf["pg"]
            )
            out.append(
                [
                    f"wf: {width} × {what} at once (wf.start), throughput",
                    rate(c["wf", "pg"], label + "s"),
                    pct(c["wf", "pg"], cf["pg"], "conc. floor"),
                    ratio(c["wf", "pg"], c["dbos", "pg"]),
                    rate(c["wf", "sqlite"], label + "s"),
                    pct(c["wf", "sqlite"], cf["sqlite"], "conc. floor"),
                    ratio(c["wf", "sqlite"], c["dbos", "sqlite"]),
                    check(floor_ok, "≥ 70 % of conc. floor") + "; " + check(dbos_ok, "≥ 10× DBOS")
                    if kind == "step"
                    else "",
                ]
            )
            if c["dbos", "pg"] is not None or c["dbos", "sqlite"] is not None:
                out.append(
                    [
                        "DBOS: same (DBOS.start_workflow)",
                        rate(c["dbos", "pg"], label + "s"),
                        pct(c["dbos", "pg"], cf["pg"], "conc. floor"),
                        "",
                        rate(c["dbos", "sqlite"], label + "s"),
                        pct(c["dbos", "sqlite"], cf["sqlite"], "conc. floor"),
                        "",
                        "",
                    ]
                )
    empty = {
        (sy, b): _med(wl, sy, b, "empty_ms_per_workflow")
        for sy in ("wf", "dbos")
        for b in ("pg", "sqlite")
    }
    if any(v is not None for v in empty.values()):
        e_ok = (
            None if empty["wf", "pg"] is None or f_pg is None else empty["wf", "pg"] <= 2.5 * f_pg
        )
        out.append(
            [
                "wf: 0-step workflow (start + finish), sequential, per workflow",
                ms_rate(empty["wf", "pg"], "workflows"),
                ratio(empty["wf", "pg"], f_pg),
                ratio(empty["dbos", "pg"], empty["wf", "pg"]),
                ms_rate(empty["wf", "sqlite"], "workflows"),
                ratio(empty["wf", "sqlite"], f_sq),
                ratio(empty["dbos", "sqlite"], empty["wf", "sqlite"]),
                check(e_ok, "≤ 2.5× floor"),
            ]
        )
        if empty["dbos", "pg"] is not None or empty["dbos", "sqlite"] is not None:
            out.append(
                [
                    "DBOS: same",
                    ms_rate(empty["dbos", "pg"], "workflows"),
                    ratio(empty["dbos", "pg"], f_pg),
                    "",
                    ms_rate(empty["dbos", "sqlite"], "workflows"),
                    ratio(empty["dbos", "sqlite"], f_sq),
                    "",
                    "",
                ]
            )
    marg = {b: _get(wl, "wf", b, "marginal_ms_per_step") for b in ("pg", "sqlite")}
    if any(v is not None for v in marg.values()):
        out.append(
            [
                f"wf: marginal cost of a step, (10-step − 0-step workflow) ÷ {n}",
                ms(marg["pg"]),
                ratio(marg["pg"], f_pg),
                "",
                ms(marg["sqlite"]),
                ratio(marg["sqlite"], f_sq),
                "",
                "",
            ]
        )
    q = res.get("queue", {})
    if q:
        qn = _get(q, "wf", "pg", "n") or _get(q, "wf", "sqlite", "n") or ""
        w = {
            (sy, b): _med(q, sy, b, "workflows_per_s")
            for sy in ("wf", "dbos")
            for b in ("pg", "sqlite")
        }
        out.append(
            [
                f"wf: queue throughput, 2 worker processes ({_get(q, 'wf', 'pg', 'via') or 'wf worker'}) "
                f"draining {qn:,} enqueued 1-step workflows",
                rate(w["wf", "pg"], "workflows"),
                "",
                ratio(w["wf", "pg"], w["dbos", "pg"]),
                rate(w["wf", "sqlite"], "workflows"),
                "",
                ratio(w["wf", "sqlite"], w["dbos", "sqlite"]),
                check(
                    None if w["wf", "pg"] is None or qn != 2000 else w["wf", "pg"] >= 1800,
                    "≥ 1,800 workflows/s (2,000)",
                ),
            ]
        )
        if w["dbos", "pg"] is not None or w["dbos", "sqlite"] is not None:
            out.append(
                [
                    "DBOS: same (2 processes, worker_concurrency 16, same poll interval)",
                    rate(w["dbos", "pg"], "workflows"),
                    "",
                    "",
                    rate(w["dbos", "sqlite"], "workflows"),
                    "",
                    "",
                    "",
                ]
            )
    rc = res.get("recovery", {})
    if rc:
        rn = _get(rc, "pg", "n") or _get(rc, "sqlite", "n") or 0
        r_pg = _med(rc, "pg", "seconds")
        out.append(
            [
                f"wf: recovery of {rn:,} PENDING 1-step workflows of a dead executor, wf.launch() in a fresh "
                "process until all SUCCESS",
                secs(r_pg),
                "",
                "",
                secs(_med(rc, "sqlite", "seconds")),
                "",
                "",
                check(
                    None
                    if r_pg is None or rn < 10_000
                    else r_pg <= 4 and (_med(rc, "sqlite", "seconds") or 0) <= 4,
                    "≤ 4 s at 10,000, both",
                ),
            ]
        )
    ls = res.get("list", {})
    if ls:
        ln = _get(ls, "pg", "rows") or _get(ls, "sqlite", "rows") or 0
        a_pg = _med(ls, "pg", "api_error_ms")
        out.append(
            [
                f"wf.list_workflows(status='ERROR', limit=20) on {ln:,} rows (API call, warm connection)",
                ms(a_pg),
                "",
                "",
                ms(_med(ls, "sqlite", "api_error_ms")),
                "",
                "",
                check(None if a_pg is None or ln < 1_000_000 else a_pg <= 50, "≤ 50 ms at 1M rows"),
            ]
        )
        if _get(ls, "pg", "cli_error_ms") or _get(ls, "sqlite", "cli_error_ms"):
            out.append(
                [
                    f"`wf list --status ERROR --limit 20` on {ln:,} rows (CLI, fresh process, wall)",
                    ms(_med(ls, "pg", "cli_error_ms")),
                    "",
                    "",
                    ms(_med(ls, "sqlite", "cli_error_ms")),
                    "",
                    "",
                    "",
                ]
            )
            out.append(
                [
                    f"`wf status ID` on {ln:,} rows (CLI, fresh process, wall)",
                    ms(_med(ls, "pg", "cli_status_ms")),
                    "",
                    "",
                    ms(_med(ls, "sqlite", "cli_status_ms")),
                    "",
                    "",
                    _status_target(
                        _med(ls, "pg", "cli_status_ms"), _med(ls, "sqlite", "cli_status_ms")
                    ),
                ]
            )
    out += _scale_rows(res.get("scale", {}))
    out += _rss_rows(res.get("rss", {}))
    cli = res.get("cli", {})
    if cli.get("help_ms"):
        h = ms(_med(cli, "help_ms"))
        out.append(["`wf --help` (fresh process, wall; no database)", h, "", "", "", "", "", ""])
    if cli.get("start_pg_ms"):
        pg, sq = _med(cli, "start_pg_ms"), _med(cli, "start_sqlite_ms")
        ok = None if pg is None or sq is None else pg <= 400 and sq <= 400
        out.append(
            [
                "`wf start` of a trivial workflow (fresh process, wall: start, run, print the result)",
                ms(pg),
                "",
                "",
                ms(sq),
                "",
                "",
                check(ok, "≤ 400 ms both"),
            ]
        )
    return out


def _status_target(pg: float | None, sq: float | None) -> str:
    if pg is None and sq is None:
        return ""
    ok = None if pg is None or sq is None else pg <= 250 and sq <= 200
    return check(ok, "≤ 250 ms PG, ≤ 200 ms SQLite")


def _scale_cell(d: Any) -> str:
    if not isinstance(d, dict):
        return "—"
    if "error" in d:
        return "failed: " + str(d["error"])[:120]
    w = _med(d, "workflows_per_s")
    c, per = _med(d, "commits_per_s"), _med(d, "commits_per_workflow")
    text = rate(w, "workflows")
    if c is not None and per is not None:
        text += f" · Postgres {_num(c)} commits/s ({per:.1f} per workflow)"
    return text


def _scale_rows(sc: dict[str, Any]) -> list[list[str]]:
    if not sc:
        return []
    out = []
    n = sc.get("n") or 0
    workers = sc.get("workers") or []
    pgb = sc.get("pgbouncer") or {}
    info = sc.get("pgbouncer_info") or {}
    for w in workers:
        out.append(
            [
                f"wf: queue scale-out, {w} `wf worker` process{'es' if w != 1 else ''} on one Postgres, "
                f"direct, draining {n:,} 1-step workflows",
                _scale_cell(_get(sc, "direct", str(w))),
                "",
                "",
                "",
                "",
                "",
                "",
            ]
        )
    bouncer = (
        f"through PgBouncer ({info.get('version', 'pgbouncer')}, pool_mode=transaction, "
        f"default_pool_size={info.get('default_pool_size', '?')}; WF_POOLER=transaction, "
        "WF_LISTEN_URL direct)"
    )
    if "skipped" in pgb:
        out.append(
            [
                f"wf: queue scale-out {bouncer.split(' (')[0]}",
                pgb["skipped"],
                "",
                "",
                "",
                "",
                "",
                "",
            ]
        )
    else:
        for w in workers:
            out.append(
                [
                    f"wf: queue scale-out, {w} `wf worker` process{'es' if w != 1 else ''}, {bouncer}, "
                    f"draining {n:,} 1-step workflows",
                    _scale_cell(pgb.get(str(w))),
                    "",
                    "",
                    "",
                    "",
                    "",
                    "",
                ]
            )
    return out


def _rss_cell(d: Any) -> str:
    if not isinstance(d, dict) or "early" not in d:
        return "—"
    e, z = d["early"], d["end"]
    return (
        f"{e['rss_kb'] / 1024:.1f} → {z['rss_kb'] / 1024:.1f} MiB ({d['growth_pct']:+.1f} %); "
        f"threads {e['threads']} → {z['threads']}, fds {e['fds']} → {z['fds']}"
    )


def _rss_rows(rs: dict[str, Any]) -> list[list[str]]:
    if not rs:
        return []
    any_run = rs.get("pg") or rs.get("sqlite") or {}
    n, early = any_run.get("n", 0), _get(any_run, "early", "done") or 0
    growth = _get(rs, "pg", "growth_pct")
    ok = None if growth is None or n < 100_000 else growth <= 10
    traced = " (under tracemalloc: RSS not comparable)" if any_run.get("traced") else ""
    return [
        [
            f"wf: one `wf worker` draining {n:,} enqueued 1-step workflows, RSS after {early:,} → after "
            f"{n:,}{traced}",
            _rss_cell(rs.get("pg")),
            "",
            "",
            _rss_cell(rs.get("sqlite")),
            "",
            "",
            check(ok, "≤ +10 % at 100,000"),
        ]
    ]


def table(res: dict[str, Any]) -> str:
    body = rows(res)
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in r) + " |" for r in body]
    return "\n".join(lines)


def header(res: dict[str, Any]) -> str:
    m = res.get("meta", {})
    pg = m.get("postgres", {})
    lines = [
        f"`{m.get('command', 'python -m bench')}` — started {m.get('date', '')}, took "
        f"{m.get('minutes', '?')} min",
        "",
        f"Machine: {m.get('cpus', '?')} CPUs, Python {m.get('python', '?')}, wf {m.get('wf', '?')} "
        f"({m.get('git', '?')}), DBOS {m.get('dbos') or 'not installed'}. Postgres {pg.get('server_version', '?')} "
        f"on this host (fsync={pg.get('fsync', '?')}, synchronous_commit={pg.get('synchronous_commit', '?')}, "
        f"wal_sync_method={pg.get('wal_sync_method', '?')}); SQLite {m.get('sqlite', '?')} files on the same disk.",
        f"Medians of {m.get('samples_note', 'several runs')}; systems measured interleaved, round by round.",
        f"Load average (1, 5, 15 min) at the start {_load(m.get('load_start'))}, at the end "
        f"{_load(m.get('load_end'))} — other processes on this machine share its CPUs and disk.",
    ]
    return "\n".join(lines)


def _load(v: Any) -> str:
    return "?" if not v else " / ".join(f"{x:.2f}" for x in v)


def notes(res: dict[str, Any]) -> str:
    m = res.get("meta", {})
    spread = []
    for b, label in (("pg", "Postgres"), ("sqlite", "SQLite")):
        f = _get(res, "floor", b, "ms_per_op")
        if f:
            spread.append(f"{label} {f['p10']:.3f}–{f['p90']:.3f} ms")
    return "\n".join(
        [
            "- Floor spread (10th–90th percentile of single commits): "
            + ("; ".join(spread) or "—")
            + ". Commit latency on this disk varies between rounds; every ratio compares medians "
            "taken over the same rounds.",
            "- × floor: the figure divided by the raw commit of the same backend; wf ÷ DBOS: how many times "
            "faster wf is than DBOS on the same workload (time ratio for sequential rows, throughput ratio "
            "for the others).",
            "- A trivial step returns its argument; a trivial transaction runs `SELECT 1` in a serializable "
            "transaction (both libraries' default) and returns its argument; DBOS 3 transactions run through "
            "`SQLAlchemyDatasource.transaction` on the same database.",
            "- SQLite's floor commits without fsync (WAL, synchronous=NORMAL, what wf sets): durable against a "
            "crash of the process, not of the machine; Postgres's floor waits for the WAL flush.",
            "- Concurrent floor: C connections (C = the concurrent workloads' width) in C Python threads, "
            "released together, each committing the floor's INSERT in a loop; % of conc. floor: steps (or "
            "transactions) per second over those commits per second, medians of the same rounds.",
            "- Scale-out: a fresh database and fresh worker processes per repetition (default concurrency 16 "
            "each); the clock runs from the UPDATE that moves the staged workflows onto the served queue until "
            "none is ENQUEUED or PENDING. Commits: the database's `pg_stat_database.xact_commit` delta, read "
            "once no other backend is connected (a backend publishes its counts when it exits), less the "
            "bench's own statements and the workers' start-up and shutdown commits (one cycle without a "
            "drain); read-only transactions count too.",
            "- Worker RSS: `VmRSS`, threads and open fds from /proc after each batch has ended (the worker "
            "idle), enqueued in batches of 10 % (at most 10,000); `--rss-trace` names the lines whose "
            "Python allocations grew.",
            "- CLI and child processes: wf's modules compiled to bytecode first (`compileall`), as "
            "`pip install` leaves them; with PYTHONDONTWRITEBYTECODE=1 (set on this machine) an editable "
            "install would otherwise compile them again in every fresh process.",
            f"- Sizes: {m.get('sizes_note', '')}",
        ]
    )
