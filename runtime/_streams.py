"""Streams: a workflow appends values under a key (``wf.write_stream``), ends
the stream (``wf.close_stream``), and anyone reads them in order
(``wf.read_stream``), waiting for more until the stream is closed or the
workflow ends.

A write is a recorded call (kind ``stream``, named ``write_stream:KEY`` /
``close_stream:KEY``, so a replay that writes to another key is a
NonDeterminismError): the value's row and the call's record commit in one
transaction, so after a crash the replay skips the writes that committed
and the run continues with the next. Readers never see a value twice or out
of order: the rows carry the writing call's position, and a workflow's
writes commit in that order (sync calls run in the workflow's thread; the
async twins wait for the workflow's previous stream write to commit first).

Readers wait like ``get_event``: woken at once by a write in this process
or, on Postgres, by NOTIFY from another one; they re-check with a backoff
capped at ``POLL_MAX`` s, which is also how soon a reader notices that a
workflow ended without closing its stream (and all that SQLite readers in
another process get)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import _root
from ._comm import Slot, _reserve
from ._context import workflow_here
from ._core import Waiter, ensure_listener, notify_local, replay, resolve_unrecorded, wake_key
from ._errors import WfError, WorkflowNotFoundError
from ._records import Status
from ._serialization import dumps, dumps_error, loads
from ._sysdb import SystemDatabase, now_ms

# the kind of a stream call in ``wf steps``
STREAM = "stream"
# the longest a waiting reader goes without looking at the database
POLL_MAX = 0.5


@dataclass(frozen=True)
class StreamEntry:
    """One value of a stream: its place (0, 1, 2, ...), the value and when it was written."""

    index: int
    value: Any
    written_at: datetime


# -- writing (inside a workflow) ---------------------------------------------------------


def _call_name(key: str, closed: bool) -> str:
    return ("close_stream:" if closed else "write_stream:") + key


def _slot(key: str, closed: bool) -> Slot:
    slot = _reserve(_call_name(key, closed), STREAM)
    if slot is None:
        what = "close_stream" if closed else "write_stream"
        raise WfError(
            f"wf.{what}() is only available in a workflow's body (not outside a workflow, "
            "nor inside a step or transaction)"
        )
    return slot


def write_stream(key: str, value: Any) -> None:
    """Append ``value`` to this workflow's stream ``key`` (exactly once: a
    replay does not write it again). A value that cannot be stored is a
    SerializationError before anything is written; a write after
    ``close_stream(key)`` is a WfError."""
    payload = dumps(value)
    k = str(key)
    _write(_slot(k, False), k, payload, False)


def close_stream(key: str) -> None:
    """End this workflow's stream ``key``: its readers stop after the values
    written so far. Closing a closed stream does nothing."""
    k = str(key)
    _write(_slot(k, True), k, None, True)


def _write(slot: Slot, key: str, payload: str | None, closed: bool) -> None:
    ex, ctx, pos, rec = slot
    name = _call_name(key, closed)
    if rec is not None:
        replay(ctx, pos, rec, name, STREAM)  # written when it was recorded
        return
    workflow_id = ctx.workflow_id
    refusal = WfError(f"stream {key!r} of workflow {workflow_id} is closed: nothing written")
    recorded, refused = ex.sysdb.record_stream_call(
        workflow_id=workflow_id,
        executor_id=ctx.executor_id,
        position=pos,
        name=name,
        kind=STREAM,
        key=key,
        value=payload,
        closed=closed,
        started_at=now_ms(),
        closed_error=dumps_error(refusal),
        run_token=ctx.run_token,
    )
    if not recorded:
        # cancelled, adopted by another executor, or our own write whose
        # answer was lost: resolved as every refused record is
        replay(ctx, pos, resolve_unrecorded(ex, ctx, pos), name, STREAM)
        return
    if refused:
        raise refusal  # recorded as this call's error: a replay raises it again
    notify_local(wake_key("s", workflow_id, key))


# each running async workflow's last stream write still in flight: the next
# one waits for it, so the writes commit in position order (readers page by
# position and must never meet a gap that fills in later)
_tails: dict[int, asyncio.Future[None]] = {}


async def _write_async(slot: Slot, key: str, payload: str | None, closed: bool) -> None:
    ctx = slot[1]
    loop = asyncio.get_running_loop()
    previous = _tails.get(id(ctx))
    mine: asyncio.Future[None] = loop.create_future()
    _tails[id(ctx)] = mine
    # what must be over before the next stream write of this workflow may start
    pending: asyncio.Future[Any] | None = previous
    try:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])  # its outcome is its own caller's
        pending = asyncio.ensure_future(asyncio.to_thread(_write, slot, key, payload, closed))
        # a cancel here leaves the thread writing: the next write still waits for it
        await asyncio.shield(pending)
    finally:

        def release(f: asyncio.Future[Any] | None = None) -> None:
            if f is not None and not f.cancelled():
                f.exception()  # retrieved: its caller has gone (cancelled)
            if not mine.done():
                mine.set_result(None)
            if _tails.get(id(ctx)) is mine:
                del _tails[id(ctx)]

        if pending is not None and not pending.done():
            pending.add_done_callback(release)
        else:
            release()


async def write_stream_async(key: str, value: Any) -> None:
    """``wf.write_stream`` for async code (the position is taken here, in
    call order; writes started together commit in that order)."""
    payload = dumps(value)
    k = str(key)
    await _write_async(_slot(k, False), k, payload, False)


async def close_stream_async(key: str) -> None:
    """``wf.close_stream`` for async code."""
    k = str(key)
    await _write_async(_slot(k, True), k, None, True)


# -- reading (anywhere but a workflow's body) ---------------------------------------------


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


class StreamReader:
    """An iterator over a stream's values (``entries()``: with their index
    and time). It stops after the close, or once the workflow has ended and
    every value written is read, or (``follow=False``) after the values
    written so far. ``closed`` says whether the writer closed the stream."""

    def __init__(
        self, db: SystemDatabase, workflow_id: str, key: str, *, follow: bool = True
    ) -> None:
        if db.get_outcome(workflow_id) is None:
            raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
        self.workflow_id = workflow_id
        self.key = key
        self.follow = follow
        self.closed = False  # the writer closed it
        self._db = db
        self._after = -1  # the last row read (its position)
        self._index = 0
        self._buffer: collections.deque[StreamEntry] = collections.deque()
        self._done = False
        self._waiter: Waiter | None = None

    def __iter__(self) -> StreamReader:
        return self

    def __next__(self) -> Any:
        entry = self.next_entry()
        if entry is None:
            raise StopIteration
        return entry.value

    def entries(self) -> Iterator[StreamEntry]:
        """The rest of the stream as StreamEntry records."""
        while (entry := self.next_entry()) is not None:
            yield entry

    def close(self) -> None:
        """Stop reading (forgets the wake-up key; also done at the end)."""
        self._done = True
        self._buffer.clear()
        self._forget()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self._forget()

    def _forget(self) -> None:
        waiter = getattr(self, "_waiter", None)  # None too when __init__ raised
        self._waiter = None
        if waiter is not None:
            waiter.close()

    def _fetch(self) -> bool:
        """Read the next page; True when it had rows."""
        rows = self._db.read_stream(self.workflow_id, self.key, self._after)
        for r in rows:
            self._after = r.position
            if r.closed:
                self.closed = self._done = True
                break
            self._buffer.append(StreamEntry(self._index, loads(r.value), _dt(r.created_at)))
            self._index += 1
        return bool(rows)

    def next_entry(self) -> StreamEntry | None:
        """The next value, waiting for it when following; None at the end."""
        if self._buffer:
            return self._buffer.popleft()
        if self._done:
            return None
        if not self.follow:
            if not self._fetch():
                self._done = True
            return self._buffer.popleft() if self._buffer else self.next_entry()
        if self._waiter is None:
            ensure_listener(self._db.listen_url)
            self._waiter = Waiter(wake_key("s", self.workflow_id, self.key))
        waiter = self._waiter
        ended = False  # seen ended: the next empty read is the end
        delay = 0.005
        while not self._buffer and not self._done:
            waiter.arm()  # before reading: a write landing after the read wakes us
            if self._fetch():
                continue
            if ended:
                self._done = True
                break
            out = self._db.get_outcome(self.workflow_id)
            if out is None or out[0] in Status.ENDED:
                # writes commit before their workflow's end: read once more
                ended = True
                continue
            waiter.wait(delay)
            delay = min(delay * 2, POLL_MAX)
        if self._done:
            self._forget()
        return self._buffer.popleft() if self._buffer else None


def read_stream(workflow_id: str, key: str, *, follow: bool = True) -> StreamReader:
    """The values of workflow ``workflow_id``'s stream ``key``, in order,
    each once: ``for value in wf.read_stream(wid, "progress"): ...``. Blocks
    for more until the stream is closed or the workflow ends (``follow=False``:
    only what is written now). An unknown workflow is WorkflowNotFoundError.
    Not in a workflow's body (it would not replay the same): read in a step."""
    return _reader(workflow_id, key, follow, None)


def read_stream_in(
    db: SystemDatabase, workflow_id: str, key: str, *, follow: bool = True
) -> StreamReader:
    """``read_stream`` on a given system database (a wf.Client's)."""
    return _reader(workflow_id, key, follow, db)


def _reader(workflow_id: str, key: str, follow: bool, db: SystemDatabase | None) -> StreamReader:
    if workflow_here() is not None:
        raise WfError(
            "wf.read_stream() cannot run in a workflow's body (what it returns is not "
            "recorded, so a replay would not see the same): read the stream in a step"
        )
    return StreamReader(db or _root.client(), str(workflow_id), str(key), follow=follow)


async def read_stream_async(
    workflow_id: str, key: str, *, follow: bool = True
) -> AsyncIterator[Any]:
    """``wf.read_stream`` for async code: ``async for value in wf.read_stream_async(wid, key)``.
    The waiting happens in a worker thread; the event loop runs on meanwhile."""
    reader = await asyncio.to_thread(_reader, workflow_id, key, follow, None)
    try:
        while (entry := await asyncio.to_thread(reader.next_entry)) is not None:
            yield entry.value
    finally:
        reader.close()
