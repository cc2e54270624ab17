"""Issue 15 audit: a forced delete's still-running run must write nothing
into a workflow recorded later under the same ID; ``wf resume|restart
--version``; ``wf recover``'s reason for another version's workflow."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Wf, wait_for_path

APP = "tests.cli.apps.audit15"


@pytest.mark.parametrize("where", ["another_process", "same_worker"])
def test_a_force_deleted_run_writes_nothing_into_a_reused_id(
    wf_cli: Wf, tmp_path: Path, where: str
) -> None:
    """DBOS #769's class: the deleted run is inside a step when its row goes;
    the ID is reused (run by another process, or dequeued by the very worker
    still running the deleted run). When that step ends, its log line, its
    event and its record must not land in the new workflow."""
    gate = str(tmp_path / "gate")
    worker = wf_cli.spawn("worker", APP)
    try:
        wf_cli("start", "--detach", "--queue", "q", f"{APP}:job", "8", gate, "--id", "J").ok()
        wait_for_path(Path(gate + ".in"), worker)
        wf_cli("delete", "J", "--force").ok()  # cancels, waits a few seconds, deletes
        wf_cli("status", "J").expect(4)
        if where == "another_process":
            assert wf_cli.start(f"{APP}:job", "0", "--id", "J") == "J"
        else:
            wf_cli("start", "--detach", "--queue", "q", f"{APP}:job", "0", "--id", "J").ok()
            wf_cli.wait_status("J", "SUCCESS", proc=worker)
        Path(gate).touch()  # the deleted run's step ends now
        wait_for_path(Path(gate + ".out"), worker)
        time.sleep(1.5)  # and it tries to record what it did
        status = wf_cli.status("J")
        assert status["status"] == "SUCCESS" and status["output"] == 0, status
        assert status["inputs"]["args"] == [0, gate] or status["inputs"]["args"] == [0]
        logs = [row["message"] for row in wf_cli("logs", "J", "--json").ok().json()]
        assert logs == ["job 0", "slept 0"], logs
        events = wf_cli("events", "J", "--json").ok().json()
        assert [(e["key"], e["value"]) for e in events] == [("napped", 0)], events
        steps = wf_cli("steps", "J", "--json").ok().json()
        assert [s["output"] for s in steps] == [0], steps
    finally:
        Path(gate).touch()
        worker.send_signal(signal.SIGTERM)
        Wf.finish(worker, ["worker"], timeout=60)


V1 = {"WF_APP_VERSION": "1.0"}
V2 = {"WF_APP_VERSION": "2.0"}


def test_resume_and_restart_version_move_a_queued_v1_workflow_to_v2(wf_cli: Wf) -> None:
    """Only a v2 worker is alive; v1 workflows wait on their queue. `wf resume
    --version 2.0` moves them (also when ENQUEUED), detached or run here by
    a v2 process; `wf restart --version 2.0` records the new one as of 2.0."""
    for wid in ("wa1", "wa2", "wa3"):
        wf_cli("start", "--detach", "--queue", "q", f"{APP}:waiter", "--id", wid, env=V1).ok()
    worker = wf_cli.spawn("worker", APP, env=V2)
    try:
        time.sleep(2)  # the v2 worker polls its queue: it leaves v1 work alone
        assert wf_cli.status("wa1")["status"] == "ENQUEUED"

        wf_cli("resume", "wa1", "--version", "2.0", "--detach", env=V2).ok()
        info = wf_cli.wait_status("wa1", "SUCCESS", proc=worker)
        assert (info["app_version"], info["output"]) == ("2.0", "2.0"), info

        # not detached, in a v2 process: it runs (here or on the v2 worker), no hang
        res = wf_cli("resume", "wa2", "--version", "2.0", "--json", env=V2, timeout=60).ok()
        assert res.json()["status"] == "SUCCESS" and res.json()["app_version"] == "2.0"

        # the same version again, or none: changes nothing
        wf_cli("resume", "wa3", "--version", "1.0", "--detach", env=V2).ok()
        assert wf_cli.status("wa3")["app_version"] == "1.0"

        doc = wf_cli("restart", "wa3", "--version", "2.0", "--detach", "--json", env=V2).ok()
        new = doc.json()["workflow_id"]
        info = wf_cli.wait_status(new, "SUCCESS", proc=worker)
        assert (info["app_version"], info["output"]) == ("2.0", "2.0"), info
        assert wf_cli.status("wa3")["status"] == "ENQUEUED"  # the original stays v1's
    finally:
        worker.send_signal(signal.SIGTERM)
        Wf.finish(worker, ["worker"], timeout=60)


def test_recover_says_a_skipped_workflow_is_another_versions(wf_cli: Wf, tmp_path: Path) -> None:
    gate = str(tmp_path / "gate")
    proc = wf_cli.spawn("start", f"{APP}:waiter", gate, "--id", "pk2", env=V1)
    wait_for_path(Path(gate + ".in"), proc)
    proc.kill()  # its run stays PENDING under a dead executor
    proc.communicate(timeout=30)
    Path(gate).touch()
    res = wf_cli("recover", env=V2)
    assert "is not defined" not in res.err, res.describe()
    assert "pk2" in res.err and "version 1.0" in res.err, res.describe()
    assert "wf resume pk2 --version 2.0" in res.err, res.describe()
    assert wf_cli.status("pk2")["status"] == "PENDING"
    # as it says: moved on purpose, it finishes on this release
    res = wf_cli("resume", "pk2", "--version", "2.0", "--json", env=V2).ok()
    assert res.json()["status"] == "SUCCESS" and res.json()["output"] == "2.0"


def test_export_import_carries_streams_sqlite_to_postgres(
    sqlite_database: str, pg_database: str, cwd: Path
) -> None:
    lite, pg = Wf(sqlite_database, cwd), Wf(pg_database, cwd)
    lite.start(f"{APP}:streamer", "--id", "S")
    exported = lite("export", "S").ok().out
    (cwd / "s.jsonl").write_text(exported)
    pg("import", "s.jsonl").ok()
    for key, note in (("out", "2 values, closed"), ("open", "1 value")):
        there = pg("stream", "--json", "S", key).ok()
        here = lite("stream", "--json", "S", key).ok()
        assert there.json() == here.json(), (here.out, there.out)
        assert [d["value"] for d in there.json()] == ([1, {"a": [2]}] if key == "out" else ["x"])
        assert note in pg("stream", "S", key).ok().err
    assert "not closed" in pg("stream", "S", "open").ok().err
    # and back, once deleted here: the same again (a closed stream stays closed)
    lite("delete", "S").ok()
    (cwd / "back.jsonl").write_text(pg("export", "S").ok().out)
    lite("import", "back.jsonl").ok()
    assert (
        lite("stream", "--json", "S", "out").ok().json()
        == pg("stream", "--json", "S", "out").ok().json()
    )
    assert "2 values, closed" in lite("stream", "S", "out").ok().err


def test_bare_replay_names_only_its_own_filters(wf_cli: Wf) -> None:
    err = wf_cli("replay").expect(2).one_line_error("nothing to replay", "--version").err
    assert "--parent" not in err and "--children" not in err, err
    for verb in ("cancel", "resume"):  # these have them
        wf_cli(verb).expect(2).one_line_error(f"nothing to {verb}", "--parent", "--children")


def test_gc_older_than_zero_agrees_with_the_api(wf_cli: Wf) -> None:
    wf_cli.start(f"{APP}:job", "0", "--id", "g1")
    wf_cli("start", "--detach", "--queue", "q", f"{APP}:job", "0", "--id", "g2").ok()
    assert wf_cli("gc", "--older-than", "0", "--json").ok().json() == {"deleted": 1}
    wf_cli("status", "g1").expect(4)
    assert wf_cli.status("g2")["status"] == "ENQUEUED"  # never one in flight
    wf_cli("gc", "--older-than", "-1").expect(2).one_line_error("--older-than")


def test_the_cli_delete_refusal_names_the_cli_option_only(wf_cli: Wf) -> None:
    wf_cli("start", "--detach", "--queue", "q", f"{APP}:job", "0", "--id", "d1").ok()
    err = wf_cli("delete", "d1").expect(2).one_line_error("d1 is ENQUEUED", "--force").err
    assert "force=True" not in err, err
