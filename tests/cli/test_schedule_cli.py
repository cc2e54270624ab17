"""wf schedule create|list|pause|resume|delete|trigger|backfill (SPEC §5),
the real `wf` executable. SQLite only: what these check is the command
line (arguments, output formats, one-line errors, exit codes); the
guarantees behind it (ticks once across workers, pause and delete picked up
at run time, backfill once) are tested on both backends in
tests/integration/test_managed_schedules.py."""

from __future__ import annotations

import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import Wf
from tests.helpers import raw_rows

REPORT = "tests.apps.sched_app:report"


@pytest.fixture
def db_url(sqlite_database: str) -> str:
    return sqlite_database


def test_create_list_pause_resume_delete(wf_cli: Wf, cwd: Path) -> None:
    doc = wf_cli(
        "schedule", "create", "nightly", REPORT, "0 3 * * *", "n", "--kwargs", '{"scale": 3}',
        "-o", "json",
    ).ok().json()  # fmt: skip
    assert doc["name"] == "nightly" and doc["workflow_name"] == REPORT
    assert (doc["source"], doc["paused"], doc["args"], doc["kwargs"]) == (
        "db",
        False,
        ["n"],
        {"scale": 3},
    )
    assert doc["next_tick"].endswith("T03:00:00+00:00") and doc["created_at"] is not None
    # a file path target is recorded as the module name the workers import
    (cwd / "jobs.py").write_text(
        "import wf\n\n@wf.workflow()\ndef tick(scheduled_at, started_at):\n    return 1\n"
    )
    res = wf_cli("schedule", "create", "often", "jobs.py:tick", "*/5 * * * *", "--queue", "q").ok()
    assert res.out.startswith("created schedule often: jobs:tick at '*/5 * * * *' (next tick ")
    assert wf_cli("schedule", "list", "-o", "ids").ok().out.split() == ["nightly", "often"]
    lines = wf_cli("schedule", "list").ok().out.splitlines()
    assert lines[0].split() == [
        "NAME",
        "SOURCE",
        "WORKFLOW",
        "CRON",
        "LAST",
        "TICK",
        "NEXT",
        "TICK",
    ]
    assert wf_cli("schedule", "pause", "often").ok().out == "paused schedule often\n"
    row = [ln for ln in wf_cli("schedule", "list").ok().out.splitlines() if ln.startswith("often")]
    assert row[0].split()[-1] == "paused"
    docs = {d["name"]: d for d in wf_cli("schedule", "list", "--json").ok().json()}
    assert docs["often"]["paused"] is True and docs["often"]["next_tick"] is None
    assert docs["often"]["queue"] == "q" and docs["often"]["workflow_name"] == "jobs:tick"
    assert wf_cli("schedule", "resume", "often", "--json").ok().json() == {
        "name": "often",
        "done": "resume",
    }
    assert wf_cli("schedule", "list", "--json").ok().json()[1]["paused"] is False
    assert wf_cli("schedule", "delete", "often").ok().out == "deleted schedule often\n"
    assert wf_cli("schedule", "list", "-o", "ids").ok().out.split() == ["nightly"]


def test_bad_input_is_one_line_exit_2_and_writes_nothing(wf_cli: Wf, db_url: str) -> None:
    wf_cli("db", "migrate").ok()
    cases = [
        (("create", "s", "tests.apps.no_such:f", "* * * * *"), "no_such"),
        (
            ("create", "s", "tests.apps.sched_app:not_a_workflow", "* * * * *", "x"),
            "not a workflow",
        ),
        (("create", "s", REPORT, "every day", "x"), "invalid cron"),
        (("create", "s", REPORT, "* * * * *"), "bad arguments"),
        (("create", "s", REPORT, "* * * * *", "x", "--kwargs", "[1]"), "--kwargs"),
        (("create", "a:b", REPORT, "* * * * *", "x"), "schedule name"),
        (("create", "s", REPORT, "* * * * *", "x", "--queue", " "), "queue"),
        (("pause", "ghost"), "no schedule named 'ghost'"),
        (("resume", "ghost"), "no schedule named 'ghost'"),
        (("delete", "ghost"), "no schedule named 'ghost'"),
        (("trigger", "ghost"), "no schedule named 'ghost'"),
        (("backfill", "ghost", "--start", "1d"), "no schedule named 'ghost'"),
        (("backfill", "ghost", "--start", "yesterday-ish"), "--start"),
    ]
    for args, needle in cases:
        wf_cli("schedule", *args).expect(2).one_line_error(needle)
    assert raw_rows(db_url, "schedules") == []
    wf_cli("schedule", "create", "s", REPORT, "* * * * * *", "x").ok()
    wf_cli("schedule", "create", "s", REPORT, "0 3 * * *", "y").expect(2).one_line_error(
        "exists already"
    )
    wf_cli("schedule", "backfill", "s", "--start", "1h", "--end", "2h").expect(2).one_line_error(
        "not before end"
    )
    wf_cli("schedule", "backfill", "s", "--start", "1h", "--end", "2030-01-01T00:00:00Z").expect(
        2
    ).one_line_error("in the future")
    wf_cli("schedule", "backfill", "s", "--start", "1d").expect(2).one_line_error("10,000 ticks")
    assert [r["name"] for r in raw_rows(db_url, "schedules")] == ["s"]
    assert raw_rows(db_url, "workflows") == []


def test_trigger_and_backfill_run_in_a_worker(wf_cli: Wf) -> None:
    wf_cli("schedule", "create", "nightly", REPORT, "0 3 * * *", "n").ok()
    worker = wf_cli.spawn("worker", "tests.apps.sched_app")
    try:
        wid = wf_cli("schedule", "trigger", "nightly").ok().out.strip()
        assert wid.startswith("sched-nightly-now-")
        assert wf_cli("await", "--json", wid).ok().json()["output"]["label"] == "n"
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start = (today - timedelta(days=3)).isoformat()
        res = wf_cli(
            "schedule", "backfill", "nightly", "--start", start, "--end", today.isoformat()
        )
        ids = res.ok().out.split()
        assert "enqueued 3 ticks of nightly" in res.err
        assert ids == [
            f"sched-nightly-{today - timedelta(days=d) + timedelta(hours=3):%Y-%m-%dT%H:%M:%SZ}"
            for d in (3, 2, 1)
        ]
        for i in ids:
            wf_cli("await", i).ok()
        again = wf_cli(
            "schedule", "backfill", "nightly", "--start", start, "--end", today.isoformat()
        )
        assert again.ok().out == "" and "every tick in that range has run already" in again.err
        doc = wf_cli("schedule", "backfill", "nightly", "--start", "5d", "--json").ok().json()
        assert doc["name"] == "nightly" and len(doc["enqueued"]) in (
            1,
            2,
        )  # 4 days back (+ today's)
    finally:
        worker.send_signal(signal.SIGINT)
        wf_cli.finish(worker)
