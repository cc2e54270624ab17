"""Group commit: concurrent threads' writes of one kind, written by one
statement and one commit when they arrive together.

A commit costs a WAL flush and a round trip whatever it carries, so sixteen
workflow threads each recording a step get more through one multi-row
statement than through sixteen. Nothing waits on purpose: a write that finds
fewer than ``max_in_flight`` flushes under way is written at once, alone (by
the single-row statement, so a lone workflow's latency is unchanged). Only
writes that arrive while every flush slot is busy queue up; the first of
them is woken when a flush ends and writes the whole queue as one batch.

Each write still returns what its own statement would have (was it written?),
and is durable before it returns. When a batch fails for any reason, every
write in it is done again alone by its own thread, so an error (a bad value,
an outage, a lock it would not wait for) reaches exactly the caller whose
write met it, as without batching; a write that the failed batch had
committed is then refused as already written, which its caller resolves by
reading the record, as after any lost answer."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class _Write(Generic[T]):
    __slots__ = ("item", "done", "written", "batch", "alone")

    def __init__(self, item: T) -> None:
        self.item = item
        # only a queued write waits (made under the lock when it queues):
        # one that finds a free slot writes at once and needs none
        self.done: threading.Event | None = None
        self.written = False
        # handed to this write, the first of them, to write (with a flush slot)
        self.batch: list[_Write[T]] | None = None
        self.alone = False  # its batch failed: write it alone


class GroupCommit(Generic[T]):
    """``submit(item)`` → ``write_one(item)``'s answer; concurrent items may
    go through ``write_many(items)`` instead, which answers per item."""

    def __init__(
        self,
        write_one: Callable[[T], bool],
        write_many: Callable[[list[T]], list[bool]],
        max_in_flight: int = 4,
    ) -> None:
        self._write_one = write_one
        self._write_many = write_many
        self._max = max_in_flight
        self._lock = threading.Lock()
        self._queue: list[_Write[T]] = []
        self._flying = 0  # flush slots held: writing, or handed on with a batch
        # batches written, and writes they carried (bench/tests read them)
        self.batches = 0
        self.batched = 0

    def submit(self, item: T) -> bool:
        me = _Write(item)
        with self._lock:
            if self._flying < self._max:
                self._flying += 1
                me.batch = [me]
            else:
                me.done = threading.Event()
                self._queue.append(me)
        if me.done is not None:
            try:
                me.done.wait()
            except BaseException:  # an interrupt (the main thread's Ctrl-C)
                self._abandon(me)
                raise
        if me.batch is not None:  # ours to write: alone, or handed the queue
            self._flush(me.batch)
        if me.alone:
            return self._write_one(item)
        return me.written

    def _flush(self, batch: list[_Write[T]]) -> None:
        """Write ``batch`` (holding one flush slot), answer its writes, and
        hand the slot on with the queue, or give it back."""
        try:
            if len(batch) == 1:
                # alone: its own statement, its errors its own
                batch[0].written = self._write_one(batch[0].item)
            else:
                try:
                    answers = self._write_many([w.item for w in batch])
                except BaseException as e:
                    for w in batch:
                        w.alone = True
                    if not isinstance(e, Exception):
                        raise  # the writer's interrupt; the others write alone
                else:
                    for w, ok in zip(batch, answers, strict=True):
                        w.written = ok
                    self.batches += 1
                    self.batched += len(batch)
        finally:
            self._hand_on()
            for w in batch:
                if w.done is not None:
                    w.done.set()

    def _hand_on(self) -> None:
        """The slot goes with the whole queue, taken here under the lock, to
        its first write (so no two slots are ever handed the same writes)."""
        with self._lock:
            queued, self._queue = self._queue, []
            if not queued:
                self._flying -= 1
                return
            queued[0].batch = queued
        _wake(queued[0])

    def _abandon(self, me: _Write[T]) -> None:
        """An interrupted wait: out of the queue, or, when the queue had
        been handed to it already, that batch (less it) and its slot go on
        to the next of its writes; a write in another's batch stays there."""
        with self._lock:
            if me in self._queue:
                self._queue.remove(me)
                return
            if me.batch is None:
                return
            rest = [w for w in me.batch if w is not me]
            me.batch = None
            if rest:
                rest[0].batch = rest
        if rest:
            _wake(rest[0])
        else:
            self._hand_on()


def _wake(w: _Write[T]) -> None:
    assert w.done is not None  # a queued write (every batch handed on is one)
    w.done.set()
