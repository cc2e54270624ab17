"""wf recover after a crash (kill -9), and wf worker with its queues and signals."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from tests.cli.conftest import APPS, WORKFLOW_KEYS, Wf, kill9, wait_for_path


def _crash_mid_workflow(wf_cli: Wf, marker: Path, wid: str) -> None:
    proc = wf_cli.spawn("start", "--id", wid, f"{APPS}:crashable", str(marker))
    wait_for_path(Path(str(marker) + ".ready"), proc)
    kill9(proc)
    assert wf_cli.status(wid)["status"] == "PENDING"


def _log_lines(marker: Path) -> list[str]:
    return Path(str(marker) + ".log").read_text().splitlines()


def test_recover_after_kill_9(wf_cli: Wf, marker: Path) -> None:
    _crash_mid_workflow(wf_cli, marker, "crashed")
    marker.touch()  # the blocking step may finish now
    res = wf_cli("recover", timeout=90).ok()
    assert "crashed" in res.out and "SUCCESS" in res.out
    info = wf_cli.status("crashed")
    assert info["status"] == "SUCCESS" and info["output"] == "recovered"
    assert info["recovery_attempts"] >= 1
    assert _log_lines(marker) == ["step1", "step3"]  # step 1 was not run again
    # nothing left: a second recover does nothing
    res = wf_cli("recover").ok()
    assert "nothing to recover" in res.out


def test_recover_json_with_modules(wf_cli: Wf, marker: Path) -> None:
    _crash_mid_workflow(wf_cli, marker, "crashed2")
    marker.touch()
    docs = wf_cli("recover", "--json", APPS, timeout=90).ok().json()
    assert [d["workflow_id"] for d in docs] == ["crashed2"]
    assert set(docs[0]) == WORKFLOW_KEYS and docs[0]["status"] == "SUCCESS"
    assert wf_cli("recover", "--json").ok().json() == []


def test_recover_a_named_executor(wf_cli: Wf, marker: Path) -> None:
    _crash_mid_workflow(wf_cli, marker, "byexec")
    executor = wf_cli.status("byexec")["executor_id"]
    marker.touch()
    wf_cli("recover", "--executor", "someone-else").ok()
    assert wf_cli.status("byexec")["status"] == "PENDING"
    docs = wf_cli("recover", "--json", "--executor", executor, timeout=90).ok().json()
    assert [d["workflow_id"] for d in docs] == ["byexec"]


def test_recover_bad_input(wf_cli: Wf, db_url: str) -> None:
    wf_cli("recover", "tests.cli.apps.nope").expect(2).one_line_error("tests.cli.apps.nope")
    wf_cli("recover", "--all", "--executor", "x").expect(2).one_line_error("--executor")


def test_recover_skips_cancelled_workflows(wf_cli: Wf, marker: Path) -> None:
    _crash_mid_workflow(wf_cli, marker, "c")
    wf_cli("cancel", "c").ok()
    res = wf_cli("recover").ok()  # cancelled workflows are never recovered
    assert "nothing to recover" in res.out


def test_recover_exits_1_when_a_recovered_workflow_fails(wf_cli: Wf, marker: Path) -> None:
    proc = wf_cli.spawn("start", "--id", "cf", f"{APPS}:crashable_fail", str(marker))
    wait_for_path(Path(str(marker) + ".ready"), proc)
    kill9(proc)
    marker.touch()
    docs = wf_cli("recover", "--json", timeout=90).expect(1).json()
    assert [(d["workflow_id"], d["status"]) for d in docs] == [("cf", "ERROR")]


def _start_worker(wf_cli: Wf, *args: str) -> object:
    proc = wf_cli.spawn("worker", APPS, "--concurrency", "4", *args)
    return proc


def test_worker_runs_enqueued_workflows_and_stops_on_sigterm(wf_cli: Wf) -> None:
    ids = [
        wf_cli("start", "--detach", f"{APPS}:add", str(i), "1").ok().out.strip() for i in range(3)
    ]
    queued = wf_cli("start", "--detach", "--queue", "cli_q", f"{APPS}:greet", "q").ok().out.strip()
    proc = wf_cli.spawn("worker", APPS, "--concurrency", "4")
    try:
        for i, wid in enumerate(ids):
            doc = wf_cli("await", "--json", "--timeout", "60", wid).ok().json()
            assert doc["output"] == i + 1
        assert (
            wf_cli("await", "--json", "--timeout", "60", queued).ok().json()["output"] == "hello Q!"
        )
    finally:
        time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
    res = wf_cli.finish(proc, ["worker"], timeout=30)
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err


def test_worker_stop_leaves_running_workflows_to_recovery(wf_cli: Wf, marker: Path) -> None:
    wid = wf_cli("start", "--detach", f"{APPS}:gated", str(marker)).ok().out.strip()
    proc = wf_cli.spawn("worker", APPS)
    wf_cli.wait_status(wid, "PENDING", timeout=60, proc=proc)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    res = wf_cli.finish(proc, ["worker"], timeout=30)
    assert res.code == 0, res.describe()
    # back on its queue, or PENDING under the stopped executor for recovery
    assert wf_cli.status(wid)["status"] in ("ENQUEUED", "PENDING")
    marker.touch()
    # a live executor takes it over at once (the stopped one's row is gone)
    again = wf_cli.spawn("worker", APPS)
    try:
        doc = wf_cli("await", "--json", "--timeout", "60", wid).ok().json()
        assert doc["status"] == "SUCCESS"
    finally:
        again.send_signal(signal.SIGTERM)
    assert wf_cli.finish(again, ["worker"], timeout=30).code == 0


def test_recover_a_killed_workers_queued_workflow(wf_cli: Wf, marker: Path) -> None:
    wid = wf_cli("start", "--detach", f"{APPS}:gated", str(marker)).ok().out.strip()
    proc = wf_cli.spawn("worker", APPS)
    wf_cli.wait_status(wid, "PENDING", timeout=60, proc=proc)
    time.sleep(0.5)
    kill9(proc)
    marker.touch()
    docs = wf_cli("recover", "--json", timeout=90).ok().json()
    assert [(d["workflow_id"], d["status"]) for d in docs] == [(wid, "SUCCESS")]
    assert docs[0]["recovery_attempts"] >= 1


def test_worker_stops_on_sigint_and_json(wf_cli: Wf) -> None:
    proc = wf_cli.spawn("worker", "--json", APPS)
    time.sleep(2.0)
    proc.send_signal(signal.SIGINT)
    res = wf_cli.finish(proc, ["worker"], timeout=30)
    assert res.code == 0, res.describe()
    doc = res.json()
    assert doc["stopped_by"] == "SIGINT"


def test_worker_serves_only_its_queues(wf_cli: Wf) -> None:
    mine = wf_cli("start", "--detach", "--queue", "mine", f"{APPS}:add", "1", "1").ok().out.strip()
    other = (
        wf_cli("start", "--detach", "--queue", "theirs", f"{APPS}:add", "2", "2").ok().out.strip()
    )
    proc = wf_cli.spawn("worker", APPS, "--queue", "mine")
    try:
        assert wf_cli("await", "--json", "--timeout", "60", mine).ok().json()["output"] == 2
        time.sleep(1.0)
        assert wf_cli.status(other)["status"] == "ENQUEUED"
    finally:
        proc.send_signal(signal.SIGTERM)
    assert wf_cli.finish(proc, ["worker"], timeout=30).code == 0


def test_queue_list(wf_cli: Wf) -> None:
    # "undeclared" is a queue no code declares, so no process serves it here
    wf_cli("start", "--detach", "--queue", "undeclared", f"{APPS}:add", "1", "1").ok()
    wf_cli("start", "--detach", "--queue", "undeclared", f"{APPS}:add", "1", "2").ok()
    # a worker serving cli_q publishes the limits its code declares
    worker = wf_cli.spawn("worker", APPS, "--queue", "cli_q")
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = wf_cli("queue", "list", "--json").ok().json()
            by_name = {r["name"]: r for r in rows}
            if "cli_q" in by_name or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert wf_cli.finish(worker, ["worker"]).code == 0
    assert by_name["undeclared"]["enqueued"] == 2
    assert by_name["undeclared"]["concurrency"] is None
    assert set(by_name["cli_q"]) == {
        "name",
        "enqueued",
        "running",
        "concurrency",
        "worker_concurrency",
        "rate_limit",
        "priority",
        "partition_concurrency",
        "partition_rate_limit",
        "busiest_partitions",
    }
    assert by_name["cli_q"]["concurrency"] == 2  # published by the code that declares it
    res = wf_cli("queue", "list").ok()
    assert "undeclared" in res.out and "ENQUEUED" in res.out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["tests.cli.apps.nope"], "tests.cli.apps.nope"),
        ([APPS, "--concurrency", "0"], "--concurrency"),
        ([APPS, "--log-level", "LOUD"], "--log-level"),
    ],
)
def test_worker_bad_input(wf_cli: Wf, db_url: str, args: list[str], needle: str) -> None:
    wf_cli("worker", *args, timeout=30).expect(2).one_line_error(needle)


def test_worker_needs_a_module(wf_cli: Wf) -> None:
    wf_cli("worker").expect(2).one_line_error("MODULE")
