"""SPEC §4.1-4.3 with real crashes: a process running a workflow is killed with
SIGKILL at points inside and between steps and transactions; a new process
finishes it. Counters in the application database prove each transaction
committed exactly once; marker files prove no completed step ran again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import wf

from tests.helpers import (
    count,
    counters,
    create_counter_table,
    finish,
    marker_lines,
    outcome,
    run_app,
    spawn_app,
    wait_for_file,
)

APP = "tests.apps.crashy"

# kill point -> the body that was running when the process died (it runs twice)
KILL_POINTS = {
    "none": None,
    "in_step1": "step_one",  # inside a step
    "after_step1": None,  # between a step and a transaction
    "in_t1": "bump t1",  # inside a transaction, its write done, before commit
    "after_t1": None,  # right after the transaction committed
    "in_step2": "step_two",
    "after_step2": None,
    "in_t2": "bump t2",
    "after_t2": None,  # every call done, the workflow's result not yet recorded
}


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    return tmp_path / "markers.txt"


def _names(steps: list[wf.StepInfo]) -> list[tuple[str, str]]:
    return [(s.name.rpartition(":")[2].rpartition(".")[2], s.kind) for s in steps]


@pytest.mark.parametrize("kill_at", list(KILL_POINTS))
def test_workflow_runs_to_completion_after_sigkill(
    db_url: str, markers: Path, kill_at: str
) -> None:
    create_counter_table(db_url)
    env = {"WF_TEST_MARKERS": str(markers)}
    wid = f"pipeline-{kill_at}"

    first = run_app(
        APP, "start", wid, "pipeline", "[4]", db_url=db_url, env={**env, "WF_TEST_KILL_AT": kill_at}
    )
    if kill_at == "none":
        assert outcome(first) == {"a": 5, "b": 50, "n1": 1, "n2": 1}
    else:
        assert first.killed, first.describe()
        assert f"killed at {kill_at}" in marker_lines(markers)
        wf.configure(database_url=db_url)
        assert wf.get_workflow(wid).status == wf.Status.PENDING
        # a new process launches, sees the dead executor (its pid is gone) and finishes the work
        second = run_app(APP, "recover", wid, db_url=db_url, env=env)
        assert outcome(second) == {"a": 5, "b": 50, "n1": 1, "n2": 1}

    # 4.2: each transaction's write committed exactly once
    assert counters(db_url) == {"t1": 1, "t2": 1}

    # 4.3: every body completed exactly once; only the one that was interrupted started twice
    lines = marker_lines(markers)
    interrupted = KILL_POINTS[kill_at]
    for body in ("step_one", "bump t1", "step_two", "bump t2"):
        assert count(lines, f"{body} end") == 1, (body, lines)
        assert count(lines, f"{body} start") == (2 if body == interrupted else 1), (body, lines)

    wf.configure(database_url=db_url)
    info = wf.get_workflow(wid)
    assert info.status == wf.Status.SUCCESS
    assert info.output == {"a": 5, "b": 50, "n1": 1, "n2": 1}
    assert info.error is None
    assert info.recovery_attempts == (0 if kill_at == "none" else 1)
    steps = wf.list_steps(wid)
    assert [s.position for s in steps] == [1, 2, 3, 4]
    assert _names(steps) == [
        ("step_one", "step"),
        ("bump", "transaction"),
        ("step_two", "step"),
        ("bump", "transaction"),
    ]
    assert [s.output for s in steps] == [5, 1, 50, 1]
    assert all(s.error is None for s in steps)


@pytest.mark.parametrize("kill_at", ["in_t1", "after_t1", "in_t2"])
def test_exactly_once_with_a_separate_application_database(
    db_url: str, markers: Path, tmp_path: Path, kill_at: str
) -> None:
    """WF_APP_DATABASE_URL: transactions and their recorded outputs live in the
    application database, committed together."""
    app_url = "sqlite:///" + str(tmp_path / "app.sqlite")
    create_counter_table(app_url)
    env = {"WF_TEST_MARKERS": str(markers), "WF_APP_DATABASE_URL": app_url}
    first = run_app(
        APP,
        "start",
        "sep-1",
        "pipeline",
        "[1]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": kill_at},
    )
    assert first.killed, first.describe()
    second = run_app(APP, "recover", "sep-1", db_url=db_url, env=env)
    assert outcome(second) == {"a": 2, "b": 20, "n1": 1, "n2": 1}
    assert counters(app_url) == {"t1": 1, "t2": 1}
    lines = marker_lines(markers)
    assert count(lines, "bump t1 end") == 1 and count(lines, "bump t2 end") == 1


@pytest.mark.parametrize("kill_at", ["in_astep", "after_astep", "in_aat1", "after_at1"])
def test_async_workflow_runs_to_completion_after_sigkill(
    db_url: str, markers: Path, kill_at: str
) -> None:
    """The same guarantees for async def workflows, steps and transactions."""
    create_counter_table(db_url)
    env = {"WF_TEST_MARKERS": str(markers)}
    first = run_app(
        APP,
        "start",
        "apipe",
        "async_pipeline",
        "[1]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": kill_at},
    )
    assert first.killed, first.describe()
    second = run_app(APP, "recover", "apipe", db_url=db_url, env=env)
    assert outcome(second) == {"a": 2, "b": 3, "n": 1}
    assert counters(db_url) == {"at1": 1}
    lines = marker_lines(markers)
    assert count(lines, "astep start") == (3 if kill_at == "in_astep" else 2), lines
    assert count(lines, "astep end") == 2, lines
    assert count(lines, "abump at1 start") == (2 if kill_at == "in_aat1" else 1), lines
    assert count(lines, "abump at1 end") == 1, lines
    wf.configure(database_url=db_url)
    assert [s.kind for s in wf.list_steps("apipe")] == ["step", "transaction", "step"]


@pytest.mark.parametrize("kill_at", ["in_step1", "after_t1"])
def test_wf_recover_finishes_a_dead_executors_workflow(
    db_url: str, markers: Path, kill_at: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """wf.recover() (what `wf recover` runs) imports the recorded module and
    finishes the dead executor's workflow at once."""
    create_counter_table(db_url)
    env = {"WF_TEST_MARKERS": str(markers)}
    first = run_app(
        APP,
        "start",
        "rec-1",
        "pipeline",
        "[1]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": kill_at},
    )
    assert first.killed, first.describe()

    monkeypatch.setenv("WF_TEST_MARKERS", str(markers))
    wf.configure(database_url=db_url)
    result = wf.recover()
    assert wf.retrieve("rec-1").result(timeout=60) == {"a": 2, "b": 20, "n1": 1, "n2": 1}
    assert counters(db_url) == {"t1": 1, "t2": 1}
    assert count(marker_lines(markers), "step_one end") == 1
    # what `wf recover` prints: the workflows this call recovered
    assert [h.workflow_id for h in result.handles] == ["rec-1"]
    assert wf.get_workflow("rec-1").recovery_attempts == 1
    assert wf.get_workflow("rec-1").status == wf.Status.SUCCESS


