"""Step records (and workflows' finishes) that meet go out as one statement on Postgres (group commit,
runtime/_sysdb/group_commit.py) and must answer exactly as the one-row
statement does: written only while the workflow runs under the writer's
executor, once per position, each caller told whether its own row went in;
a bad value or a row lock fails only its own caller. Run on both backends
(SQLite writes one row at a time: the same answers are the reference)."""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from wf._sysdb import SystemDatabase
from wf._sysdb.group_commit import GroupCommit
from wf._sysdb.rows import now_ms


def _pending(db: SystemDatabase, wid: str, executor: str = "e1") -> None:
    assert db.insert_workflow(
        workflow_id=wid, status="PENDING", name="t:w", inputs="[[], {}]", executor_id=executor
    )


def _held(db: SystemDatabase, queued: int, finishes: bool = False) -> GroupCommit[dict[str, Any]]:
    """A group (of step records, or of ``finishes``) with one flush slot
    whose first write waits until ``queued`` writes are queued behind it, so
    those go out as one batch."""
    first = threading.Event()
    write_one = db._finish_one if finishes else db._record_one
    write_many = db._finish_many if finishes else db._record_many

    def one(params: dict[str, Any]) -> bool:
        if not first.is_set():
            first.set()
            deadline = time.monotonic() + 10
            while len(group._queue) < queued:
                assert time.monotonic() < deadline, "writers never queued"
                time.sleep(0.001)
        return write_one(params)

    group: GroupCommit[dict[str, Any]] = GroupCommit(one, write_many, max_in_flight=1)
    return group


def _record(db: SystemDatabase, wid: str, pos: int, executor: str = "e1", out: str = "1") -> bool:
    return db.record_step(wid, executor, pos, "t:s", "step", out, None, now_ms())


def _finish(
    db: SystemDatabase, wid: str, executor: str = "e1", out: str = '"done"', token: Any = None
) -> bool:
    return db.finish_workflow(wid, executor, "SUCCESS", out, None, token)


def _at_once(
    calls: list[tuple[Any, ...]], db: SystemDatabase, write: Any = _record
) -> list[object]:
    out: list[object] = [None] * len(calls)

    def run(k: int) -> None:
        try:
            out[k] = write(db, *calls[k])
        except Exception as e:
            out[k] = e

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(calls))]
    threads[0].start()
    time.sleep(0.05)  # the first one takes the slot (and is held there)
    for t in threads[1:]:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return out


def test_a_batch_answers_each_row_as_its_own_statement_would(
    db: SystemDatabase, backend: str
) -> None:
    for w in ("mine-1", "mine-2", "mine-3"):
        _pending(db, w)
    _pending(db, "theirs", executor="e2")
    _pending(db, "ended")
    assert db.finish_workflow("ended", "e1", "SUCCESS", "null", None)
    assert _record(db, "mine-3", 0)  # already recorded at 0
    calls = [
        ("mine-1", 0),  # the held first write, alone
        ("mine-1", 1),
        ("mine-2", 0),
        ("mine-3", 0),  # taken: refused
        ("mine-3", 1),
        ("theirs", 0),  # another executor's: refused
        ("ended", 0),  # not running: refused
        ("nobody", 0),  # no such workflow: refused
    ]
    if db.step_group is not None:
        db.step_group = _held(db, queued=len(calls) - 1)
    out = _at_once(calls, db)
    assert out == [True, True, True, False, True, False, False, False]
    if backend == "postgres":
        assert db.step_group is not None and db.step_group.batches == 1
        assert db.step_group.batched == len(calls) - 1
    got = {(s.position, s.output) for s in db.get_steps("mine-3")}
    assert got == {(0, "1"), (1, "1")}
    assert db.get_steps("theirs") == [] and db.get_steps("ended") == []
    assert [s.position for s in db.get_steps("mine-1")] == [0, 1]


