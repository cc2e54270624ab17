"""SPEC §3: the workflow ID is the idempotency key. Starting an ID that exists
runs nothing new; concurrent starts of one ID (even from several processes)
execute the body once; the same ID with another function is an error."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import wf

from tests.helpers import count, finish, marker_lines, outcome, spawn_app, wait_for

APP = "tests.apps.crashy"

RUNS: list[str] = []


@wf.step()
def record_run(tag: str) -> str:
    RUNS.append(tag)
    return tag


@wf.workflow()
def greet(name: str) -> str:
    record_run(name)
    return f"hello {name}"


@wf.workflow()
def other(name: str) -> str:
    return f"other {name}"


class Boom(Exception):
    pass


@wf.workflow()
def failing(name: str) -> str:
    record_run(name)
    raise Boom(f"failed for {name}")


@pytest.fixture(autouse=True)
def _clear_runs() -> None:
    RUNS.clear()


def test_same_id_twice_runs_once(launched: str) -> None:
    with wf.set_workflow_id("order-42"):
        assert greet("bob") == "hello bob"
    with wf.set_workflow_id("order-42"):
        assert greet("bob") == "hello bob"
    assert RUNS == ["bob"]
    assert [w.workflow_id for w in wf.list_workflows()] == ["order-42"]
    assert len(wf.list_steps("order-42")) == 1


def test_same_id_returns_the_recorded_result_even_with_other_inputs(launched: str) -> None:
    with wf.set_workflow_id("order-43"):
        assert greet("bob") == "hello bob"
    with wf.set_workflow_id("order-43"):
        assert greet("alice") == "hello bob"
    assert RUNS == ["bob"]


def test_same_id_reraises_the_recorded_error(launched: str) -> None:
    for _ in range(2):
        with wf.set_workflow_id("fail-1"), pytest.raises(Boom, match="failed for x"):
            failing("x")
    assert RUNS == ["x"]
    info = wf.get_workflow("fail-1")
    assert info.status == wf.Status.ERROR
    assert info.error is not None and info.error.type.endswith("Boom")
    assert info.error.message == "failed for x"


def test_start_and_call_share_the_id(launched: str) -> None:
    h1 = wf.start(greet, "carol", workflow_id="shared-1")
    h2 = wf.start(greet, "carol", workflow_id="shared-1")
    assert h1.workflow_id == h2.workflow_id == "shared-1"
    assert h1.result(timeout=30) == "hello carol"
    assert h2.result(timeout=30) == "hello carol"
    with wf.set_workflow_id("shared-1"):
        assert greet("carol") == "hello carol"
    assert RUNS == ["carol"]
    assert wf.retrieve("shared-1").result() == "hello carol"


def test_same_id_with_another_function_is_a_conflict(launched: str) -> None:
    with wf.set_workflow_id("conflict-1"):
        greet("dan")
    with wf.set_workflow_id("conflict-1"), pytest.raises(wf.WorkflowConflictError):
        other("dan")
    with pytest.raises(wf.WorkflowConflictError):
        wf.start(other, "dan", workflow_id="conflict-1")
    assert wf.get_workflow("conflict-1").output == "hello dan"
    assert len(wf.list_workflows()) == 1


def test_concurrent_starts_in_threads_run_the_body_once(launched: str) -> None:
    results: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def go() -> None:
        barrier.wait()
        try:
            with wf.set_workflow_id("race-threads"):
                results.append(greet("eve"))
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=go) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert results == ["hello eve"] * 8
    assert RUNS == ["eve"]


def test_four_processes_starting_one_id_run_the_body_once(db_url: str, tmp_path: Path) -> None:
    markers = tmp_path / "markers.txt"
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    env = {"WF_TEST_MARKERS": str(markers), "WF_TEST_BARRIER": str(barrier)}
    procs = [
        spawn_app(APP, "start", "race-procs", "once", '["p"]', db_url=db_url, env=env)
        for _ in range(4)
    ]

    def all_ready() -> bool:
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(finish(p).describe())
        return len(list(barrier.glob("ready-*"))) == 4

    # all four launched (migrations raced too), then released together
    wait_for(all_ready, timeout=90, what="4 processes launched")
    (barrier / "go").touch()
    results = [finish(p, timeout=90) for p in procs]
    assert [outcome(r) for r in results] == ["p:slow"] * 4
    lines = marker_lines(markers)
    assert count(lines, "once body") == 1, lines
    assert count(lines, "slow_step start") == 1, lines

    wf.configure(database_url=db_url)
    (info,) = wf.list_workflows()
    assert info.workflow_id == "race-procs" and info.status == wf.Status.SUCCESS
