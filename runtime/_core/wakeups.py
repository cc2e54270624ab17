"""Wake-ups: waking waiters (result(), recv, get_event, sleeps, cancel
watches, dequeuers) when what they wait for happens.

A wake-up key is ``kind:md5(parts)``, computed the same way here and by the
Postgres triggers (so IDs of any length fit a NOTIFY payload). In-process
events wake at once; on Postgres a listener thread turns ``NOTIFY wf`` into
the same local wake-ups, so waiters in other processes wake at once too.
Waiters still re-check the database with a backoff capped at 1 s, so a lost
notification (a dropped connection) costs latency, never correctness."""

from __future__ import annotations

import logging
import threading
import time

from .._sysdb import Listener, start_listener
from .._sysdb.dialects import dialect_for

log = logging.getLogger("wf")

_cond = threading.Condition()
# key -> [waiters interested in it, version]. Only keys someone waits on are
# held (a notification nobody waits for is dropped), so the map is bounded by
# the waiters alive at once, not by every key ever notified.
_interest: dict[str, list[int]] = {}
_epoch = 0  # bumped when notifications may have been missed: wakes everyone


def notify_local(key: str) -> None:
    entry = _interest.get(key)
    if entry is None:
        return  # nobody here waits for it
    with _cond:
        entry[1] += 1
        _cond.notify_all()


def notify_everyone() -> None:
    global _epoch
    with _cond:
        _epoch += 1
        _cond.notify_all()


# -- dequeuers: one event for "a queue may have work, or a slot was freed" ----------

# the dequeue loop clears it before a pass and waits on it (with a poll
# interval) after: new work or a freed slot cuts the wait short
work = threading.Event()


def wake_dequeuers() -> None:
    work.set()


def tracked_keys() -> int:
    """How many wake-up keys this process holds (one per key waited on now)."""
    return len(_interest)


class Waiter:
    """Arm before checking the database, then wait: a wake-up that lands in
    between is not lost. Close it when done (or use it as a context manager)
    so its key is forgotten."""

    __slots__ = ("key", "version", "_entry")

    def __init__(self, key: str) -> None:
        self.key = key
        self.version = (0, 0)
        self._entry: list[int] | None = None

    def _now(self) -> tuple[int, int]:
        assert self._entry is not None
        return (self._entry[1], _epoch)

    def arm(self) -> None:
        with _cond:
            if self._entry is None:
                entry = _interest.get(self.key)
                if entry is None:
                    entry = _interest[self.key] = [0, 0]
                entry[0] += 1
                self._entry = entry
            self.version = self._now()

    def fired(self) -> bool:
        """Has a wake-up come since the last arm()? (No lock: a stale read
        only delays the answer to the next check.)"""
        entry = self._entry
        return entry is not None and (entry[1], _epoch) != self.version

    def wait(self, timeout: float) -> None:
        if self._entry is None:
            self.arm()
        with _cond:
            _cond.wait_for(lambda: self._now() != self.version, timeout)

    def close(self) -> None:
        with _cond:
            entry, self._entry = self._entry, None
            if entry is not None:
                entry[0] -= 1
                if entry[0] <= 0 and _interest.get(self.key) is entry:
                    del _interest[self.key]

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- Postgres LISTEN: one listener per database, relaying into the wake-ups here ------

_listeners: dict[str, Listener] = {}
_listeners_lock = threading.Lock()


def _relay(payload: str) -> None:
    notify_local(payload)
    if payload[:2] in ("q:", "w:"):  # new work, or a freed slot
        wake_dequeuers()


def ensure_listener(url: str) -> None:
    """Start (once per database) the thread that relays Postgres notifications;
    on (re)connect everyone re-checks (anything sent meanwhile was lost)."""
    if not dialect_for(url).listens:
        return
    with _listeners_lock:
        if url in _listeners and _listeners[url].is_alive():
            return
        listener = _listeners[url] = start_listener(url, _relay, notify_everyone)
    listener.ready.wait(2.0)


def stop_listeners() -> None:
    with _listeners_lock:
        items = list(_listeners.values())
        _listeners.clear()
    for lst in items:
        lst.stop()
    deadline = time.monotonic() + 2
    for lst in items:
        lst.join(max(0.0, deadline - time.monotonic()))
