"""Issue 10, part B: promises about a workflow's lifecycle and its children.

- a restart keeps the events its copied calls set (item 7);
- ``wf.send`` to an unknown ID from inside a workflow raises
  ``WorkflowNotFoundError`` there, as a recorded call (item 9);
- ``wf.restart`` inside a workflow is a recorded call, also across a SIGKILL (item 10);
- a parent's timeout reaches the children it started or enqueued after it
  ended (item 11);
- the wake-up keys a process holds stay bounded (item 12);
- a derived child ID never silently replays another workflow (item 15);
- concurrent first launches on a missing Postgres database all succeed (item 18).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import wf

from tests.helpers import (
    REPO,
    child_env,
    finish,
    kill_hard,
    marker_lines,
    outcome,
    run_app,
    spawn_app,
    wait_for,
    wait_for_file,
)

APP = "tests.apps.t2_lifecycle"

CALLS: dict[str, int] = {}


def _called(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    CALLS.clear()


def _name_of(fn: Any) -> str:
    return str(fn.wf_spec.name)


def _copies(fn: Any) -> list[str]:
    """IDs of every recorded workflow of ``fn``'s function."""
    return [w.workflow_id for w in wf.list_workflows(name=_name_of(fn), limit=None)]


# -- item 7: a restart keeps the events of the calls it copies ------------------------------


@wf.step()
def after_events() -> str:
    _called("after_events")
    return "stepped"


@wf.workflow()
def eventful() -> str:
    wf.set_event("a", 1)
    wf.set_event("b", 2)
    wf.set_event("c", 3)
    return after_events()


def _events(wid: str) -> dict[str, Any]:
    return {k: wf.get_event(wid, k, timeout=5) for k in ("a", "b", "c")}


def test_restart_keeps_the_events_set_by_copied_calls(launched: str) -> None:
    """Restarting after three set_events copies their records: the replayed
    set_events write nothing, so the events must come with the copy. Today the
    copy has no events at all (from_step=4) or loses ``a`` (from_step=2)."""
    assert wf.start(eventful, workflow_id="ev").result(timeout=30) == "stepped"
    assert _events("ev") == {"a": 1, "b": 2, "c": 3}
    kinds = [(s.position, s.kind) for s in wf.list_steps("ev")]
    assert kinds == [(1, "event"), (2, "event"), (3, "event"), (4, "step")]

    # every set_event copied; only the step runs again
    h = wf.restart("ev", from_step=4, workflow_id="ev-from-4")
    assert h.result(timeout=30) == "stepped"
    assert _events("ev-from-4") == {"a": 1, "b": 2, "c": 3}
    assert CALLS == {"after_events": 2}

    # a copied, b and c set again by the re-run
    h = wf.restart("ev", from_step=2, workflow_id="ev-from-2")
    assert h.result(timeout=30) == "stepped"
    assert _events("ev-from-2") == {"a": 1, "b": 2, "c": 3}
    assert CALLS == {"after_events": 3}
    assert _events("ev") == {"a": 1, "b": 2, "c": 3}  # the original is untouched


@wf.step()
def run_number() -> int:
    _called("run_number")
    return CALLS["run_number"]


@wf.workflow()
def branching() -> int:
    wf.set_event("first", "kept")
    n = run_number()
    wf.set_event(f"run-{n}", n)
    return n


def test_restart_copies_only_the_events_of_the_copied_calls(launched: str) -> None:
    """The copy gets the events set *before* ``from_step``, not every event of
    the original: ``run-1`` was set after it, and the re-run sets ``run-2``."""
    assert wf.start(branching, workflow_id="br").result(timeout=30) == 1
    assert wf.restart("br", from_step=2, workflow_id="br-2").result(timeout=30) == 2
    assert wf.get_event("br-2", "first", timeout=5) == "kept"
    assert wf.get_event("br-2", "run-2", timeout=5) == 2
    assert wf.get_event("br-2", "run-1", timeout=0.5) is None
    assert wf.get_event("br", "run-1", timeout=5) == 1


# -- item 9: send to an unknown ID from inside a workflow -------------------------------------


@wf.step()
def after_send() -> str:
    _called("after_send")
    return "after"


