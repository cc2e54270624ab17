"""``python -m bench``: run every benchmark and print one table (SPEC §9).

Scenarios (``--only NAME``, repeatable):

- ``workflows``: the raw-commit floor, and wf and DBOS running 10-step and
  10-transaction workflows sequentially and 16 at once, on Postgres and SQLite,
  interleaved round by round (``floor`` runs the floor alone);
- ``queue``: 2 worker processes draining enqueued workflows (wf, DBOS);
- ``recovery``: 10,000 PENDING workflows of a dead executor finished by a
  fresh process;
- ``list``: ``wf list --status ERROR --limit 20`` and ``wf status`` on
  1,000,000 rows, and EXPLAIN of the list, dequeue and recovery queries
  (bench/explain.txt);
- ``cli``: ``wf --help``;
- ``scale``: queue throughput with 1, 2 and 4 ``wf worker`` processes on one
  Postgres, directly and through a PgBouncer (transaction pooling) the bench
  starts itself, with the commits per second the server reached
  (``--skip scale``, ``--skip pgbouncer``, ``--scale-workers``);
- ``rss``: one ``wf worker`` draining 100,000 workflows (``--rss-count``),
  its RSS, threads and fds sampled (``--rss-trace``: where the Python heap grew).

The workflows scenario also measures the concurrent floor (16 connections in
16 threads, the same INSERT) and the 0-step workflow, in the same rounds.

Postgres: the server of ``--pg`` (default ``$WF_BENCH_PG_URL``, else
postgres@127.0.0.1:5432), one fresh database per scenario (``wf_bench*``,
dropped at the end unless ``--keep``). SQLite: files in a temporary
directory on the same disk."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import report
from bench.common import (
    BENCH_DIR,
    DEFAULT_PG_URL,
    FULL,
    QUICK,
    REPO,
    Agent,
    Sizes,
    compile_wf,
    drop_database,
    log,
    pg_settings,
    recreate_database,
    sqlite_url,
    summary,
    wf_command,
)

SCENARIOS = ("floor", "workflows", "queue", "recovery", "list", "cli", "scale", "rss")
KINDS = ("step", "transaction")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="wf's benchmarks: one table, Postgres and SQLite, wf beside DBOS and the raw-commit floor.",
    )
    p.add_argument(
        "--quick", action="store_true", help="scaled-down sizes: a smoke run in about two minutes"
    )
    p.add_argument(
        "--only",
        action="append",
        choices=SCENARIOS,
        metavar="NAME",
        help=f"run only this scenario ({', '.join(SCENARIOS)}); repeatable",
    )
    p.add_argument(
        "--json", action="store_true", help="print every figure (with spreads) as one JSON document"
    )
    p.add_argument(
        "--pg",
        default=os.environ.get("WF_BENCH_PG_URL") or DEFAULT_PG_URL,
        metavar="URL",
        help="Postgres admin URL, a role that may create databases (default: $WF_BENCH_PG_URL, else %(default)s)",
    )
    p.add_argument(
        "--prefix",
        default="wf_bench",
        help="name prefix of the Postgres databases it creates (default %(default)s); "
        "give concurrent runs different prefixes",
    )
    p.add_argument(
        "--skip",
        action="append",
        choices=(*SCENARIOS, "pgbouncer"),
        default=[],
        metavar="NAME",
        help="leave out this scenario (or 'pgbouncer': the scale scenario's PgBouncer rows); repeatable",
    )
    p.add_argument(
        "--scale-workers",
        default="1,2,4",
        metavar="N,N,...",
        help="worker process counts of the scale scenario (default %(default)s)",
    )
    p.add_argument(
        "--rss-count",
        type=int,
        metavar="N",
        help="workflows the rss scenario drains (default 100,000; 5,000 with --quick)",
    )
    p.add_argument(
        "--rss-trace",
        action="store_true",
        help="run the rss worker under tracemalloc and report the lines whose memory grew",
    )
    p.add_argument("--no-sqlite", action="store_true", help="Postgres only")
    p.add_argument("--no-dbos", action="store_true", help="skip DBOS even when it is installed")
    p.add_argument(
        "--keep", action="store_true", help="keep the databases and SQLite files afterwards"
    )
    p.add_argument(
        "--save",
        metavar="PATH",
        help="also write the table, with the command and date, to PATH (markdown)",
    )
    p.add_argument(
        "--explain",
        metavar="PATH",
        help="where the EXPLAIN output goes (default: bench/explain.txt; not written with --quick unless given)",
    )
    return p


# -- scenarios --------------------------------------------------------------------------------

DB_PREFIX = ["wf_bench"]  # set from --prefix


def _fresh(admin: str, suffix: str, dbs: list[str]) -> str:
    """A freshly created Postgres database for one scenario; remembered for the clean-up."""
    name = DB_PREFIX[0] + ("_" + suffix if suffix else "")
    dbs.append(name)
    return recreate_database(admin, name)


def run_workflows(
    admin: str, tmp: Path, sizes: Sizes, sqlite: bool, dbos: bool, floor_only: bool, dbs: list[str]
) -> dict[str, Any]:
    from bench.floor import PgConcurrentFloor, PgFloor, SqliteConcurrentFloor, SqliteFloor

    pg_url = _fresh(admin, "", dbs)
    floors: dict[str, Any] = {"pg": PgFloor(pg_url)}
    # C connections in C threads, C = the width of the concurrent workloads
    cfloors: dict[str, Any] = {"pg": PgConcurrentFloor(pg_url, sizes.width)}
    if sqlite:
        floors["sqlite"] = SqliteFloor(tmp / "floor.sqlite")
        cfloors["sqlite"] = SqliteConcurrentFloor(tmp / "cfloor.sqlite", sizes.width)
    agents: dict[tuple[str, str], Agent] = {}
    try:
        if not floor_only:
            log("starting agents (wf on Postgres and SQLite, DBOS on Postgres and SQLite)")
            agents["wf", "pg"] = Agent("wf-pg", "bench.wf_bench", pg_url)
            if sqlite:
                agents["wf", "sqlite"] = Agent(
                    "wf-sqlite", "bench.wf_bench", sqlite_url(tmp / "wf.sqlite")
                )
            if dbos:
                dbos_url = _fresh(admin, "dbos", dbs)
                agents["dbos", "pg"] = Agent("dbos-pg", "bench.dbos_bench", "agent", dbos_url)
                if sqlite:
                    agents["dbos", "sqlite"] = Agent(
                        "dbos-sqlite", "bench.dbos_bench", "agent", sqlite_url(tmp / "dbos.sqlite")
                    )
        n, width = sizes.steps, sizes.width
        samples: dict[tuple[str, ...], list[float]] = defaultdict(list)
        for r in range(sizes.rounds):
            order = list(agents) if r % 2 == 0 else list(reversed(agents))
            for b, f in floors.items():
                samples["floor", b].extend(x * 1000 for x in f.sample(sizes.floor_ops))
            for b, cf in cfloors.items():
                samples["cfloor", b].append(cf.sample(sizes.floor_ops))
            for kind in KINDS:
                for key in order:
                    a = agents[key]
                    durs = a.call("seq", kind=kind, steps=n, count=sizes.seq_workflows)["durations"]
                    samples[(*key, kind, "seq")].extend(x * 1000 / n for x in durs)
                    e = a.call("conc", kind=kind, steps=n, width=width)["elapsed"]
                    samples[(*key, kind, "conc")].append(width * n / e)
            for key in order:
                call = agents[key].call("seq", kind="step", steps=0, count=sizes.seq_workflows)
                samples[(*key, "empty")].extend(x * 1000 for x in call["durations"])
            log(f"round {r + 1}/{sizes.rounds}: " + _round_note(samples, n))
    finally:
        for a in agents.values():
            a.close()
        for f in floors.values():
            f.close()
        for cf in cfloors.values():
            cf.close()
    out: dict[str, Any] = {
        "floor": {b: {"ms_per_op": summary(samples["floor", b])} for b in floors},
        "concurrent_floor": {
            b: {"commits_per_s": summary(samples["cfloor", b]), "connections": sizes.width}
            for b in cfloors
        },
    }
    wl: dict[str, Any] = {"steps": n, "width": width}
    for system, b in agents:
        d: dict[str, Any] = {}
        for kind in KINDS:
            d[kind] = {
                "seq_ms_per_call": summary(samples[system, b, kind, "seq"]),
                "conc_calls_per_s": summary(samples[system, b, kind, "conc"]),
            }
        empty = summary(samples[system, b, "empty"])
        d["empty_ms_per_workflow"] = empty
        d["marginal_ms_per_step"] = (
            d["step"]["seq_ms_per_call"]["median"] * n - empty["median"]
        ) / n
        wl.setdefault(system, {})[b] = d
    out["workflows"] = wl
    return out


def _round_note(samples: dict[tuple[str, ...], list[float]], n: int) -> str:
    import statistics

    parts = []
    for key in (("floor", "pg"), ("wf", "pg", "step", "seq"), ("dbos", "pg", "step", "seq")):
        if samples.get(key):
            parts.append(f"{'/'.join(key[:2])} {statistics.median(samples[key]):.3f} ms")
    return ", ".join(parts)


def run_queue(
    admin: str, tmp: Path, sizes: Sizes, sqlite: bool, dbos: bool, dbs: list[str]
) -> dict[str, Any]:
    from bench import queue_bench

    out: dict[str, Any] = {"wf": {}, "dbos": {}}
    log("queue: wf on Postgres")
    out["wf"]["pg"] = queue_bench.run_wf(
        _fresh(admin, "queue", dbs), sizes.queue_workflows, sizes.queue_reps
    )
    if sqlite:
        log("queue: wf on SQLite")
        out["wf"]["sqlite"] = queue_bench.run_wf(
            sqlite_url(tmp / "queue.sqlite"), sizes.queue_workflows, sizes.queue_reps
        )
    if dbos:
        log("queue: DBOS on Postgres")
        out["dbos"]["pg"] = queue_bench.run_dbos(
            _fresh(admin, "queue_dbos", dbs), sizes.queue_workflows, sizes.queue_reps
        )
        if sqlite:
            log("queue: DBOS on SQLite")
            out["dbos"]["sqlite"] = queue_bench.run_dbos(
                sqlite_url(tmp / "queue-dbos.sqlite"), sizes.queue_workflows, sizes.queue_reps
            )
    return out


def run_recovery(
    admin: str, tmp: Path, sizes: Sizes, sqlite: bool, dbs: list[str]
) -> dict[str, Any]:
    from bench import recovery_bench

    log(f"recovery: {sizes.recovery_workflows:,} workflows on Postgres")
    out = {
        "pg": recovery_bench.run(
            _fresh(admin, "recovery", dbs),
            sizes.recovery_workflows,
            sizes.recovery_reps,
        )
    }
    if sqlite:
        log(f"recovery: {sizes.recovery_workflows:,} workflows on SQLite")
        out["sqlite"] = recovery_bench.run(
            sqlite_url(tmp / "recovery.sqlite"), sizes.recovery_workflows, sizes.recovery_reps
        )
    return out


def run_list(
    admin: str, tmp: Path, sizes: Sizes, sqlite: bool, explain: Path | None, dbs: list[str]
) -> dict[str, Any]:
    from bench import list_bench

    out: dict[str, Any] = {}
    sections = []
    log(f"list: loading {sizes.list_rows:,} rows into Postgres")
    res, plans = list_bench.run(
        _fresh(admin, "list", dbs), sizes.list_rows, sizes.list_reps, sizes.cli_reps
    )
    out["pg"] = res
    sections.append((f"Postgres, {sizes.list_rows:,} rows", res, plans))
    if sqlite:
        log(f"list: loading {sizes.list_rows:,} rows into SQLite")
        res, plans = list_bench.run(
            sqlite_url(tmp / "list.sqlite"), sizes.list_rows, sizes.list_reps, sizes.cli_reps
        )
        out["sqlite"] = res
        sections.append((f"SQLite, {sizes.list_rows:,} rows", res, plans))
    if explain is not None:
        list_bench.write_explain(explain, sections)
        log(f"EXPLAIN written to {explain}")
    return out


def run_scale(
    admin: str, sizes: Sizes, workers: list[int], pgbouncer: bool, dbs: list[str]
) -> dict[str, Any]:
    from bench import scale_bench

    return scale_bench.run(
        lambda suffix: _fresh(admin, suffix, dbs),
        admin,
        sizes.scale_workflows,
        sizes.scale_reps,
        workers,
        pgbouncer,
    )


def run_rss(
    admin: str, tmp: Path, n: int, sqlite: bool, trace: bool, dbs: list[str]
) -> dict[str, Any]:
    from bench import rss_bench

    out: dict[str, Any] = {}
    log(f"rss: one wf worker draining {n:,} workflows on Postgres")
    out["pg"] = rss_bench.run(_fresh(admin, "rss", dbs), n, trace=trace)
    if sqlite:
        log(f"rss: one wf worker draining {n:,} workflows on SQLite")
        out["sqlite"] = rss_bench.run(sqlite_url(tmp / "rss.sqlite"), n, trace=trace)
    return out


def run_cli(admin: str, tmp: Path, sizes: Sizes, sqlite: bool, dbs: list[str]) -> dict[str, Any]:
    """``wf --help``, and ``wf start`` of a trivial workflow (bench/cli_app.py)
    on a database that exists, each in a fresh process."""
    from bench.cli_bench import time_command

    cli = wf_command()
    if cli is None:
        log("cli: no wf CLI installed; skipped")
        return {}
    out: dict[str, Any] = {"help_ms": time_command([*cli, "--help"], sizes.cli_reps)["ms"]}
    start = [*cli, "start", "bench.cli_app:hello", "bench"]
    log("cli: wf start of a trivial workflow")
    out["start_pg_ms"] = time_command(
        start, sizes.cli_reps, WF_DATABASE_URL=_fresh(admin, "cli", dbs)
    )["ms"]
    if sqlite:
        out["start_sqlite_ms"] = time_command(
            start, sizes.cli_reps, WF_DATABASE_URL=sqlite_url(tmp / "cli.sqlite")
        )["ms"]
    return out


# -- the run ------------------------------------------------------------------------------------


def _meta(
    args: argparse.Namespace, argv: list[str], sizes: Sizes, dbos_version: str | None
) -> dict[str, Any]:
    import platform
    from importlib.metadata import PackageNotFoundError, version

    try:
        wf_version = version("wf-runner")
    except PackageNotFoundError:
        wf_version = "?"
    git = "?"
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "runtime", "cli", "pyproject.toml"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
        git = f"git {head}" + (" + uncommitted changes in runtime/cli" if dirty else "")
    except OSError:
        pass
    try:
        pg = pg_settings(args.pg)
    except Exception as e:
        pg = {"error": str(e)}
    return {
        "command": " ".join(["python -m bench", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "wf": wf_version,
        "git": git,
        "dbos": dbos_version,
        "sqlite": sqlite3.sqlite_version,
        "postgres": pg,
        "sizes": sizes.__dict__,
        "load_start": [round(x, 2) for x in os.getloadavg()],
        "samples_note": (
            f"{sizes.rounds} interleaved rounds (floor: {sizes.floor_ops} commits per round; sequential: "
            f"{sizes.seq_workflows} workflows per round; concurrent: one wave of {sizes.width} per round)"
        ),
        "sizes_note": (
            f"queue {sizes.queue_workflows:,} workflows × {sizes.queue_reps} runs; scale-out "
            f"{sizes.scale_workflows:,} workflows × {sizes.scale_reps} runs per worker count; recovery "
            f"{sizes.recovery_workflows:,} workflows × {sizes.recovery_reps} runs; list {sizes.list_rows:,} rows, "
            f"{sizes.list_reps} API calls; CLI {sizes.cli_reps} runs after a warm-up; worker RSS over "
            f"{sizes.rss_workflows:,} workflows."
        ),
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    sizes = QUICK if args.quick else FULL
    DB_PREFIX[0] = args.prefix
    only = set(args.only or SCENARIOS) - set(args.skip)
    if args.rss_count is not None:
        sizes = dataclasses.replace(sizes, rss_workflows=args.rss_count)
    try:
        scale_workers = [int(x) for x in args.scale_workers.split(",") if x.strip()]
    except ValueError:
        _parser().error(f"--scale-workers: not a list of numbers: {args.scale_workers!r}")
    sqlite = not args.no_sqlite
    from bench.dbos_bench import available

    dbos_version = None if args.no_dbos else available()
    if dbos_version is None and not args.no_dbos:
        log("DBOS is not installed (pip install -e '.[bench]'): its rows are skipped")
    explain = (
        Path(args.explain) if args.explain else (None if args.quick else BENCH_DIR / "explain.txt")
    )
    compile_wf()
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="wf-bench-"))
    dbs: list[str] = []
    res: dict[str, Any] = {"meta": _meta(args, argv, sizes, dbos_version), "errors": {}}
    dbos = dbos_version is not None

    steps: list[tuple[str, Callable[[], dict[str, Any]]]] = []
    if "workflows" in only or "floor" in only:
        steps.append(
            (
                "workflows",
                lambda: run_workflows(
                    args.pg, tmp, sizes, sqlite, dbos, "workflows" not in only, dbs
                ),
            )
        )
    if "queue" in only:
        steps.append(
            ("queue", lambda: {"queue": run_queue(args.pg, tmp, sizes, sqlite, dbos, dbs)})
        )
    if "recovery" in only:
        steps.append(
            ("recovery", lambda: {"recovery": run_recovery(args.pg, tmp, sizes, sqlite, dbs)})
        )
    if "list" in only:
        steps.append(
            ("list", lambda: {"list": run_list(args.pg, tmp, sizes, sqlite, explain, dbs)})
        )
    if "cli" in only:
        steps.append(("cli", lambda: {"cli": run_cli(args.pg, tmp, sizes, sqlite, dbs)}))
    if "scale" in only:
        steps.append(
            (
                "scale",
                lambda: {
                    "scale": run_scale(
                        args.pg, sizes, scale_workers, "pgbouncer" not in args.skip, dbs
                    )
                },
            )
        )
    if "rss" in only:
        steps.append(
            (
                "rss",
                lambda: {
                    "rss": run_rss(args.pg, tmp, sizes.rss_workflows, sqlite, args.rss_trace, dbs)
                },
            )
        )
    try:
        for name, step in steps:
            t = time.monotonic()
            try:
                res.update(step())
            except Exception as e:
                traceback.print_exc()
                res["errors"][name] = f"{type(e).__name__}: {e}"
            log(f"{name}: done in {time.monotonic() - t:.0f}s")
    finally:
        if not args.keep:
            for db in dict.fromkeys(dbs):
                try:
                    drop_database(args.pg, db)
                except Exception as e:
                    log(f"could not drop {db}: {e}")
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept databases {', '.join(dict.fromkeys(dbs))} and SQLite files in {tmp}")

    res["meta"]["load_end"] = [round(x, 2) for x in os.getloadavg()]
    res["meta"]["minutes"] = round((time.monotonic() - started) / 60, 1)
    text = "\n\n".join([report.header(res), report.table(res), report.notes(res)])
    if res["errors"]:
        text += "\n\nFailed: " + "; ".join(f"{k}: {v}" for k, v in res["errors"].items())
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print(text)
    if args.save:
        Path(args.save).write_text("# wf benchmark results\n\n" + text + "\n")
        log(f"table saved to {args.save}")
    return 1 if res["errors"] else 0
