"""Issue 13's bugs in the waiting commands: the hint when nothing live can
run the work (bug 5), resume/restart of a workflow from a file elsewhere
(bug 11), `wf recover MODULE`'s wording (bug 7), the cost of waiting on
Postgres (bug 1); and -o on start/await/resume/restart."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import WORKFLOW_KEYS, Wf, kill9, wait_for_path
from tests.cli.test_show13 import H2


def _hints(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("hint: ")]


# -- bug 5: waiting on work nothing live can run ---------------------------------------------


def test_start_says_once_that_no_worker_serves_the_queue_and_keeps_waiting(wf_cli: Wf) -> None:
    proc = wf_cli.spawn("start", "--id", "fan", f"{H2}:fan_out", "2")
    time.sleep(5)  # the hint comes after ~2 s; later checks must not repeat it
    assert proc.poll() is None  # still waiting
    worker = wf_cli.spawn("worker", H2, "--queue", "h2_unserved")
    try:
        res = wf_cli.finish(proc, ["start"])
    finally:
        worker.send_signal(signal.SIGTERM)
        wf_cli.finish(worker)
    assert res.code == 0, res.describe()
    hints = _hints(res.err)
    assert len(hints) == 1, res.describe()
    assert "2 workflows are ENQUEUED on queue 'h2_unserved'" in hints[0]
    assert f"`wf worker {H2}`" in hints[0] and "still waiting" in hints[0]


def test_await_says_when_the_owner_is_dead(wf_cli: Wf, marker: Path) -> None:
    proc = wf_cli.spawn("start", "--id", "orphan", "tests.cli.apps.basic:crashable", str(marker))
    wait_for_path(Path(str(marker) + ".ready"), proc)
    kill9(proc)
    res = wf_cli("await", "--timeout", "4", "orphan").expect(3)
    hints = _hints(res.err)
    assert len(hints) == 1, res.describe()
    assert "workflow orphan is PENDING under executor" in hints[0]
    assert "not alive" in hints[0] and "`wf recover`" in hints[0]
    # an enqueued workflow nobody serves
    wid = wf_cli("start", "--detach", "-q", "h2_unserved", f"{H2}:kid", "1").ok().out.strip()
    res = wf_cli("await", "--timeout", "3", wid).expect(3)
    assert f"workflow {wid} is ENQUEUED on queue 'h2_unserved'" in res.err, res.describe()


def test_no_hint_while_the_work_can_run(wf_cli: Wf, marker: Path) -> None:
    worker = wf_cli.spawn("worker", "tests.cli.apps.basic")
    try:
        proc = wf_cli.spawn(
            "start", "--id", "served", "-q", "cli_q", "tests.cli.apps.basic:gated", str(marker)
        )
        time.sleep(3.5)
        marker.touch()
        res = wf_cli.finish(proc, ["start"])
    finally:
        worker.send_signal(signal.SIGTERM)
        wf_cli.finish(worker)
    assert res.code == 0 and not _hints(res.err), res.describe()


def test_the_batch_sample_says_what_to_run() -> None:
    import sample_apps.batch as batch

    doc = batch.__doc__ or ""
    assert "wf worker sample_apps.batch" in doc and "hint:" in doc


# -- bug 11: a workflow started from a file outside the current directory ---------------------

FAR_APP = """
from pathlib import Path

import wf


@wf.step()
def exists(path: str) -> bool:
    return Path(path).exists()


@wf.workflow()
def gated(path: str) -> str:
    while not exists(path):
        wf.sleep(0.1)
    return "opened"
