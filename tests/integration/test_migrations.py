"""Schema migrations: applied step by step they give the same schema as
applied at once; they are idempotent; several processes may launch at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from wf._sysdb import SystemDatabase
from wf._sysdb import schema as wf_schema


def _snapshot(url: str) -> dict[str, object]:
    """Tables, columns (name, type, nullable), indexes and the version."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        insp = sa.inspect(engine)
        schema = "wf" if url.startswith("postgresql") else None
        out: dict[str, object] = {}
        for table in sorted(insp.get_table_names(schema=schema)):
            cols = [
                (c["name"], str(c["type"]), c["nullable"])
                for c in insp.get_columns(table, schema=schema)
            ]
            idx = sorted(
                (i["name"] or "", tuple(i["column_names"]), bool(i["unique"]))
                for i in insp.get_indexes(table, schema=schema)
            )
            out[table] = (cols, idx)
        return out
    finally:
        engine.dispose()


def _drop_all(url: str) -> None:
    engine = sa.create_engine(_normalized(url))
    with engine.begin() as conn:
        if url.startswith("postgresql"):
            conn.exec_driver_sql("DROP SCHEMA wf CASCADE")
        else:
            for (name,) in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'table'"
            ).fetchall():
                if not name.startswith("sqlite_"):
                    conn.exec_driver_sql(f'DROP TABLE "{name}"')
    engine.dispose()


def _normalized(url: str) -> str:
    from wf._config import normalize_url

    return normalize_url(url)


def test_migrate_is_idempotent(db_url: str) -> None:
    # all at once into db_url
    db = SystemDatabase(_normalized(db_url), outage_timeout=0)
    db.ensure_reachable()
    assert db.migrate() == wf_schema.LATEST_VERSION
    assert db.schema_version() == wf_schema.LATEST_VERSION
    at_once = _snapshot(db_url)
    # idempotent: migrating again changes nothing
    assert db.migrate() == wf_schema.LATEST_VERSION
    assert _snapshot(db_url) == at_once
    db.dispose()
    assert "workflows" in at_once and "steps" in at_once


@pytest.fixture
def fresh_url(db_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A second fresh database on the same backend as ``db_url``."""
    if db_url.startswith("sqlite"):
        return "sqlite:///" + str(tmp_path / "fresh.sqlite")
    return str(request.getfixturevalue("pg_database"))


def test_step_by_step(db_url: str, fresh_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Apply migrations 1..k, then the rest: the same schema as a fresh database."""
    fresh = SystemDatabase(_normalized(fresh_url), outage_timeout=0)
    fresh.ensure_reachable()
    fresh.migrate()
    fresh.dispose()
    expected = _snapshot(fresh_url)
    for k in range(1, wf_schema.LATEST_VERSION + 1):
        db = SystemDatabase(_normalized(db_url), outage_timeout=0)
        db.ensure_reachable()
        monkeypatch.setattr(SystemDatabase, "migrations", wf_schema.MIGRATIONS[:k])
        assert db.migrate() == k
        monkeypatch.setattr(SystemDatabase, "migrations", wf_schema.MIGRATIONS)
        assert db.migrate() == wf_schema.LATEST_VERSION
        assert db.schema_version() == wf_schema.LATEST_VERSION
        db.dispose()
        assert _snapshot(db_url) == expected
        _drop_all(db_url)


def test_concurrent_launches_migrate_once(db_url: str) -> None:
    code = "import sys, wf\nprint(wf.migrate(sys.argv[1]))\n"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, db_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
        assert out.strip() == str(wf_schema.LATEST_VERSION)
    db = SystemDatabase(_normalized(db_url), outage_timeout=0)
    assert db.schema_version() == wf_schema.LATEST_VERSION
    db.dispose()
