"""``wf start --detach --no-import MODULE:FUNCTION`` (issue 15 part 3):
enqueue by recorded name from a process that does not have the module (the
CLI runs in a scratch directory; only the worker's directory has
``clientjobs``), and ``wf status`` saying when no live worker has
registered the workflow."""

from __future__ import annotations

import contextlib
import importlib.util
from pathlib import Path

import pytest

from tests.apps.client_worker import WorkerCode, running_worker, worker_code
from tests.cli.conftest import Wf, database_untouched

NOT_REGISTERED = "no live worker has registered workflow"


@pytest.fixture
def code(tmp_path: Path) -> WorkerCode:
    return worker_code(tmp_path)


def _forget_registrations(db_url: str) -> None:
    """Make every executor row look like an older wf's: no workflows column value."""
    if db_url.startswith("sqlite"):
        import sqlite3

        with contextlib.closing(sqlite3.connect(db_url.split(":///", 1)[1])) as conn:
            conn.execute("UPDATE executors SET workflows = NULL")
            conn.commit()
    else:
        import psycopg

        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute("UPDATE wf.executors SET workflows = NULL")


def _worker_line(res_out: str) -> str:
    lines = [ln for ln in res_out.splitlines() if ln.startswith("worker ")]
    assert len(lines) == 1, res_out
    return lines[0]


def test_start_no_import_enqueues_by_name_for_a_worker(
    wf_cli: Wf, db_url: str, code: WorkerCode, cwd: Path
) -> None:
    assert not (cwd / "clientjobs.py").exists()
    assert importlib.util.find_spec("clientjobs") is None
    res = wf_cli("start", "--detach", "--no-import", "clientjobs:add", "2", "3").ok()
    wid = res.out.strip()
    unknown = wf_cli(
        "start", "--detach", "--no-import", "--id", "lost-1", "clientjobs:missing", '{"n": 1}'
    ).ok()
    assert unknown.out.strip() == "lost-1"

    status = wf_cli("status", wid).ok()
    assert "ENQUEUED" in status.out
    line = _worker_line(status.out)
    assert NOT_REGISTERED + " clientjobs:add" in line
    assert "none serves queue 'default'" in line and "wf worker clientjobs" in line
    doc = wf_cli.status(wid)
    assert (doc["status"], doc["name"], doc["queue"]) == ("ENQUEUED", "clientjobs:add", "default")
    assert doc["inputs"] == {"args": [2, 3], "kwargs": {}}

    with running_worker(code, db_url):
        done = wf_cli("await", "--json", wid).ok().json()
        assert (done["status"], done["output"]) == ("SUCCESS", 5)
        # without --detach it waits for the worker, as `wf start --queue` does
        waited = wf_cli(
            "start", "--json", "--no-import", "--queue", "default", "clientjobs:add", "4", "5"
        ).ok()
        assert waited.json()["output"] == 9
        # a name the live worker has not registered stays ENQUEUED, and says why
        still = wf_cli("status", "lost-1").ok()
        assert "ENQUEUED" in still.out
        line = _worker_line(still.out)
        assert NOT_REGISTERED + " clientjobs:missing" in line
        assert "1 live executor serves queue 'default'" in line
        # work a live worker has registered gets no such line
        assert "worker " not in wf_cli("status", wid).ok().out
        # an executor that does not say what it registered (an older wf) may
        # have it: then nothing is claimed
        _forget_registrations(db_url)
        assert "worker " not in wf_cli("status", "lost-1").ok().out
    assert wf_cli.status("lost-1")["status"] == "ENQUEUED"


def test_start_no_import_refuses_bad_input_writing_nothing(wf_cli: Wf, db_url: str) -> None:
    cases = [
        (["--no-import", "clientjobs:add", "1"], "--detach"),
        (["--detach", "--no-import", "jobs.py:add"], "file path"),
        (["--detach", "--no-import", "sub/jobs:add"], "file path"),
        (["--detach", "--no-import", "clientjobs"], "MODULE:FUNCTION"),
        (["--detach", "--no-import", "clientjobs:"], "MODULE:FUNCTION"),
        (["--detach", "--no-import", "--kwargs", '{"priority": 1}', "clientjobs:add"], "priority"),
        (["--detach", "--no-import", "--kwargs", "[1]", "clientjobs:add"], "--kwargs"),
        (["--detach", "--no-import", "--id", " ", "clientjobs:add"], "--id"),
        (["--detach", "--no-import", "--queue", " ", "clientjobs:add"], "queue"),
        (["--detach", "--no-import", "--timeout", "soon", "clientjobs:add"], "soon"),
    ]
    for args, needle in cases:
        wf_cli("start", *args).expect(2).one_line_error(needle)
    assert database_untouched(db_url)