"""


def test_resume_and_restart_take_modules(wf_cli: Wf, tmp_path: Path, marker: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    app = elsewhere / "h2_far_app.py"
    app.write_text(FAR_APP)
    assert not str(app).startswith(str(wf_cli.cwd))
    proc = wf_cli.spawn("start", "--id", "far", "../elsewhere/h2_far_app.py:gated", str(marker))
    wf_cli.wait_status("far", "PENDING", proc=proc)
    wf_cli("cancel", "far").ok()
    assert wf_cli.finish(proc).code == 3
    marker.touch()
    res = wf_cli("resume", "far").expect(2)
    res.one_line_error("'h2_far_app'", "-m/--module")
    res = wf_cli("restart", "far").expect(2)
    res.one_line_error("'h2_far_app'", "-m/--module")
    assert wf_cli.status("far")["status"] == "CANCELLED"  # nothing changed
    wf_cli("resume", "-m", "../elsewhere/nope.py", "far").expect(2).one_line_error("nope.py")
    doc = wf_cli("resume", "-m", "../elsewhere/h2_far_app.py", "--json", "far").ok().json()
    assert doc["status"] == "SUCCESS" and doc["output"] == "opened"
    doc = wf_cli("restart", "--module", str(app), "-o", "json", "far").ok().json()
    assert doc["status"] == "SUCCESS" and doc["workflow_id"] != "far"


# -- bug 7: `wf recover MODULE` says where the module came from ------------------------------


def test_recover_names_where_its_modules_came_from(wf_cli: Wf, marker: Path) -> None:
    proc = wf_cli.spawn("start", "--id", "rec", "tests.cli.apps.basic:crashable", str(marker))
    wait_for_path(Path(str(marker) + ".ready"), proc)
    kill9(proc)
    marker.touch()
    res = wf_cli("recover", "tests.cli.apps.basic", timeout=90).ok()
    assert "named by recorded workflows" not in res.err, res.describe()
    assert "imported: tests.cli.apps.basic" in res.err
    # without modules: the ones the records name
    proc = wf_cli.spawn(
        "start", "--id", "rec2", "tests.cli.apps.basic:crashable", str(marker) + "2"
    )
    wait_for_path(Path(str(marker) + "2.ready"), proc)
    kill9(proc)
    Path(str(marker) + "2").touch()
    res = wf_cli("recover", timeout=90).ok()
    assert "imported (named by recorded workflows): tests.cli.apps.basic" in res.err


# -- -o on the waiting commands ---------------------------------------------------------------


def test_waiting_commands_take_output_formats(wf_cli: Wf) -> None:
    out = wf_cli("start", "-o", "ids", "--id", "o1", "tests.cli.apps.basic:add", "1", "2").ok().out
    assert out == "o1\n"
    line = wf_cli("start", "-o", "jsonl", "--id", "o1", "tests.cli.apps.basic:add", "1", "2").ok()
    assert line.out.count("\n") == 1 and set(line.json()) == WORKFLOW_KEYS
    assert wf_cli("await", "-o", "ids", "o1").ok().out == "o1\n"
    assert wf_cli("await", "-o", "json", "o1").ok().json()["output"] == 3
    detached = wf_cli("start", "--detach", "-o", "json", "-q", "h2_unserved", f"{H2}:kid", "1")
    wid = detached.ok().json()["workflow_id"]
    wf_cli("cancel", wid).ok()
    assert wf_cli("resume", "--detach", "-o", "ids", wid).ok().out == f"{wid}\n"
    new = wf_cli("restart", "--detach", "-o", "ids", "o1").ok().out.strip()
    assert new and new != "o1" and wf_cli.status(new)["status"] == "ENQUEUED"
    wf_cli("await", "-o", "yaml", "o1").expect(2).one_line_error("-o")
    wf_cli("start", "--json", "-o", "ids", "tests.cli.apps.basic:add", "1", "2").expect(2)


# -- bug 1: waiting costs nothing extra on Postgres -------------------------------------------


def _listening(db_url: str) -> int:
    """wf listener sessions on the test database (they also register
    interest after LISTEN, so the last query does not tell them apart)."""
    import psycopg
    from wf._sysdb.listener import APPLICATION_NAME

    dbname = db_url.rsplit("/", 1)[1].split("?", 1)[0]
    with psycopg.connect(db_url, autocommit=True, connect_timeout=10) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
            (dbname, APPLICATION_NAME),
        ).fetchone()
    return int(row[0]) if row else 0


def _listened_while(db_url: str, proc: subprocess.Popen[str]) -> bool:
    seen = False
    while proc.poll() is None:
        seen = seen or _listening(db_url) > 0
        time.sleep(0.01)
    return seen


def test_await_of_an_ended_workflow_and_detach_cost_no_listener(
    wf_cli: Wf, db_url: str, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("LISTEN/NOTIFY is Postgres's")
    # the ~1 s exit cost was the listener's join: a wait that needs no
    # wake-up (the workflow has ended) starts none (speed itself is measured
    # in bench/, not asserted here)
    wf_cli("start", "--id", "quick", "tests.cli.apps.basic:add", "1", "2").ok()
    ended = wf_cli.spawn("await", "quick")
    assert not _listened_while(db_url, ended)
    assert wf_cli.finish(ended).code == 0
    # the check sees a listener when there is one: a real wait...
    wid = wf_cli("start", "--detach", "-q", "h2_unserved", f"{H2}:kid", "1").ok().out.strip()
    waiting = wf_cli.spawn("await", "--timeout", "2", wid)
    assert _listened_while(db_url, waiting)
    assert wf_cli.finish(waiting).code == 3
    # ...and none for --detach
    detach = wf_cli.spawn("start", "--detach", "-q", "h2_unserved", f"{H2}:kid", "2")
    assert not _listened_while(db_url, detach)
    assert wf_cli.finish(detach).code == 0
