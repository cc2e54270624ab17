"""SPEC §4.6: a workflow recovered more than max_recovery_attempts times becomes
RETRIES_EXCEEDED, is then left alone by recovery, and wf.resume runs it again."""

from __future__ import annotations

from pathlib import Path

import pytest
import wf

from tests.helpers import count, error_line, marker_lines, outcome, run_app

APP = "tests.apps.crashy"
MAX_ATTEMPTS = 2  # @wf.workflow(max_recovery_attempts=2) on crashy.fragile


def test_repeatedly_killed_workflow_becomes_retries_exceeded(db_url: str, tmp_path: Path) -> None:
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    killing = {**env, "WF_TEST_KILL_AT": "in_fragile"}

    first = run_app(APP, "start", "fragile-1", "fragile", db_url=db_url, env=killing)
    assert first.killed, first.describe()

    # each recovery runs the step again and dies in it, up to the limit
    for attempt in range(1, MAX_ATTEMPTS + 1):
        res = run_app(APP, "recover", "fragile-1", db_url=db_url, env=killing)
        assert res.killed, f"recovery {attempt}: {res.describe()}"
    assert count(marker_lines(markers), "fragile_step start") == MAX_ATTEMPTS + 1

    # one recovery too many: the workflow is given up, not run
    res = run_app(APP, "recover", "fragile-1", db_url=db_url, env=killing)
    assert not res.killed, res.describe()
    assert "RetriesExceeded" in error_line(res), res.describe()
    assert count(marker_lines(markers), "fragile_step start") == MAX_ATTEMPTS + 1

    wf.configure(database_url=db_url)
    info = wf.get_workflow("fragile-1")
    assert info.status == wf.Status.RETRIES_EXCEEDED
    assert info.recovery_attempts >= MAX_ATTEMPTS
    with pytest.raises(wf.RetriesExceededError):
        wf.retrieve("fragile-1").result(timeout=10)

    # recovery never picks it up again
    res = run_app(APP, "recover", "fragile-1", db_url=db_url, env=env)
    assert "RetriesExceeded" in error_line(res), res.describe()
    assert count(marker_lines(markers), "fragile_step start") == MAX_ATTEMPTS + 1
    assert wf.get_workflow("fragile-1").status == wf.Status.RETRIES_EXCEEDED

    # resumable: wf.resume runs it again, from its last finished call
    res = run_app(APP, "resume", "fragile-1", db_url=db_url, env=env)
    assert outcome(res) == "survived"
    assert count(marker_lines(markers), "fragile_step start") == MAX_ATTEMPTS + 2
    assert wf.get_workflow("fragile-1").status == wf.Status.SUCCESS
