"""wf delete, wf gc, wf export / wf import and the retention setting through
the real ``wf`` executable: exit codes, JSON output, refusals that change
nothing, a worker collecting in the background, and workflows moved SQLite
-> Postgres -> SQLite with the same `wf status` / `wf steps` / `wf logs`."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.cli.conftest import Wf, wf_executable
from tests.helpers import sqlalchemy_url, wait_for

APP = "tests.cli.apps.retention_app"


def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    s = "wf." if url.startswith("postgresql") else ""
    eng = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with eng.begin() as conn:
            res = conn.execute(sa.text(statement.replace("{s}", s)), params)
            return list(res) if res.returns_rows else []
    finally:
        eng.dispose()


def _backdate(url: str, wid: str, seconds: float) -> None:
    """Make ``wid`` and its children look ``seconds`` old."""
    ms = int((time.time() - seconds) * 1000)
    _sql(
        url,
        "UPDATE {s}workflows SET created_at = :t, updated_at = :t "
        "WHERE workflow_id = :w OR parent_workflow_id = :w",
        t=ms,
        w=wid,
    )


def _count(url: str) -> int:
    return int(_sql(url, "SELECT COUNT(*) FROM {s}workflows")[0][0])


def test_delete_exit_codes_and_json(wf_cli: Wf, db_url: str) -> None:
    fam = wf_cli.start(f"{APP}:family", "ann", "--id", "F")
    queued = wf_cli("start", "--detach", f"{APP}:waiting", "--id", "W").ok().out.strip()
    assert queued == "W"

    wf_cli("delete", "nope", "F").expect(4).one_line_error("nope")
    wf_cli("delete", "F", "W").expect(2).one_line_error("W is ENQUEUED", "--force")
    assert _count(db_url) == 3  # nothing deleted: F, its child, W

    doc = wf_cli("delete", fam, "W", "--force", "-o", "json").ok().json()
    assert doc["count"] == 3 and doc["deleted"][:2] == ["F", "W"]
    assert doc["deleted"][2].startswith("F")  # the child, after the roots
    wf_cli("status", "F").expect(4)
    assert _count(db_url) == 0

    again = wf_cli.start(f"{APP}:family", "bob", "--id", "F")  # the ID starts fresh
    assert wf_cli.status(again)["output"] == ["BOB", "BOB-JR"]
    out = wf_cli("delete", "F").ok().out
    assert "deleted F" in out and "1 child workflow" in out


def test_gc_by_age_status_and_keep(wf_cli: Wf, db_url: str) -> None:
    for i in range(3):
        wf_cli.start(f"{APP}:family", f"p{i}", "--id", f"old{i}")
        _backdate(db_url, f"old{i}", 7200 + i)  # old0 the newest of them
    wf_cli.start(f"{APP}:family", "new", "--id", "new")

    wf_cli("gc", "--older-than", "soon").expect(2).one_line_error("--older-than")
    wf_cli("gc", "--older-than", "1h", "--status", "PENDING").expect(2).one_line_error("PENDING")
    wf_cli("gc").expect(2)  # --older-than is required
    assert wf_cli("gc", "--older-than", "1h", "-s", "ERROR", "--json").ok().json() == {"deleted": 0}
    # keep the newest 2 top-level ended ones (new, old0): old1, old2 and their children go
    assert wf_cli("gc", "--older-than", "1h", "--keep", "2", "-o", "json").ok().json() == {
        "deleted": 4
    }
    assert "deleted 2 workflows" in wf_cli("gc", "--older-than", "1h").ok().out
    assert _count(db_url) == 2  # new and its child
    wf_cli("status", "new").ok()


def test_a_worker_applies_the_retention_setting(wf_cli: Wf, db_url: str) -> None:
    wf_cli.start(f"{APP}:family", "o", "--id", "old")
    wf_cli.start(f"{APP}:family", "y", "--id", "young")
    _backdate(db_url, "old", 2 * 86400)
    proc = wf_cli.spawn("worker", APP, env={"WF_RETENTION": "1d", "WF_GC_INTERVAL": "0.5"})
    try:
        wait_for(
            lambda: wf_cli("status", "old").code == 4 or proc.poll() is not None,
            timeout=60,
            interval=0.3,
            what="the worker to collect 'old'",
        )
        assert proc.poll() is None, wf_cli.finish(proc).describe()
        assert wf_cli.status("young")["status"] == "SUCCESS"
        assert _count(db_url) == 2  # young and its child
    finally:
        proc.send_signal(signal.SIGTERM)
    res = wf_cli.finish(proc, ["worker"], timeout=30)
    assert res.code == 0, res.describe()


def test_a_malformed_retention_is_one_line(wf_cli: Wf, cwd: Path) -> None:
    wf_cli("list", env={"WF_RETENTION": "thirty days"}).expect(2).one_line_error(
        "WF_RETENTION", "thirty days"
    )
    (cwd / "pyproject.toml").write_text('[tool.wf]\nretention = "-3d"\n')
    wf_cli("worker", APP).expect(2).one_line_error("retention", "-3d")


def _same_views(a: Wf, b: Wf, wid: str) -> None:
    for view in (
        ("status", "--json"),
        ("steps", "--json"),
        ("logs", "--json"),
        ("events", "--json"),
    ):
        left = a(*view, wid).ok().out
        right = b(*view, wid).ok().out
        assert left == right, f"wf {' '.join(view)} {wid} differs:\n{left}\n---\n{right}"
    assert a("steps", wid).ok().out == b("steps", wid).ok().out  # the table too


def test_export_import_sqlite_to_postgres_and_back(
    sqlite_database: str, pg_database: str, cwd: Path
) -> None:
    lite, pg = Wf(sqlite_database, cwd), Wf(pg_database, cwd)
    lite.start(f"{APP}:family", "zoe", "--id", "Z")
    lite("start", "--id", "Q", f"{APP}:waiting", "--detach").ok()

    lite("export", "Q").expect(2).one_line_error("Q is ENQUEUED")
    lite("export", "nope").expect(4)
    exported = lite("export", "Z").ok().out
    lines = exported.splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["children"]
    (cwd / "z.jsonl").write_text(exported)

    doc = pg("import", "z.jsonl", "-o", "json").ok().json()
    assert doc["count"] == 2 and doc["imported"][0] == "Z"
    _same_views(lite, pg, "Z")
    assert pg("tree", "Z").ok().out == lite("tree", "Z").ok().out

    # an ID the target has: refused, nothing written
    before = _count(pg_database)
    pg("import", "z.jsonl").expect(2).one_line_error("'Z' already exists")
    assert _count(pg_database) == before

    # and back, through stdin
    lite("delete", "Z").ok()
    back = pg("export", "Z").ok().out
    proc = subprocess.run(
        [*wf_executable(), "import", "-"],
        input=back,
        env=lite.env(),
        cwd=str(cwd),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    _same_views(lite, pg, "Z")


def test_import_refuses_bad_input(wf_cli: Wf, db_url: str, cwd: Path) -> None:
    wf_cli.start(f"{APP}:family", "a", "--id", "A")
    good = wf_cli("export", "A").ok().out
    wf_cli("delete", "A").ok()
    (cwd / "bad.jsonl").write_text(good + "not json\n")
    wf_cli("import", "bad.jsonl").expect(2).one_line_error("bad.jsonl line 2 is not JSON")
    (cwd / "odd.jsonl").write_text(good + '{"format": "something else"}\n')
    wf_cli("import", "odd.jsonl").expect(2).one_line_error("odd.jsonl", "record 2", "format")
    record = json.loads(good)
    record["workflow"]["status"] = "PENDING"
    (cwd / "pending.jsonl").write_text(json.dumps(record) + "\n")
    wf_cli("import", "pending.jsonl").expect(2).one_line_error("A is PENDING")
    wf_cli("import", "missing.jsonl").expect(2).one_line_error("missing.jsonl")
    assert _count(db_url) == 0  # nothing of any of them written
    (cwd / "good.jsonl").write_text(good)
    assert "imported 2 workflows" in wf_cli("import", "good.jsonl").ok().out


def _bulk_old(url: str, n: int) -> None:
    """``n`` SUCCESS workflows two days old, each with one step and one log line."""
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    s = "wf." if url.startswith("postgresql") else ""
    t = int((time.time() - 2 * 86400) * 1000)
    eng = sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)
    try:
        with eng.begin() as conn:
            conn.execute(
                sa.text(
                    f"INSERT INTO {s}workflows (workflow_id, status, name, inputs, output, "
                    "created_at, updated_at) VALUES (:w, 'SUCCESS', 'm:f', '{}', '1', :t, :t)"
                ),
                [{"w": f"old-{i:06d}", "t": t + i} for i in range(n)],
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO {s}steps (workflow_id, position, name, kind, output) "
                    "VALUES (:w, 0, 'm:s', 'step', '1')"
                ),
                [{"w": f"old-{i:06d}"} for i in range(n)],
            )
            conn.execute(
                sa.text(
                    f"INSERT INTO {s}logs (workflow_id, position, seq, time, level, message) "
                    "VALUES (:w, 0, 0, :t, 'INFO', 'x')"
                ),
                [{"w": f"old-{i:06d}", "t": t} for i in range(n)],
            )
    finally:
        eng.dispose()


def test_a_killed_gc_leaves_only_whole_workflows(wf_cli: Wf, db_url: str) -> None:
    """DBOS #769: a collection interrupted midway (SIGKILL) must not leave
    steps (or logs) of deleted workflows for a reused ID to replay."""
    wf_cli("db", "migrate").ok()
    n = 20_000
    _bulk_old(db_url, n)
    proc = wf_cli.spawn("gc", "--older-than", "1d")
    try:
        wait_for(
            lambda: _count(db_url) < n - 500 or proc.poll() is not None,
            timeout=60,
            interval=0.01,
            what="the collection to start",
        )
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    left = _count(db_url)
    assert 0 < left < n, f"the kill came too late to interrupt anything ({left} left)"
    orphans = "SELECT COUNT(*) FROM {s}%s x WHERE NOT EXISTS (SELECT 1 FROM {s}workflows w WHERE w.workflow_id = x.workflow_id)"
    assert _sql(db_url, orphans % "steps")[0][0] == 0
    assert _sql(db_url, orphans % "logs")[0][0] == 0
    whole = "SELECT COUNT(*) FROM {s}workflows w WHERE NOT EXISTS (SELECT 1 FROM {s}steps x WHERE x.workflow_id = w.workflow_id)"
    assert _sql(db_url, whole)[0][0] == 0  # each survivor has its step
    assert wf_cli("gc", "--older-than", "1d", "--json").ok().json() == {"deleted": left}