@wf.workflow()
def send_to(target: str) -> list[str]:
    try:
        wf.send(target, "from-sender", topic="t")
        sent = "sent"
    except wf.WorkflowNotFoundError:
        sent = "missing"
    return [sent, after_send()]


@wf.workflow()
def receiver() -> Any:
    return wf.recv("t", timeout=30)


def test_send_to_an_unknown_id_inside_a_workflow_raises_and_is_recorded(launched: str) -> None:
    """From outside, a send to an unknown ID raises WorkflowNotFoundError; from
    inside a workflow it must too (today it stores the message silently), as
    a recorded call: a replay gives the same outcome and sends nothing, even
    once a workflow with that ID exists."""
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.send("nobody-here", "from-outside", topic="t")

    assert wf.start(send_to, "nobody-here", workflow_id="snd").result(timeout=30) == [
        "missing",
        "after",
    ]
    steps = wf.list_steps("snd")
    sends = [s for s in steps if s.kind == "send"]
    assert len(sends) == 1, steps
    assert sends[0].error is not None, sends[0]
    assert sends[0].error.type.endswith("WorkflowNotFoundError"), sends[0].error
    after = [s.position for s in steps if s.name.endswith("after_send")]
    assert after and after[0] > sends[0].position

    # now the target exists: a replay that sent again would succeed and
    # deliver "from-sender" first; the recorded outcome must come back instead
    rx = wf.start(receiver, workflow_id="nobody-here")
    replayed = wf.restart("snd", from_step=after[0], workflow_id="snd-replayed")
    assert replayed.result(timeout=30) == ["missing", "after"]
    wf.send("nobody-here", "control", topic="t")
    assert rx.result(timeout=30) == "control"  # the replay sent nothing
    assert CALLS == {"after_send": 2}


# -- item 10: wf.restart inside a workflow is a recorded call --------------------------------


@wf.step()
def other_step(x: int) -> int:
    _called("other_step")
    return x + 1


@wf.workflow()
def other(x: int) -> int:
    return other_step(x)


@wf.step()
def after_restart() -> str:
    _called("after_restart")
    return "after"


@wf.workflow()
def restarter(other_id: str) -> str:
    handle = wf.restart(other_id)
    after_restart()
    return handle.workflow_id


def test_restart_inside_a_workflow_is_recorded_like_a_child(launched: str) -> None:
    """The call is recorded (kind ``child``, its child_workflow_id the new ID),
    so replaying the workflow gets the same handle back and forks no second
    copy. Today it is not recorded and every replay restarts ``other`` again."""
    assert wf.start(other, 1, workflow_id="oth").result(timeout=30) == 2
    new_id = wf.start(restarter, "oth", workflow_id="rs").result(timeout=30)
    assert new_id != "oth"
    assert wf.retrieve(new_id).result(timeout=30) == 2
    assert wf.get_workflow(new_id).name == _name_of(other)

    steps = wf.list_steps("rs")
    children = [s for s in steps if s.kind == "child"]
    assert len(children) == 1, steps
    assert children[0].child_workflow_id == new_id
    assert sorted(_copies(other)) == sorted(["oth", new_id])

    # a replay reusing the recorded restart: the same ID back, no new copy
    replay = wf.restart("rs", from_step=children[0].position + 1, workflow_id="rs-replayed")
    assert replay.result(timeout=30) == new_id
    assert sorted(_copies(other)) == sorted(["oth", new_id])
    assert CALLS == {"other_step": 2, "after_restart": 2}


