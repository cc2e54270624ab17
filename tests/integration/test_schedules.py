"""SPEC §3 @wf.scheduled: with two worker processes up, each tick of a
schedule runs exactly once (one workflow per tick ID, its body run once).
The schedule ticks every second (croniter's optional sixth field is seconds),
so a few ticks take a few seconds. The app is tests/apps/comm_schedules.py;
it is never imported here (its schedule would tick in this process)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import wf

from tests.apps.comm_worker import spawn_workers, stop_workers
from tests.helpers import marker_lines, wait_for

MODULE = "tests.apps.comm_schedules"
NAME = f"{MODULE}:every_second"


def _ticks() -> list[wf.WorkflowInfo]:
    return wf.list_workflows(name=NAME, limit=None)


def test_each_tick_runs_once_with_two_workers_up(db_url: str, observe: str, tmp_path: Path) -> None:
    markers = tmp_path / "markers.txt"
    before = datetime.now(UTC)
    procs = spawn_workers(MODULE, db_url, tmp_path, 2, env={"WF_TEST_MARKERS": str(markers)})
    try:
        both_up = datetime.now(UTC)

        def three_ticks_with_both_up() -> bool:
            done = [
                w
                for w in _ticks()
                if w.status == wf.Status.SUCCESS and w.inputs["args"][0] >= both_up
            ]
            return len(done) >= 3

        wait_for(three_ticks_with_both_up, timeout=30, interval=0.2, what="three ticks")
    finally:
        results = stop_workers(procs)
    for r in results:
        assert r.returncode == 0, r.describe()

    ticks = _ticks()
    ran = Counter(line.split()[1] for line in marker_lines(markers))
    assert set(ran) <= {w.workflow_id for w in ticks}, (ran, ticks)
    scheduled = []
    for w in ticks:
        scheduled_at, started_at = w.inputs["args"]
        scheduled.append(scheduled_at)
        # one deterministic ID per tick
        assert w.workflow_id == f"sched-{NAME}-{scheduled_at:%Y-%m-%dT%H:%M:%SZ}"
        assert scheduled_at.microsecond == 0
        assert started_at >= scheduled_at
        if w.status == wf.Status.SUCCESS:
            assert ran[w.workflow_id] == 1, (w.workflow_id, marker_lines(markers))
            assert w.output["scheduled_at"] == scheduled_at
            assert w.output["pid"] in {p.pid for p in procs}
        else:  # a tick still running when the workers stopped
            assert w.status == wf.Status.PENDING and ran[w.workflow_id] <= 1
    assert len(scheduled) == len(set(scheduled))
    # ticks missed while nothing ran are not replayed: none before the workers started
    assert min(scheduled) >= before.replace(microsecond=0) - timedelta(seconds=1)
    # the workers recorded the schedule for tools (`wf schedule list`), with its last tick
    (recorded,) = [s for s in wf.list_schedules() if s.workflow_name == NAME]
    assert recorded.cron.split()[0] == "*"
    assert recorded.last_tick == max(scheduled)
    assert recorded.next_tick is not None and recorded.next_tick > recorded.last_tick
