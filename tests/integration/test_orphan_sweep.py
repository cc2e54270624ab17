"""The orphan sweep: a workflow claimed by this executor whose claim answer
was lost (so nothing here runs it) is run; workflows this process is running,
inline or in the background, are never touched however long they take.
The lost answer itself is reproduced over a real cut connection in
tests/reliability/test_connection_loss.py; here the sweep's own rules are
checked on both backends."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
import wf
from wf import _root as _executor
from wf._core import encode_inputs
from wf._worker import executor, recovery

RUNS: Counter[str] = Counter()
RELEASE = threading.Event()


@wf.step()
def tally(label: str) -> str:
    RUNS[label] += 1
    return label


@wf.workflow()
def held(label: str) -> str:
    """Records a step, then waits for the test to release it."""
    tally(label)
    assert RELEASE.wait(30), "never released"
    return tally(label + "-after")


@wf.workflow()
def orphan(label: str) -> str:
    return tally(label)


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    RUNS.clear()
    RELEASE.clear()
    # the real threshold is 10 s; the rule is the same at 0.3 s
    monkeypatch.setattr(recovery, "ORPHAN_AFTER", 0.3)
    # only the test sweeps: the maintenance loop's periodic pass would race it
    monkeypatch.setattr(executor, "RECOVERY_INTERVAL", 3600.0)


def test_sweep_runs_only_the_orphan(launched: str) -> None:
    ex = _executor.get()
    inline = threading.Thread(target=lambda: held("inline"), daemon=True)
    inline.start()
    handle = wf.start(held, "background")
    assert wf.start(orphan, "done").result(timeout=10) == "done"
    # what a committed claim with a lost answer leaves: ours, PENDING, not running
    assert ex.sysdb.insert_workflow(
        workflow_id="orphaned",
        status="PENDING",
        name=orphan.wf_spec.name,
        inputs=encode_inputs(["orphan"], {}),
        executor_id=ex.executor_id,
    )
    deadline = time.monotonic() + 10
    while RUNS["inline"] + RUNS["background"] < 2:
        assert time.monotonic() < deadline, "held workflows never started"
        time.sleep(0.05)
    time.sleep(0.5)  # everything above is now older than ORPHAN_AFTER

    assert ex.sweep_orphans() == ["orphaned"]
    assert wf.retrieve("orphaned").result(timeout=10) == "orphan"
    assert wf.get_workflow("orphaned").recovery_attempts == 1

    time.sleep(0.5)
    assert ex.sweep_orphans() == [], "a running or finished workflow was swept"
    RELEASE.set()
    inline.join(10)
    assert handle.result(timeout=10) == "background-after"
    statuses = {w.workflow_id: w for w in wf.list_workflows()}
    for w in statuses.values():
        assert w.status == wf.Status.SUCCESS, w
        if w.workflow_id != "orphaned":
            assert w.recovery_attempts == 0, w
    # never re-run: each step ran exactly once
    assert RUNS == {
        "inline": 1,
        "inline-after": 1,
        "background": 1,
        "background-after": 1,
        "done": 1,
        "orphan": 1,
    }


def test_sweep_leaves_a_fresh_row_and_other_executors_rows(launched: str) -> None:
    ex = _executor.get()
    # a live executor elsewhere (fresh heartbeat, another host): recovery leaves it alone too
    ex.sysdb.heartbeat("someone-else", "another-host", 1)
    for wid, owner in [("fresh", ex.executor_id), ("theirs", "someone-else")]:
        assert ex.sysdb.insert_workflow(
            workflow_id=wid,
            status="PENDING",
            name=orphan.wf_spec.name,
            inputs=encode_inputs([wid], {}),
            executor_id=owner,
        )
    # "fresh" is younger than ORPHAN_AFTER: a claim may still be on its way to its submit
    assert ex.sweep_orphans() == []
    time.sleep(0.5)
    # now it is an orphan; "theirs" is for recovery to judge, never the sweep
    assert ex.sweep_orphans() == ["fresh"]
    assert wf.retrieve("fresh").result(timeout=10) == "fresh"
    assert wf.get_workflow("theirs").status == wf.Status.PENDING
    assert wf.get_workflow("theirs").executor_id == "someone-else"
    assert RUNS == {"fresh": 1}