def test_restart_inside_a_workflow_survives_a_crash_without_a_second_copy(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    """W restarts ``other`` and is SIGKILLed in its next step; the recovered W
    replays the recorded restart: exactly one restarted copy, and W returns
    the ID the first run got."""
    from tests.apps import t2_lifecycle

    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    assert outcome(run_app(APP, "start", "oth", "t2_other", "[1]", db_url=db_url, env=env)) == 2

    proc = spawn_app(
        APP,
        "start",
        "w",
        "t2_restarter",
        '["oth"]',
        db_url=db_url,
        env={**env, "WF_TEST_BLOCK": "1"},
    )
    wait_for_file(tmp_path / "blocked", timeout=60, proc=proc)
    assert kill_hard(proc).killed
    restarted = [line.split()[1] for line in marker_lines(markers) if line.startswith("restarted")]
    assert len(restarted) == 1, restarted

    res = run_app(APP, "recover", "w", db_url=db_url, env=env)
    assert outcome(res) == restarted[0], res.describe()
    assert sorted(_copies(t2_lifecycle.t2_other)) == sorted(["oth", restarted[0]])
    # the recovered run passed the restart again and got the same handle back
    lines = [line for line in marker_lines(markers) if line.startswith("restarted")]
    assert set(lines) == {f"restarted {restarted[0]}"}, lines


# -- item 11: a parent's timeout reaches its children after the parent ended -----------------

CHILD_QUEUE = wf.Queue("t2_lifecycle_children")


@wf.workflow()
def long_child(seconds: float) -> str:
    for _ in range(int(seconds / 0.2)):
        wf.sleep(0.2)
    return "finished"


@wf.workflow()
def quick_parent(via: str) -> str:
    if via == "queue":
        handle = CHILD_QUEUE.enqueue(long_child, 15.0)
    else:
        handle = wf.start(long_child, 15.0)
    return handle.workflow_id


@pytest.mark.parametrize("via", ["start", "queue"])
def test_parent_timeout_cancels_children_after_the_parent_ended(launched: str, via: str) -> None:
    """A parent started with timeout=2 starts (or enqueues) a 15 s child and
    returns at once. SPEC §3: past the timeout the workflow and its children
    are cancelled, so the child is CANCELLED within ~10 s of the start.
    Today the child inherits nothing and runs to SUCCESS."""
    t0 = time.monotonic()
    h = wf.start(quick_parent, via, workflow_id=f"tp-{via}", timeout=2)
    child_id = h.result(timeout=30)
    assert wf.get_workflow(child_id).parent_workflow_id == f"tp-{via}"

    def cancelled() -> bool:
        status = wf.get_workflow(child_id).status
        assert status in (wf.Status.ENQUEUED, wf.Status.PENDING, wf.Status.CANCELLED), status
        return status == wf.Status.CANCELLED

    wait_for(cancelled, timeout=12, interval=0.1, what=f"child {child_id} to be cancelled")
    assert time.monotonic() - t0 < 13
    assert wf.get_workflow(f"tp-{via}").status == wf.Status.SUCCESS  # it ended in time
    with pytest.raises(wf.WorkflowCancelledError):
        wf.retrieve(child_id).result(timeout=10)


# -- item 12: bounded wake-up memory ----------------------------------------------------------


@wf.workflow()
def trivial(i: int) -> int:
    return i


def test_wake_up_keys_stay_bounded_over_20000_workflows(launched: str) -> None:
    """``wf._core.wakeups.tracked_keys()`` (added by the fix) counts the wake-up keys
    this process holds. On this morning's code there is no such call; its
    equivalent, ``len(wf._notify._versions)``, is about 20,000 after this loop
    (one entry per workflow ever ended, kept for ever)."""
    from wf._core import wakeups as _notify

    n = 20_000

    def run(first: int) -> None:
        for i in range(first, n, 2):
            assert trivial(i) == i

    with ThreadPoolExecutor(2) as pool:  # two threads: half the time on Postgres
        list(pool.map(run, range(2)))
    assert _notify.tracked_keys() < 100
    # waiting still works, and a finished wait lets its key go
    assert wf.start(trivial, -1).result(timeout=30) == -1
    assert _notify.tracked_keys() < 100


def test_wake_up_keys_stay_bounded_while_another_process_works(pg_database: str) -> None:
    """On Postgres the listener relays every NOTIFY in the database: while
    another process runs 3,000 workflows, the keys held here stay bounded.
    Today this process records all of them (len(_versions) ~3,000)."""
    from wf._core import wakeups as _notify

    wf.launch(database_url=pg_database)
    proc = subprocess.Popen(
        [sys.executable, "-m", APP, "many", "3000"],
        env=child_env(pg_database),
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _notify.tracked_keys())
            time.sleep(0.02)
        res = finish(proc)
        assert outcome(res) == 3000, res.describe()
        # the last notifications may still be on their way here
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            peak = max(peak, _notify.tracked_keys())
            time.sleep(0.02)
        assert peak < 100
    finally:
        if proc.poll() is None:
            kill_hard(proc)


# -- item 15: derived child IDs never silently replay another workflow -------------------


@wf.workflow()
def job_child(x: int) -> int:
    _called("job_child")
    return 2 * x


@wf.workflow()
def job_parent(x: int, how: str) -> Any:
    """Its first call is a child, whose derived ID is ``<own ID>-1``."""
    try:
        if how == "call":
            return job_child(x)
        return wf.start(job_child, x).result(timeout=30)
    except wf.WorkflowConflictError:
        return "conflict"


@wf.workflow()
def named_child_starter(child_id: str, x: int) -> int:
    return wf.start(job_child, x, workflow_id=child_id).result(timeout=30)


@pytest.mark.parametrize("how", ["call", "start"])
def test_a_derived_child_id_taken_by_another_workflow_is_a_conflict(
    launched: str, how: str
) -> None:
    """``job-1`` is a workflow the user started (child(99) = 198). A parent
    ``job`` whose first call is child(5) derives the same ID: that call must
    raise WorkflowConflictError, never return 198 (today it does)."""
    assert wf.start(job_child, 99, workflow_id="job-1").result(timeout=30) == 198
    # the same parent code with a free derived ID gets its own child's value
    assert wf.start(job_parent, 5, how, workflow_id="free").result(timeout=30) == 10

    assert wf.start(job_parent, 5, how, workflow_id="job").result(timeout=30) == "conflict"
    info = wf.get_workflow("job-1")
    assert (info.status, info.output, info.parent_workflow_id) == (wf.Status.SUCCESS, 198, None)
    assert CALLS == {"job_child": 2}  # 99 and the free parent's 5; nothing for "job"


@pytest.mark.parametrize("how", ["call", "start"])
def test_a_derived_child_id_recorded_by_another_parent_is_a_conflict(
    launched: str, how: str
) -> None:
    """``r-1`` is a child of another parent, with the very inputs parent ``r``
    passes at its first call (derived ID ``r-1``): still a conflict, since it
    is not this parent's child (today the parent silently gets its result)."""
    assert wf.start(named_child_starter, "r-1", 5, workflow_id="elsewhere").result(timeout=30) == 10
    assert wf.get_workflow("r-1").parent_workflow_id == "elsewhere"

    assert wf.start(job_parent, 5, how, workflow_id="r").result(timeout=30) == "conflict"
    assert wf.get_workflow("r-1").parent_workflow_id == "elsewhere"
    assert CALLS == {"job_child": 1}


# -- item 18: concurrent first launches on a missing Postgres database ----------------------


def _with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


@pytest.fixture
def missing_database(pg_admin_url: str) -> Iterator[str]:
    """The URL of a Postgres database that does not exist yet; dropped after the test."""
    name = f"wf_t2_race_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=10) as conn:
        assert (
            conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None
        )
    yield _with_database(pg_admin_url, name)
    with psycopg.connect(pg_admin_url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_concurrent_first_launches_on_a_missing_database_all_succeed(
    missing_database: str, tmp_path: Path
) -> None:
    """8 processes launch at the same moment on a database that does not
    exist: each tries CREATE DATABASE, and those that lose the race get a
    unique violation (today: 'cannot be created', exit 1). All must run."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", APP, "launch-race", missing_database, str(barrier)],
            env=child_env(None),
            cwd=str(REPO),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    try:

        def all_ready() -> bool:
            for p in procs:
                if p.poll() is not None:
                    raise AssertionError(f"ended before the barrier: {finish(p).describe()}")
            return len(list(barrier.glob("ready-*"))) == len(procs)

        wait_for(all_ready, timeout=60, what="8 processes at the barrier")
        (barrier / "go").touch()
        results = [finish(p, timeout=60) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                kill_hard(p)
    failed = [r.describe() for r in results if r.returncode != 0]
    assert not failed, f"{len(failed)} of 8 failed:\n" + "\n".join(failed)
    assert sorted(outcome(r) for r in results) == sorted(p.pid for p in procs)
    with psycopg.connect(missing_database, connect_timeout=10) as conn:
        row = conn.execute("SELECT count(*) FROM wf.workflows WHERE status = 'SUCCESS'").fetchone()
    assert row is not None and row[0] == 8
