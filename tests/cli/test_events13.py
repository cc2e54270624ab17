"""wf events, wf schedule list, and what wf send says now (issue 13)."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Wf
from tests.cli.test_show13 import H2


@pytest.fixture
def db_url(sqlite_database: str) -> str:
    """SQLite only: what these tests check is the command line's rendering
    and selection, the same on both backends (the records and filters behind
    them are tested on both in tests/integration/test_operator_records.py)."""
    return sqlite_database


def _publisher(wf_cli: Wf, marker: Path, wid: str = "pub") -> subprocess.Popen[str]:
    proc = wf_cli.spawn("start", "--id", wid, f"{H2}:publisher", str(marker))
    deadline = time.monotonic() + 30
    while "stage" not in wf_cli("events", "-o", "ids", wid).out.split():
        assert time.monotonic() < deadline and proc.poll() is None, "the publisher never published"
        time.sleep(0.2)
    return proc


def test_events_list_and_one_value(wf_cli: Wf, marker: Path) -> None:
    proc = _publisher(wf_cli, marker)
    lines = wf_cli("events", "pub").ok().out.splitlines()
    assert lines[0].split() == ["KEY", "VALUE", "UPDATED"]
    assert [ln.split()[:2] for ln in lines[1:]] == [["none", "null"], ["stage", '"waiting"']]
    docs = wf_cli("events", "--json", "pub").ok().json()
    assert [(d["key"], d["value"]) for d in docs] == [("none", None), ("stage", "waiting")]
    assert set(docs[0]) == {"workflow_id", "key", "value", "updated_at"}
    assert len(wf_cli("events", "-o", "jsonl", "pub").ok().out.splitlines()) == 2
    assert wf_cli("events", "pub", "stage").ok().out == '"waiting"\n'
    assert wf_cli("events", "pub", "none").ok().out == "null\n"  # set, to null
    doc = wf_cli("events", "-o", "json", "pub", "stage").ok().json()
    assert doc["key"] == "stage" and doc["value"] == "waiting"
    # not set (yet): exit 3, one line
    wf_cli("events", "pub", "result").expect(3).one_line_error("'result'", "not set")
    res = wf_cli("events", "--wait", "0.5", "pub", "result").expect(3)
    res.one_line_error("not set", "waited 0.5s")
    marker.touch()
    wf_cli.finish(proc)
    assert wf_cli("events", "--json", "pub", "result").ok().json()["value"] == {"ok": True}


def test_events_wait_for_a_key(wf_cli: Wf, marker: Path) -> None:
    proc = _publisher(wf_cli, marker, "pub2")
    threading.Timer(1.0, marker.touch).start()
    started = time.monotonic()
    res = wf_cli("events", "--wait", "30", "pub2", "result").ok()
    assert res.out == '{"ok": true}\n'
    assert time.monotonic() - started < 20  # it woke when the event came
    wf_cli.finish(proc)


def test_events_bad_input(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "quiet", "tests.cli.apps.basic:add", "1", "2").ok()
    res = wf_cli("events", "quiet").ok()
    assert res.out == "" and "has no events" in res.err
    assert wf_cli("events", "--json", "quiet").ok().json() == []
    wf_cli("events", "ghost").expect(4).one_line_error("ghost")
    wf_cli("events", "--wait", "5", "quiet").expect(2).one_line_error("--wait", "KEY")
    wf_cli("events", "--wait", "0", "quiet", "k").expect(2).one_line_error("--wait")


def test_schedule_list(wf_cli: Wf) -> None:
    wf_cli("db", "migrate").ok()
    res = wf_cli("schedule", "list").ok()
    assert res.out == "" and "no schedules" in res.err
    assert wf_cli("schedule", "list", "--json").ok().json() == []
    worker = wf_cli.spawn("worker", "tests.cli.apps.h2_cron")
    try:
        deadline = time.monotonic() + 30
        while not wf_cli("schedule", "list", "-o", "ids").out.strip():
            assert time.monotonic() < deadline and worker.poll() is None, "no schedule recorded"
            time.sleep(0.2)
    finally:
        worker.send_signal(signal.SIGINT)
        wf_cli.finish(worker)
    lines = wf_cli("schedule", "list").ok().out.splitlines()
    assert lines[0].split() == ["NAME", "CRON", "LAST", "TICK", "NEXT", "TICK"]
    rows = {ln.split()[0]: ln for ln in lines[1:]}
    assert set(rows) == {"tests.cli.apps.h2_cron:every_five", "tests.cli.apps.h2_cron:weekly"}
    assert "*/5 * * * *" in rows["tests.cli.apps.h2_cron:every_five"]
    docs = {d["name"]: d for d in wf_cli("schedule", "list", "-o", "json").ok().json()}
    weekly = docs["tests.cli.apps.h2_cron:weekly"]
    assert weekly["cron"] == "0 3 * * 1" and weekly["workflow_name"] == weekly["name"]
    assert weekly["next_tick"] is not None
    assert set(weekly) == {"name", "workflow_name", "cron", "last_tick", "next_tick", "updated_at"} | {
        "source", "paused", "args", "kwargs", "queue", "created_at"  # stored schedules (issue 16)
    }  # fmt: skip
    assert (weekly["source"], weekly["paused"], weekly["args"]) == ("code", False, [])


def test_send_to_an_ended_workflow_warns_and_a_repeated_key_says_so(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "done", "tests.cli.apps.basic:add", "1", "2").ok()
    res = wf_cli("send", "done", "hello").ok()
    assert res.out.strip() == "sent to done"
    assert "warning:" in res.err and "has ended (SUCCESS)" in res.err
    first = wf_cli("send", "done", "again", "--idempotency-key", "k1").ok()
    assert first.out.strip() == "sent to done"
    again = wf_cli("send", "done", "again", "--idempotency-key", "k1").ok()
    assert again.out.strip() == "already sent (idempotency key k1): nothing new sent to done"
    assert "warning" not in again.err  # nothing was sent: nothing to warn about
    doc = wf_cli("send", "--json", "done", "again", "--idempotency-key", "k1").ok().json()
    assert doc["sent"] is False
