"""SPEC §3.2 schedules stored at run time (wf.create_schedule, pause_schedule,
resume_schedule, delete_schedule, trigger_schedule, backfill_schedule,
list_schedules), with real worker processes (`wf worker`, and tests/apps/comm_worker.py
like the other schedule tests) on both backends.

- Each tick runs exactly once across three workers, one SIGKILLed while a tick
  runs: that tick is recovered under its own ID (not started again as a new
  tick), no tick runs twice, none is skipped while a worker lives.
- A running worker picks up schedules created, paused, resumed and deleted by
  another process (this one); a code-declared schedule pauses too.
- Backfill runs each missed tick once (also two backfills at once); trigger
  runs one extra, with its own ID.
- Bad input: one clear error, nothing written.

Ticks come every second (croniter's sixth field is seconds). The apps are
tests/apps/sched_app.py (importable here: it declares no schedule) and
tests/apps/sched_declared.py (never imported here)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import wf
from wf._worker.cron import POLL, tick_id

from tests.apps.comm_worker import spawn_workers, stop_workers
from tests.cli.conftest import wf_executable
from tests.helpers import REPO, child_env, finish, marker_lines, raw_rows, wait_for

APP = "tests.apps.sched_app"
REPORT = f"{APP}:report"
BARE = f"{APP}:bare"
DECLARED_APP = "tests.apps.sched_declared"
DECLARED = f"{DECLARED_APP}:declared"
SUCCESS = wf.Status.SUCCESS


def _ticks(schedule: str, name: str = REPORT) -> list[wf.WorkflowInfo]:
    """The workflows schedule ``schedule``'s ticks started."""
    return [
        w
        for w in wf.list_workflows(name=name, limit=None)
        if w.workflow_id.startswith(f"sched-{schedule}-")
    ]


def _scheduled_at(w: wf.WorkflowInfo) -> datetime:
    value = w.inputs["args"][0]
    assert isinstance(value, datetime)
    return value


