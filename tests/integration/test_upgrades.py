"""Upgrading workflow code under in-flight runs (SPEC §3.1): ``wf.patched``
and ``wf.deprecated_patch`` in a first run, in a replay, across a SIGKILL and
recovery by the next release's code; ``wf.replay`` checking recorded
workflows against today's code without running or writing anything.

The app (tests/apps/upgrades.py) has one workflow in five releases; which
step ran is read from marker lines the step bodies write, so a step that ran
twice, or a branch the code should not have taken, shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import upgrades
from tests.helpers import count, marker_lines, outcome, raw_rows, run_app

APP = "tests.apps.upgrades"


@pytest.fixture
def markers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "markers.txt"
    monkeypatch.setenv("WF_TEST_MARKERS", str(path))
    return path


def _code(monkeypatch: pytest.MonkeyPatch, release: str) -> None:
    monkeypatch.setattr(upgrades, "CODE", release)


def _kinds(workflow_id: str) -> list[tuple[str, str]]:
    return [(s.kind, s.name) for s in wf.list_steps(workflow_id)]


def _writes(db_url: str) -> tuple[int, int, int, list[Any]]:
    """What a dry replay must leave as it is: rows of steps, logs and
    events, and every workflow row."""
    return (
        len(raw_rows(db_url, "steps")),
        len(raw_rows(db_url, "logs")),
        len(raw_rows(db_url, "events")),
        sorted(
            (r["workflow_id"], r["status"], r["updated_at"], r["executor_id"])
            for r in raw_rows(db_url, "workflows")
        ),
    )


# -- in one process -------------------------------------------------------------------


def test_a_first_run_takes_the_patched_branch_and_records_the_patch(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _code(monkeypatch, "v2")
    with wf.set_workflow_id("fresh"):
        assert upgrades.flow(1) == "v2:200"
    assert _kinds("fresh") == [
        ("step", "a"),
        ("patch", "use-b2"),
        ("step", "b2"),
        ("step", "c"),
    ]
    patch = wf.list_steps("fresh")[1]
    assert patch.position == 2 and patch.output is True


def test_a_run_recorded_before_the_change_replays_the_old_branch(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with wf.set_workflow_id("old"):
        assert upgrades.flow(1) == "v1:20"
    # the next release replays the old run's a and b (a restart copies them)
    _code(monkeypatch, "v2")
    h = wf.restart("old", from_step=3, workflow_id="old-again")
    assert h.result(timeout=30) == "v2:20"  # b's recorded 20, not b2's 200
    assert [k for k, _ in _kinds("old-again")] == ["step", "step", "step"]
    lines = marker_lines(markers)
    assert count(lines, "b old-again") == 0 and count(lines, "b2 old-again") == 0
    assert count(lines, "c old-again") == 1


def test_code_without_the_patch_check_steps_over_a_recorded_marker(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _code(monkeypatch, "v2")
    with wf.set_workflow_id("marked"):
        upgrades.flow(1)
    _code(monkeypatch, "v4")  # the patch check deleted
    h = wf.restart("marked", from_step=4, workflow_id="marked-v4")
    assert h.result(timeout=30) == "v4:200"
    assert count(marker_lines(markers), "b2 marked-v4") == 0  # replayed, not run


def test_a_deprecated_patch_passes_a_patched_run_and_refuses_an_older_one(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with wf.set_workflow_id("pre"):
        upgrades.flow(1)
    _code(monkeypatch, "v2")
    with wf.set_workflow_id("post"):
        upgrades.flow(1)
    _code(monkeypatch, "v3")
    assert wf.restart("post", from_step=4, workflow_id="post-v3").result(timeout=30) == "v3:200"
    with wf.set_workflow_id("fresh-v3"):
        assert upgrades.flow(2) == "v3:300"
    assert ("patch", "use-b2") in _kinds("fresh-v3")  # a later release may delete the check
    h = wf.restart("pre", from_step=3, workflow_id="pre-v3")
    with pytest.raises(wf.NonDeterminismError) as e:
        h.result(timeout=30)
    assert "use-b2" in str(e.value) and "deprecated_patch" in str(e.value)
    lines = marker_lines(markers)
    assert count(lines, "b2 pre-v3") == 0 and count(lines, "c pre-v3") == 0


def test_an_unguarded_change_names_the_recorded_call_and_points_to_patched(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with wf.set_workflow_id("unguarded"):
        upgrades.flow(1)
    _code(monkeypatch, "bad")
    h = wf.restart("unguarded", from_step=3, workflow_id="unguarded-bad")
    with pytest.raises(wf.NonDeterminismError) as e:
        h.result(timeout=30)
    text = str(e.value)
    assert "position 2" in text and "'b'" in text
    assert "'b2'" in text and "wf.patched" in text


def test_patched_outside_a_workflow_is_an_error(launched: str) -> None:
    with pytest.raises(wf.WfError, match="workflow"):
        wf.patched("x")
    with pytest.raises(wf.WfError, match="workflow"):
        wf.deprecated_patch("x")


def test_an_async_workflow_takes_the_branch_its_record_says(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    async def run(wid: str) -> int:
        with wf.set_workflow_id(wid):
            return int(await upgrades.flow_async(1))

    assert asyncio.run(run("async-old")) == 20
    _code(monkeypatch, "v2")
    assert asyncio.run(run("async-new")) == 200
    assert wf.replay("async-old").complete and wf.replay("async-new").complete
    assert count(marker_lines(markers), "b_async async-old") == 1


# -- wf.replay --------------------------------------------------------------------------


def test_replay_checks_ended_runs_against_each_release_and_writes_nothing(
    launched: str, markers: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with wf.set_workflow_id("r-v1"):
        upgrades.flow(1)
    _code(monkeypatch, "v2")
    with wf.set_workflow_id("r-v2"):
        upgrades.flow(1)
    before, lines_before = _writes(launched), marker_lines(markers)

    info = wf.replay("r-v1")  # v2 code, v1 record: the old branch
    assert (info.workflow_id, info.status, info.calls, info.complete) == (
        "r-v1",
        "SUCCESS",
        3,
        True,
    )
    assert wf.replay("r-v2").calls == 4
    _code(monkeypatch, "v4")
    assert wf.replay("r-v2").complete
    with pytest.raises(wf.NonDeterminismError, match="position 2"):
        wf.replay("r-v1")  # v4 has no old branch
    _code(monkeypatch, "v1")
    with pytest.raises(wf.NonDeterminismError):
        wf.replay("r-v2")  # v1 calls b where the run called b2
    assert _writes(launched) == before
    assert marker_lines(markers) == lines_before  # no step body ran


def test_replay_reports_a_changed_outcome_and_calls_the_code_stopped_making(
    launched: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with wf.set_workflow_id("outcome"):
        upgrades.flow(1)
    monkeypatch.setattr(upgrades, "c", lambda z: f"changed:{z}")  # no longer a step
    with pytest.raises(wf.NonDeterminismError) as e:
        wf.replay("outcome")
    assert "position 3" in str(e.value)  # the recorded c that the code no longer calls


def test_replay_of_an_unknown_id_is_not_found(launched: str) -> None:
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.replay("nope")


# -- across processes: a crash, then the next release recovers ---------------------------


def _crash(db_url: str, wid: str, release: str, markers: Path, kill_at: str) -> None:
    env = {"WF_TEST_CODE": release, "WF_TEST_MARKERS": str(markers), "WF_TEST_KILL_AT": kill_at}
    res = run_app(APP, "start", wid, "flow", "[1]", db_url=db_url, env=env)
    assert res.killed, res.describe()


def _recover(db_url: str, wid: str, release: str, markers: Path) -> Any:
    env = {"WF_TEST_CODE": release, "WF_TEST_MARKERS": str(markers)}
    return run_app(APP, "recover", wid, db_url=db_url, env=env)


def test_patched_across_a_crash_and_recovery_by_the_next_release(
    db_url: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    # an old run killed after its b: the new code replays b (the old branch)
    _crash(db_url, "k-v1", "v1", markers, "after_b")
    res = _recover(db_url, "k-v1", "v2", markers)
    assert outcome(res) == "v2:20", res.describe()
    # a patched run killed after b2, recovered by the release without the check
    _crash(db_url, "k-v2", "v2", markers, "after_b")
    res = _recover(db_url, "k-v2", "v4", markers)
    assert outcome(res) == "v4:200", res.describe()
    # an old run and the release that deleted the old branch: a loud stop
    _crash(db_url, "k-v1b", "v1", markers, "after_b")
    res = _recover(db_url, "k-v1b", "v3", markers)
    assert "NonDeterminismError" in res.stdout and "use-b2" in res.stdout, res.describe()
    lines = marker_lines(markers)
    for wid in ("k-v1", "k-v2", "k-v1b"):
        assert count(lines, f"a {wid}") == 1, lines  # never re-run
    assert count(lines, "b k-v1") == 1 and count(lines, "b2 k-v1") == 0
    assert count(lines, "b2 k-v2") == 1
    assert count(lines, "c k-v1b") == 0
    wf.configure(database_url=db_url)
    assert ("patch", "use-b2") in _kinds("k-v2")


def test_replay_of_an_in_flight_run_stops_where_its_record_ends(
    db_url: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    _crash(db_url, "inflight", "v1", markers, "after_a")
    wf.configure(database_url=db_url)
    before = _writes(db_url)
    info = wf.replay("inflight")
    assert (info.status, info.calls, info.complete) == ("PENDING", 1, False)
    assert _writes(db_url) == before
    assert wf.get_workflow("inflight").status == "PENDING"  # not adopted by the replay