def test_a_live_executor_adopts_a_dead_ones_workflow(
    db_url: str, markers: Path, tmp_path: Path
) -> None:
    """Periodic recovery, not only recovery at launch: a process that launched
    before the crash adopts the workflow within seconds. Dead same-host pids
    are detected at once, without waiting for a stale heartbeat (30 s)."""
    create_counter_table(db_url)
    env = {"WF_TEST_MARKERS": str(markers)}
    ready = tmp_path / "worker-ready"
    worker = spawn_app(
        APP,
        "wait",
        "adopt-1",
        db_url=db_url,
        env={**env, "WF_TEST_READY": str(ready), "WF_RECOVERY_INTERVAL": "1"},
    )
    wait_for_file(ready, timeout=60, proc=worker)

    victim = run_app(
        APP,
        "start",
        "adopt-1",
        "pipeline",
        "[2]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "in_step2"},
    )
    assert victim.killed, victim.describe()
    died = time.monotonic()
    res = finish(worker, timeout=60)
    assert outcome(res) == {"a": 3, "b": 30, "n1": 1, "n2": 1}
    assert time.monotonic() - died < 20
    assert counters(db_url) == {"t1": 1, "t2": 1}
    assert count(marker_lines(markers), "step_two start") == 2
    assert count(marker_lines(markers), "step_one start") == 1


def test_child_workflows_keep_their_ids_across_a_crash(db_url: str, markers: Path) -> None:
    env = {"WF_TEST_MARKERS": str(markers)}
    first = run_app(
        APP,
        "start",
        "parent-1",
        "parent_job",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "after_child1"},
    )
    assert first.killed, first.describe()
    second = run_app(APP, "recover", "parent-1", db_url=db_url, env=env)
    assert outcome(second) == ["first:2", "second:2"]
    # the first child ran once (it was not re-run under a new ID), the second once
    assert count(marker_lines(markers), "step_one end") == 2

    wf.configure(database_url=db_url)
    steps = wf.list_steps("parent-1")
    assert [s.kind for s in steps] == ["child", "child"]
    assert [s.child_workflow_id for s in steps] == [f"parent-1-{s.position}" for s in steps]
    children = {
        w.workflow_id: w for w in wf.list_workflows(limit=None) if w.workflow_id != "parent-1"
    }
    assert set(children) == {"parent-1-1", "parent-1-2"}
    assert all(c.status == wf.Status.SUCCESS for c in children.values())
    assert all(c.parent_workflow_id == "parent-1" for c in children.values())


def test_durable_logs_appear_once_each_after_recovery(db_url: str, markers: Path) -> None:
    create_counter_table(db_url)
    env = {"WF_TEST_MARKERS": str(markers)}
    first = run_app(
        APP,
        "start",
        "logs-1",
        "pipeline",
        "[7]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "after_step2"},
    )
    assert first.killed, first.describe()
    wf.configure(database_url=db_url)
    before = [r.message for r in wf.list_logs("logs-1")]
    assert before == ["pipeline 7 begins"]

    second = run_app(APP, "recover", "logs-1", db_url=db_url, env=env)
    outcome(second)
    records = wf.list_logs("logs-1")
    assert [r.message for r in records] == ["pipeline 7 begins", "pipeline 7 ends"]
    assert all(r.workflow_id == "logs-1" and r.level == "INFO" for r in records)


def test_killed_process_is_really_gone(db_url: str, markers: Path) -> None:
    """Guard for the harness itself: the kill points SIGKILL the process (no
    atexit, no finally, no wf.shutdown), as a crash would."""
    create_counter_table(db_url)
    res = run_app(
        APP,
        "start",
        "gone-1",
        "pipeline",
        "[0]",
        db_url=db_url,
        env={"WF_TEST_MARKERS": str(markers), "WF_TEST_KILL_AT": "in_step1"},
    )
    assert res.killed
    assert res.returncode == -9
    assert "RESULT" not in res.stdout and "ERROR" not in res.stdout