def test_many_threads_every_step_recorded_once(db: SystemDatabase, backend: str) -> None:
    wids = [f"w-{i}" for i in range(16)]
    for w in wids:
        _pending(db, w)

    def run(w: str) -> None:
        for pos in range(25):
            assert _record(db, w, pos, out=f'"{w}:{pos}"')

    threads = [threading.Thread(target=run, args=(w,)) for w in wids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for w in wids:
        steps = db.get_steps(w)
        assert [(s.position, s.output) for s in steps] == [(p, f'"{w}:{p}"') for p in range(25)]


def test_a_bad_value_fails_only_its_own_caller(pg_database: str) -> None:
    db = SystemDatabase(pg_database)
    db.ensure_reachable()
    db.migrate()
    try:
        for w in ("a", "b", "c", "d"):
            _pending(db, w)
        db.step_group = _held(db, queued=3)
        calls = [("a", 0), ("b", 0, "e1", '"nul \x00 byte"'), ("c", 0), ("d", 0)]
        out = _at_once(calls, db)
        assert out[0] is True and out[2] is True and out[3] is True
        assert isinstance(out[1], psycopg.DataError), out[1]
        assert db.step_group.batches == 0  # the batch failed; each went alone
        assert db.get_steps("b") == [] and len(db.get_steps("c")) == 1
    finally:
        db.dispose()


@pytest.mark.parametrize("finishes", [False, True], ids=["step-records", "finishes"])
def test_a_locked_workflow_row_never_holds_up_the_rest_of_its_batch(
    pg_database: str, finishes: bool
) -> None:
    """A batch takes its rows' locks NOWAIT: a row another transaction holds
    (a cancel, a claim) fails the batch at once, the others are written
    alone right away, and the locked one waits for its lock as alone."""
    db = SystemDatabase(pg_database)
    db.ensure_reachable()
    db.migrate()
    locker = psycopg.connect(pg_database.replace("postgresql+psycopg", "postgresql"))
    try:
        for w in ("a", "b", "c", "locked"):
            _pending(db, w)
        locker.execute("SELECT 1 FROM wf.workflows WHERE workflow_id = 'locked' FOR UPDATE")
        group = _held(db, queued=3, finishes=finishes)
        if finishes:
            db.finish_group = group
        else:
            db.step_group = group
        done: dict[str, float] = {}
        out: dict[str, object] = {}

        def run(w: str) -> None:
            out[w] = _finish(db, w) if finishes else _record(db, w, 0)
            done[w] = time.monotonic()

        first = threading.Thread(target=run, args=("a",))
        first.start()
        time.sleep(0.05)
        rest = [threading.Thread(target=run, args=(w,)) for w in ("b", "locked", "c")]
        for t in rest:
            t.start()
        deadline = time.monotonic() + 10
        while not ("b" in done and "c" in done):
            assert time.monotonic() < deadline, out
            time.sleep(0.01)
        assert "locked" not in done  # still waiting for its row, alone
        released = time.monotonic()
        locker.rollback()
        for t in [first, *rest]:
            t.join(10)
        assert out == {"a": True, "b": True, "c": True, "locked": True}
        assert done["locked"] >= released
        assert group.batches == 0
    finally:
        locker.close()
        db.dispose()


# -- finishes: the same, for the workflows' finishing UPDATEs -------------------------


def _token(db: SystemDatabase, wid: str) -> int:
    row = db.get_workflow(wid)
    assert row is not None
    return int(row.created_at)


def test_finishes_in_a_batch_answer_each_as_alone(db: SystemDatabase, backend: str) -> None:
    for w in ("mine-1", "mine-2", "mine-3", "reused"):
        _pending(db, w)
    _pending(db, "theirs", executor="e2")
    _pending(db, "ended")
    assert _finish(db, "ended")
    calls = [
        ("mine-1",),  # the held first write, alone
        ("mine-2", "e1", '"two"'),
        ("mine-3", "e1", '"three"', _token(db, "mine-3")),  # its own run: written
        ("reused", "e1", '"x"', _token(db, "reused") - 1),  # another run's row: refused
        ("theirs",),  # another executor's: refused
        ("ended",),  # ended already: refused
        ("nobody",),  # no such workflow: refused
    ]
    if db.finish_group is not None:
        db.finish_group = _held(db, queued=len(calls) - 1, finishes=True)
    out = _at_once(calls, db, _finish)
    assert out == [True, True, True, False, False, False, False]
    if backend == "postgres":
        assert db.finish_group is not None and db.finish_group.batches == 1
        assert db.finish_group.batched == len(calls) - 1
    got = {w: db.get_outcome(w) for w in ("mine-1", "mine-2", "mine-3", "reused", "theirs")}
    assert got["mine-1"] == ("SUCCESS", '"done"', None)
    assert got["mine-2"] == ("SUCCESS", '"two"', None)
    assert got["mine-3"] == ("SUCCESS", '"three"', None)
    assert got["reused"] is not None and got["reused"][0] == "PENDING"
    assert got["theirs"] is not None and got["theirs"][0] == "PENDING"


def test_many_threads_each_workflow_finished_once(db: SystemDatabase) -> None:
    wids = [f"f-{i}" for i in range(48)]
    for w in wids:
        _pending(db, w)
    out: dict[str, list[bool]] = {w: [] for w in wids}

    def run(w: str) -> None:
        # twice each: the second is refused, the first's output stays
        out[w].append(_finish(db, w, out=f'"{w}"'))
        out[w].append(_finish(db, w, out='"again"'))

    threads = [threading.Thread(target=run, args=(w,)) for w in wids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(v == [True, False] for v in out.values()), out
    for w in wids:
        assert db.get_outcome(w) == ("SUCCESS", f'"{w}"', None)


def test_a_bad_finish_fails_only_its_own_caller(pg_database: str) -> None:
    db = SystemDatabase(pg_database)
    db.ensure_reachable()
    db.migrate()
    try:
        for w in ("a", "b", "c", "d"):
            _pending(db, w)
        db.finish_group = _held(db, queued=3, finishes=True)
        calls = [("a",), ("b", "e1", '"nul \x00 byte"'), ("c",), ("d",)]
        out = _at_once(calls, db, _finish)
        assert out[0] is True and out[2] is True and out[3] is True
        assert isinstance(out[1], psycopg.DataError), out[1]
        assert db.finish_group.batches == 0  # the batch failed; each went alone
        assert db.get_outcome("b") == ("PENDING", None, None)
        assert db.get_outcome("c") == ("SUCCESS", '"done"', None)
    finally:
        db.dispose()