def _wf_workers(module: str, db_url: str, n: int, env: dict[str, str]) -> list[Any]:
    """``n`` real ``wf worker MODULE`` processes, once each has its executor up."""
    procs = [
        subprocess.Popen(
            [*wf_executable(), "worker", module],
            env=child_env(db_url, env),
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]

    def all_up() -> bool:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a worker ended: {finish(p).describe()}")
        return len({e.pid for e in wf.list_executors() if e.alive} & {p.pid for p in procs}) == n

    wait_for(all_up, timeout=60, interval=0.2, what=f"{n} workers up")
    return procs


def _settle() -> None:
    """Give running workers more than a poll of the schedules table (and a
    tick) to act on a change: what they must not do would show by then."""
    time.sleep(POLL + 1.5)


def test_each_tick_once_across_three_workers_one_killed_mid_tick(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    env = {
        "WF_TEST_MARKERS": str(markers),
        "WF_RECOVERY_INTERVAL": "1",
        # each tick is in flight this long: the kill below lands inside it
        "SCHED_STEP_SECONDS": "1.5",
    }
    procs = _wf_workers(APP, db_url, 3, env)
    pids = {p.pid for p in procs}
    killed: Any = None
    try:
        info = wf.create_schedule(
            "every-second", REPORT, "* * * * * *", args=["r"], kwargs={"scale": 2}
        )
        assert info.source == "db" and not info.paused and info.next_tick is not None

        def a_tick_in_flight() -> list[str] | None:
            for line in marker_lines(markers):
                if line.startswith("start "):
                    return line.split()
            return None

        wait_for(a_tick_in_flight, timeout=60, interval=0.02, what="a tick to start")
        started = a_tick_in_flight()
        assert started is not None
        killed_tick, killed_pid = started[1], int(started[2])
        (killed,) = [p for p in procs if p.pid == killed_pid]
        os.kill(killed_pid, signal.SIGKILL)
        assert finish(killed).returncode == -signal.SIGKILL
        killed_at = datetime.now(UTC)

        def recovered_and_three_more() -> bool:
            ticks = {w.workflow_id: w for w in _ticks("every-second")}
            after = [w for w in ticks.values() if _scheduled_at(w) > killed_at]
            done = killed_tick in ticks and ticks[killed_tick].status == SUCCESS
            return done and sum(w.status == SUCCESS for w in after) >= 3

        wait_for(recovered_and_three_more, timeout=90, interval=0.2, what="recovery and ticks")
        wf.pause_schedule("every-second")
        paused_at = datetime.now(UTC)
        wait_for(
            lambda: all(w.status == SUCCESS for w in _ticks("every-second")),
            timeout=60,
            interval=0.2,
            what="the started ticks to finish",
        )
    finally:
        results = stop_workers([p for p in procs if p is not killed])
    for r in results:
        assert r.returncode == 0, r.describe()

    ticks = sorted(_ticks("every-second"), key=_scheduled_at)
    times = [_scheduled_at(w) for w in ticks]
    lines = marker_lines(markers)
    ends = Counter(ln.split()[1] for ln in lines if ln.startswith("end "))
    starts = Counter(ln.split()[1] for ln in lines if ln.startswith("start "))
    # one workflow per tick, under the tick's own ID, every second from the
    # first to the last: none skipped while a worker lived (two always did)
    assert [w.workflow_id for w in ticks] == [tick_id("every-second", t) for t in times]
    assert len(set(times)) == len(times) >= 5
    assert all(b - a == timedelta(seconds=1) for a, b in zip(times, times[1:], strict=False)), times
    # the first tick is the first second after the schedule was created
    assert info.created_at is not None and times[0] - info.created_at <= timedelta(seconds=1)
    # nothing started after the pause
    assert times[-1] < paused_at
    for w in ticks:
        assert w.status == SUCCESS
        assert ends[w.workflow_id] == 1, (w.workflow_id, lines)  # each tick's body ran once
        assert w.output["label"] == "r" and w.output["scale"] == 2
        assert w.output["scheduled_at"] == _scheduled_at(w)
        assert w.output["pid"] in pids
    # the tick in flight at the kill was recovered by a live worker, under its
    # own ID: its step ran again there (at least once), never as a new tick
    (k,) = [w for w in ticks if w.workflow_id == killed_tick]
    assert k.output["pid"] != killed_pid and k.recovery_attempts >= 1
    assert starts[killed_tick] == 2 and ends[killed_tick] == 1
    assert f"end {killed_tick} {killed_pid}" not in lines
    (listed,) = [s for s in wf.list_schedules() if s.name == "every-second"]
    assert listed.paused and listed.next_tick is None and listed.last_tick == times[-1]


def test_a_running_worker_picks_up_changes_made_elsewhere(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    procs = spawn_workers(DECLARED_APP, db_url, tmp_path, 1, env={"WF_TEST_MARKERS": str(markers)})
    try:
        wait_for(
            lambda: any(s.name == DECLARED for s in wf.list_schedules()),
            timeout=30,
            interval=0.2,
            what="the declared schedule to be recorded",
        )
        created = datetime.now(UTC)
        wf.create_schedule("live", BARE, "* * * * * *")
        wait_for(
            lambda: sum(w.status == SUCCESS for w in _ticks("live", BARE)) >= 2,
            timeout=30,
            interval=0.2,
            what="two ticks of the stored schedule",
        )
        assert min(_scheduled_at(w) for w in _ticks("live", BARE)) > created - timedelta(seconds=1)
        # pausing works for both kinds, in the worker that runs them
        wf.pause_schedule("live")
        wf.pause_schedule(DECLARED)
        paused_at = datetime.now(UTC)
        listed = {s.name: s for s in wf.list_schedules()}
        assert listed["live"].paused and listed["live"].source == "db"
        assert listed[DECLARED].paused and listed[DECLARED].source == "code"
        assert listed["live"].next_tick is None and listed[DECLARED].next_tick is None
        with pytest.raises(wf.ConfigurationError, match="declared in the code"):
            wf.delete_schedule(DECLARED)
        _settle()
        assert all(_scheduled_at(w) < paused_at for w in _ticks("live", BARE))
        assert all(_scheduled_at(w) < paused_at for w in _ticks(DECLARED, DECLARED))
        # resumed: it ticks again from the resume, not the ticks missed meanwhile
        resumed_at = datetime.now(UTC)
        wf.resume_schedule("live")
        wait_for(
            lambda: any(
                _scheduled_at(w) > resumed_at and w.status == SUCCESS for w in _ticks("live", BARE)
            ),
            timeout=30,
            interval=0.2,
            what="a tick after the resume",
        )
        assert not [w for w in _ticks("live", BARE) if paused_at <= _scheduled_at(w) <= resumed_at]
        wf.delete_schedule("live")
        deleted_at = datetime.now(UTC)
        assert "live" not in {s.name for s in wf.list_schedules()}
        _settle()
        assert all(_scheduled_at(w) < deleted_at for w in _ticks("live", BARE))
        assert all(_scheduled_at(w) < paused_at for w in _ticks(DECLARED, DECLARED))
        # the declared schedule resumes as well
        wf.resume_schedule(DECLARED)
        wait_for(
            lambda: any(_scheduled_at(w) > deleted_at for w in _ticks(DECLARED, DECLARED)),
            timeout=30,
            interval=0.2,
            what="a declared tick after its resume",
        )
    finally:
        results = stop_workers(procs)
    for r in results:
        assert r.returncode == 0, r.describe()


def test_backfill_runs_each_missed_tick_once_and_trigger_runs_one_more(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    procs = spawn_workers(APP, db_url, tmp_path, 1, env={"WF_TEST_MARKERS": str(markers)})
    try:
        wf.create_schedule("nightly", REPORT, "0 3 * * *", args=["n"])
        today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        start, end = today - timedelta(days=5), today
        # two backfills of one range at once: each tick is enqueued once
        got: list[list[wf.WorkflowHandle]] = []
        threads = [
            threading.Thread(target=lambda: got.append(wf.backfill_schedule("nightly", start, end)))
            for _ in range(2)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ids = sorted({h.workflow_id for hs in got for h in hs})
        expected = [start + timedelta(days=d, hours=3) for d in range(5)]
        assert ids == sorted(tick_id("nightly", t) for t in expected)
        for wid in ids:
            assert wf.retrieve(wid).result(timeout=60)["label"] == "n"
        # again, and a wider range: only the ticks that have not run
        assert wf.backfill_schedule("nightly", start, end) == []
        wider = wf.backfill_schedule("nightly", start - timedelta(days=2), end)
        assert [h.workflow_id for h in wider] == [
            tick_id("nightly", start - timedelta(days=d, hours=-3)) for d in (2, 1)
        ]
        for h in wider:
            h.result(timeout=60)
        # the half-open range: a tick at `end` is not in it, one at `start` is
        at_three = today - timedelta(days=10) + timedelta(hours=3)
        (only,) = wf.backfill_schedule("nightly", at_three, at_three + timedelta(days=1))
        assert only.workflow_id == tick_id("nightly", at_three)
        only.result(timeout=60)
        # run now: one extra run with its own ID, also while paused
        wf.pause_schedule("nightly")
        before = datetime.now(UTC)
        first, second = wf.trigger_schedule("nightly"), wf.trigger_schedule("nightly")
        assert first.workflow_id != second.workflow_id
        for h in (first, second):
            assert h.workflow_id.startswith("sched-nightly-now-")
            out = h.result(timeout=60)
            assert out["label"] == "n" and out["scheduled_at"] >= before - timedelta(seconds=1)
    finally:
        results = stop_workers(procs)
    for r in results:
        assert r.returncode == 0, r.describe()
    ends = Counter(ln.split()[1] for ln in marker_lines(markers) if ln.startswith("end "))
    ran = [w.workflow_id for w in _ticks("nightly")]
    assert len(ran) == 5 + 2 + 1 + 2
    assert all(ends[wid] == 1 for wid in ran), ends
    assert all(w.queue == "default" for w in _ticks("nightly"))


def _nothing_written(db_url: str, schedules: int = 0) -> None:
    assert len(raw_rows(db_url, "schedules")) == schedules
    assert raw_rows(db_url, "workflows") == []


def test_bad_input_is_one_clear_error_and_writes_nothing(db_url: str, observe: str) -> None:
    assert wf.list_schedules() == []  # (the schema is there: nothing in it)
    bad_create: list[tuple[dict[str, Any], type[Exception], str]] = [
        (dict(target="tests.apps.no_such_module:f"), wf.ConfigurationError, "no_such_module"),
        (dict(target=f"{APP}:missing"), wf.ConfigurationError, "not a @wf.workflow"),
        (dict(target=f"{APP}:not_a_workflow"), wf.ConfigurationError, "not a @wf.workflow"),
        (dict(target="no-colon"), wf.ConfigurationError, "module:function"),
        (dict(cron="every day"), wf.ConfigurationError, "invalid cron"),
        (dict(cron="61 * * * *"), wf.ConfigurationError, "invalid cron"),
        (dict(args=[object()]), wf.SerializationError, "object"),
        (dict(args=[]), wf.ConfigurationError, "bad arguments"),  # label is required
        (dict(kwargs={"nope": 1}), wf.ConfigurationError, "bad arguments"),
        (dict(name="a:b"), wf.ConfigurationError, "code-declared"),
        (dict(name=""), wf.ConfigurationError, "schedule name"),
        (dict(name="x y"), wf.ConfigurationError, "schedule name"),
        (dict(queue=" "), wf.ConfigurationError, "queue"),
    ]
    for change, error, needle in bad_create:
        call: dict[str, Any] = dict(
            name="s", target=REPORT, cron="* * * * *", args=["a"], kwargs=None, queue=None
        )
        call.update(change)
        with pytest.raises(error, match=needle) as caught:
            wf.create_schedule(**call)
        assert "\n" not in str(caught.value), caught.value
    _nothing_written(observe)
    wf.create_schedule("s", REPORT, "0 3 * * *", args=["a"])
    with pytest.raises(wf.ConfigurationError, match="exists already"):
        wf.create_schedule("s", BARE, "* * * * *")
    for fn in (wf.pause_schedule, wf.resume_schedule, wf.delete_schedule, wf.trigger_schedule):
        with pytest.raises(wf.ConfigurationError, match="no schedule named 'ghost'"):
            fn("ghost")
    now = datetime.now(UTC)
    bad_backfill: list[tuple[str, datetime, datetime, str]] = [
        ("ghost", now - timedelta(days=1), now, "no schedule named"),
        ("s", now, now - timedelta(days=1), "not before end"),
        ("s", now - timedelta(days=1), now + timedelta(days=1), "in the future"),
        ("s", datetime(2026, 1, 1), datetime(2026, 1, 2), "timezone-aware"),
    ]
    for name, start, end, needle in bad_backfill:
        with pytest.raises(wf.ConfigurationError, match=needle):
            wf.backfill_schedule(name, start, end)
    wf.create_schedule("fast", BARE, "* * * * * *")
    with pytest.raises(wf.ConfigurationError, match="more than 10,000 ticks"):
        wf.backfill_schedule("fast", now - timedelta(hours=3), now)
    _nothing_written(observe, schedules=2)
    (s,) = [x for x in wf.list_schedules() if x.name == "s"]
    assert (s.workflow_name, s.cron, s.args, s.kwargs, s.queue) == (
        REPORT,
        "0 3 * * *",
        ("a",),
        {},
        None,
    )
