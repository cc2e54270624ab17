"""The dashboard's list page at scale: ``wf ui``'s workflows page over N
workflow rows (default 1,000,000), loaded by bench/list_bench.py's loader.

Timed on a warm connection, each the median of ``--reps`` runs:
- the page's row query (``wf._support.list_workflows_page``: one keyset page
  of top-level workflows, newest first, with their child counts), with no
  filter, ``status=ERROR``, a name, and a page deep in the table (the keyset
  cursor of a row half way down: what OFFSET would make slow);
- the ID text search (``id_contains``, a LIKE '%text%': a scan);
- the live counts per status (six COUNTs, the other filters applied);
- the whole page through HTTP (starlette's TestClient: routing, the reads,
  the template): a first view (a new app: its rows; the counts come in
  their own fragment, timed uncached too), then the JSON document and the
  HTML fragment as a page polls them (the counts reused while fresh:
  cli/ui/data.py's CountsCache).

Target (SPEC §9 / issue 17): the list page's query ≤ 50 ms at 1M rows.

    python -m bench.ui_bench [--rows N] [--reps R] [--sqlite] [--pg-url URL]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    DEFAULT_PG_URL,
    drop_database,
    log,
    recreate_database,
    sqlite_url,
    summary,
)
from bench.list_bench import load

TARGET_MS = 50.0


def _timed(fn: Callable[[], Any], reps: int) -> dict[str, float]:
    fn()  # warm
    ms = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ms.append((time.perf_counter() - t) * 1000)
    return summary(ms)


def _middle_cursor(url: str) -> str:
    """The keyset cursor of a row half way down the list (bench-side SQL)."""
    from wf._sysdb import SystemDatabase

    db = SystemDatabase(url)
    table = "wf.workflows" if db.dialect == "postgresql" else "workflows"
    n = db.execute(f"SELECT COUNT(*) FROM {table}").scalar() or 0
    row = db.execute(
        f"SELECT created_at, workflow_id FROM {table} ORDER BY created_at DESC, workflow_id DESC "
        f"LIMIT 1 OFFSET {int(n) // 2}"
    ).first()
    db.dispose()
    assert row is not None
    return f"{row[0]}:{row[1]}"


def run(url: str, rows: int, reps: int) -> dict[str, Any]:
    import wf
    from starlette.testclient import TestClient
    from wf._support import count_workflows_matching, list_workflows_page
    from wf.cli.ui import data
    from wf.cli.ui.app import create_app

    load(url, rows)
    middle = _middle_cursor(url)
    wf.configure(database_url=url, create=False)
    try:
        page = data.DEFAULT_PAGE + 1  # the page asks one more to know if there is a next

        def rows_q(**kw: Any) -> Callable[[], Any]:
            return lambda: list_workflows_page(top_level=True, limit=page, **kw)

        before = data._cursor(middle)
        out: dict[str, Any] = {"rows": rows}
        out["page_ms"] = _timed(rows_q(), reps)
        out["page_error_ms"] = _timed(rows_q(status=["ERROR"]), reps)
        out["page_name_ms"] = _timed(rows_q(name="steps_workflow"), reps)
        out["page_deep_ms"] = _timed(rows_q(before=before), reps)
        out["page_deep_error_ms"] = _timed(rows_q(status=["ERROR"], before=before), reps)
        out["id_search_ms"] = _timed(rows_q(id_contains="abc12"), max(3, reps // 4))

        def counts() -> None:
            for s in wf.Status.ALL:
                count_workflows_matching(top_level=True, status=s)

        out["counts_ms"] = _timed(counts, max(3, reps // 4))

        def cold(path: str) -> Callable[[], None]:  # a new app: nothing cached
            def get() -> None:
                res = TestClient(create_app(), base_url="http://127.0.0.1:8765").get(path)
                assert res.status_code == 200, res.text

            return get

        out["http_cold_ms"] = _timed(cold("/workflows"), max(3, reps // 4))
        out["http_counts_ms"] = _timed(cold("/workflows?_partial=counts"), max(3, reps // 4))
        # one app, polled: the counts come from its cache (data.CountsCache) while fresh
        client = TestClient(create_app(), base_url="http://127.0.0.1:8765")
        for path, key in (
            ("/api/workflows", "http_json_ms"),
            ("/workflows?_partial=1", "http_fragment_ms"),
            ("/workflows?status=ERROR&_partial=1", "http_fragment_error_ms"),
        ):

            def get(path: str = path) -> None:
                res = client.get(path)
                assert res.status_code == 200, res.text

            out[key] = _timed(get, max(3, reps // 4))
    finally:
        wf.shutdown()
    return out


def report(title: str, res: dict[str, Any]) -> str:
    lines = [f"## {title}: {res['rows']:,} rows (median ms; target: page query <= {TARGET_MS:g})"]
    names = {
        "page_ms": "list page query, no filter (51 rows + child counts)",
        "page_error_ms": "list page query, status=ERROR",
        "page_name_ms": "list page query, name=steps_workflow",
        "page_deep_ms": "list page query, keyset page half way down",
        "page_deep_error_ms": "list page query, status=ERROR, half way down",
        "id_search_ms": "ID text search (LIKE '%abc12%', a scan)",
        "counts_ms": "live counts per status (6 COUNTs)",
        "http_cold_ms": "GET /workflows, first view (rows; counts load next)",
        "http_counts_ms": "GET /workflows?_partial=counts, uncached (6 counts)",
        "http_json_ms": "GET /api/workflows, polled (counts cached)",
        "http_fragment_ms": "GET /workflows?_partial=1, polled (counts cached)",
        "http_fragment_error_ms": "GET /workflows?status=ERROR&_partial=1, polled",
    }
    for key, label in names.items():
        m = res[key]["median"]
        flag = ""
        if key.startswith("page_"):
            flag = "  ok" if m <= TARGET_MS else "  OVER TARGET"
        lines.append(f"{label:<58} {m:9.2f}{flag}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--pg-url", default=DEFAULT_PG_URL, help="admin URL of the Postgres to use")
    ap.add_argument("--sqlite", action="store_true", help="also on SQLite")
    ap.add_argument("--no-pg", action="store_true", help="skip Postgres")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args(argv)
    results: dict[str, Any] = {}
    if not args.no_pg:
        dbname = "wf_bench_ui"
        url = recreate_database(args.pg_url, dbname)
        try:
            log(f"ui: {args.rows:,} rows on Postgres")
            results["pg"] = run(url, args.rows, args.reps)
        finally:
            drop_database(args.pg_url, dbname)
        print(report("Postgres", results["pg"]))
    if args.sqlite:
        with tempfile.TemporaryDirectory() as tmp:
            log(f"ui: {args.rows:,} rows on SQLite")
            results["sqlite"] = run(sqlite_url(Path(tmp) / "ui.sqlite"), args.rows, args.reps)
        print(report("SQLite", results["sqlite"]))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    worst = max(
        (r[k]["median"] for r in results.values() for k in r if k.startswith("page_")),
        default=0.0,
    )
    return 0 if worst <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
