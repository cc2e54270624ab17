"""GroupCommit (runtime/_sysdb/group_commit.py) without a database: writes
that meet while every flush slot is busy go out as one batch, each gets its
own answer, and a failed batch is redone write by write so each error
reaches only its own caller."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from wf._sysdb.group_commit import GroupCommit


class Store:
    """A write_one/write_many pair over a set; ``hold`` keeps the first
    write waiting until ``queued`` writes are queued behind it."""

    def __init__(self, queued: int = 0, bad: set[int] | None = None) -> None:
        self.rows: list[int] = []
        self.batches: list[list[int]] = []
        self.singles: list[int] = []
        self.bad = bad or set()
        self.queued = queued
        self.group: GroupCommit[int] = GroupCommit(self.one, self.many, max_in_flight=1)
        self._first = True
        self._lock = threading.Lock()

    def _hold(self) -> None:
        with self._lock:
            first, self._first = self._first, False
        if first:
            deadline = time.monotonic() + 10
            while len(self.group._queue) < self.queued:
                assert time.monotonic() < deadline, "writers never queued"
                time.sleep(0.001)

    def one(self, item: int) -> bool:
        self._hold()
        if item in self.bad:
            raise ValueError(f"bad {item}")
        with self._lock:
            self.singles.append(item)
            if item in self.rows:
                return False
            self.rows.append(item)
            return True

    def many(self, items: list[int]) -> list[bool]:
        self._hold()
        if self.bad & set(items):
            raise ValueError("a bad item in the batch")
        with self._lock:
            self.batches.append(list(items))
            out = [i not in self.rows for i in items]
            self.rows.extend(i for i in items if i not in self.rows)
            return out


def _in_threads(items: list[int], submit: Callable[[int], bool]) -> dict[int, object]:
    out: dict[int, object] = {}

    def run(i: int) -> None:
        try:
            out[i] = submit(i)
        except Exception as e:
            out[i] = e

    threads = [threading.Thread(target=run, args=(i,)) for i in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads)
    return out


def test_a_lone_write_goes_alone() -> None:
    s = Store()
    assert s.group.submit(1) is True
    assert s.group.submit(1) is False  # its own statement's answer
    assert s.singles == [1, 1] and s.batches == []


def test_writes_queued_behind_a_busy_slot_go_out_as_one_batch() -> None:
    s = Store(queued=7)
    out = _in_threads(list(range(8)), s.group.submit)
    assert out == dict.fromkeys(range(8), True)
    assert sorted(s.rows) == list(range(8))
    assert len(s.singles) == 1 and len(s.batches) == 1 and len(s.batches[0]) == 7
    assert s.group.batches == 1 and s.group.batched == 7
    assert s.group._flying == 0 and s.group._queue == []


def test_each_write_in_a_batch_gets_its_own_answer() -> None:
    s = Store(queued=5)
    s.rows.extend([2, 4])  # already written: refused
    out = _in_threads(list(range(6)), s.group.submit)
    assert out == {0: True, 1: True, 2: False, 3: True, 4: False, 5: True}


def test_a_failed_batch_is_redone_write_by_write_and_only_the_bad_one_fails() -> None:
    s = Store(queued=5, bad={3})
    out = _in_threads(list(range(6)), s.group.submit)
    assert isinstance(out.pop(3), ValueError)
    assert out == dict.fromkeys([0, 1, 2, 4, 5], True)
    assert sorted(s.rows) == [0, 1, 2, 4, 5] and s.batches == []
    assert s.group._flying == 0


def test_the_first_writers_error_is_its_own_and_the_slot_is_passed_on() -> None:
    s = Store(queued=3, bad={0})
    s._first = True
    out: dict[int, object] = {}

    def first() -> None:
        try:
            out[0] = s.group.submit(0)
        except Exception as e:
            out[0] = e

    t = threading.Thread(target=first)
    t.start()
    while s.group._flying == 0:
        time.sleep(0.001)
    rest = _in_threads([1, 2, 3], s.group.submit)
    t.join(10)
    assert isinstance(out[0], ValueError)
    assert rest == dict.fromkeys([1, 2, 3], True)
    assert s.batches == [[1, 2, 3]] or sorted(s.batches[0]) == [1, 2, 3]
    assert s.group._flying == 0


@pytest.mark.parametrize("writers", [2, 16, 64])
def test_many_writers_every_write_once(writers: int) -> None:
    s = Store()
    s._first = False
    s.group = GroupCommit(s.one, s.many, max_in_flight=2)
    out = _in_threads(list(range(writers)), s.group.submit)
    assert out == dict.fromkeys(range(writers), True)
    assert sorted(s.rows) == list(range(writers))
    assert s.group._flying == 0 and s.group._queue == []


def test_two_slots_ending_together_never_hand_on_the_same_queue() -> None:
    """Two flushes end at once with writes queued: the queue goes to one of
    them, the other slot is given back (a slot handed on twice for one queue
    leaked, and with every slot leaked no write was ever written again)."""
    for _ in range(100):
        _two_slots_end_together()


def _two_slots_end_together() -> None:
    release = threading.Event()
    started = threading.Semaphore(0)

    def one(item: int) -> bool:
        if item < 2:  # the two writes holding the slots
            started.release()
            release.wait(10)
        return True

    group: GroupCommit[int] = GroupCommit(one, lambda items: [True] * len(items), max_in_flight=2)
    out: dict[int, object] = {}

    def run(i: int) -> None:
        out[i] = group.submit(i)

    holders = [threading.Thread(target=run, args=(i,)) for i in (0, 1)]
    for t in holders:
        t.start()
    assert started.acquire(timeout=10) and started.acquire(timeout=10)
    queued = [threading.Thread(target=run, args=(i,)) for i in (2, 3, 4)]
    for t in queued:
        t.start()
    deadline = time.monotonic() + 10
    while len(group._queue) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.0005)
    release.set()
    for t in holders + queued:
        t.join(10)
    assert out == dict.fromkeys(range(5), True)
    assert group._flying == 0 and group._queue == []


def test_an_interrupted_batch_writer_leaves_the_others_to_write_alone() -> None:
    s = Store(queued=3)

    def interrupted(items: list[int]) -> list[bool]:
        raise KeyboardInterrupt

    s.group._write_many = interrupted

    def submit(i: int) -> bool:
        try:
            return s.group.submit(i)
        except KeyboardInterrupt:
            return False  # the interrupted writer (threads cannot raise it here)

    out = _in_threads(list(range(4)), submit)
    assert list(out.values()).count(False) == 1, out  # the batch's writer
    leader = next(i for i, v in out.items() if v is False)
    assert sorted(s.rows) == sorted(set(range(4)) - {leader}), (s.rows, leader)
    assert s.group._flying == 0 and s.group._queue == []


def test_an_interrupted_wait_passes_on_what_it_was_handed() -> None:
    from wf._sysdb.group_commit import _Write

    def queued(i: int) -> _Write[int]:
        w = _Write(i)
        w.done = threading.Event()  # as submit() gives every write it queues
        return w

    group: GroupCommit[int] = GroupCommit(lambda i: True, lambda items: [True] * len(items), 1)
    # queued: it just leaves the queue
    a, b = queued(1), queued(2)
    group._flying, group._queue = 1, [a, b]
    group._abandon(a)
    assert group._queue == [b] and group._flying == 1
    # handed the queue: the rest of it, and the slot, go to the next write
    c, d = queued(3), queued(4)
    group._queue = []
    c.batch = [c, d]
    group._abandon(c)
    assert d.batch == [d] and d.done is not None and d.done.is_set() and group._flying == 1
    # handed only itself: the slot goes on with the queue (b), else back
    e = _Write(5)
    e.batch = [e]
    group._queue = [b]
    group._abandon(e)
    assert b.batch == [b] and b.done is not None and b.done.is_set() and group._flying == 1
    f = _Write(6)
    f.batch = [f]
    group._abandon(f)
    assert group._flying == 0
