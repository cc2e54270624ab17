"""wf.launch / lazy launch / shutdown, and what recovery at launch must not do:
adopt a workflow that this very process is running in the caller's thread."""

from __future__ import annotations

import threading
import time

import pytest
import wf

RUNS: list[str] = []
_lock = threading.Lock()


@wf.step()
def slow_once(tag: str) -> str:
    with _lock:
        RUNS.append(tag)
    time.sleep(0.3)
    return tag


@wf.workflow()
def direct(tag: str) -> str:
    return slow_once(tag)


@pytest.fixture(autouse=True)
def _clear() -> None:
    RUNS.clear()


def test_workflow_called_right_after_launch_runs_once(db_url: str) -> None:
    """Recovery at launch runs in the background while the caller already runs
    a workflow in its own thread: it must not adopt that workflow (which would
    run its steps a second time, concurrently, and count a recovery)."""
    for i in range(6):
        wf.launch(database_url=db_url)
        with wf.set_workflow_id(f"direct-{i}"):
            assert direct(f"t{i}") == f"t{i}"
        wf.shutdown()
    wf.configure(database_url=db_url)
    attempts = {w.workflow_id: w.recovery_attempts for w in wf.list_workflows(limit=None)}
    assert attempts == {f"direct-{i}": 0 for i in range(6)}
    assert sorted(RUNS) == sorted(f"t{i}" for i in range(6))


def test_lazy_launch_from_the_environment(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WF_DATABASE_URL", db_url)
    with wf.set_workflow_id("lazy-1"):
        assert direct("lazy") == "lazy"
    assert RUNS == ["lazy"]
    assert wf.get_workflow("lazy-1").status == wf.Status.SUCCESS
    assert wf.get_workflow("lazy-1").recovery_attempts == 0


def test_step_and_transaction_outside_a_workflow_just_run(launched: str) -> None:
    assert slow_once("plain") == "plain"
    assert RUNS == ["plain"]
    assert wf.list_workflows(limit=None) == []


def test_shutdown_twice_and_relaunch(db_url: str) -> None:
    wf.launch(database_url=db_url)
    wf.shutdown()
    wf.shutdown()
    wf.launch(database_url=db_url)
    assert wf.start(direct, "again").result(timeout=30) == "again"
