"""Wake-ups: waking waiters (result(), recv, get_event, sleeps, cancel
watches, dequeuers) when what they wait for happens.

A wake-up key is ``kind:md5(parts)``, computed the same way here and by the
Postgres triggers (so IDs of any length fit a NOTIFY payload). In-process
events wake at once; on Postgres a listener thread turns ``NOTIFY wf`` into
the same local wake-ups, so waiters in other processes wake at once too.
Waiters still re-check the database with a backoff capped at 1 s, so a lost
notification (a dropped connection) costs latency, never correctness.

The triggers notify only keys that some process registered (schema 4; a
notifying commit serializes with every other one, so a finish nobody waits
for must not notify). A waiter registers its key through the listener's
session once it has waited ``REGISTER_AFTER_S`` (most waits on a workflow of
the same process end sooner, woken in-process, and cost nothing), and wakes
to re-check as soon as the row is in (``schema.wake_wanted`` says why that
re-check cannot miss a concurrent finish). The key is given up when the
last waiter for it in this process closes. Cancel keys (``c:``) are always
notified, so they are never registered. Dequeuers need no registration: an
executor's heartbeat row names the queues it serves."""

from __future__ import annotations

import logging
import threading
import time

from .._sysdb import Listener, start_listener
from .._sysdb.dialects import dialect_for

log = logging.getLogger("wf")

_cond = threading.Condition()
# key -> [waiters interested in it, version, of them registered with the
# listeners]. Only keys someone waits on are held (a notification nobody
# waits for is dropped), so the map is bounded by the waiters alive at once,
# not by every key ever notified.
_interest: dict[str, list[int]] = {}
_epoch = 0  # bumped when notifications may have been missed: wakes everyone

# how long a waiter waits before registering its key with the database
REGISTER_AFTER_S = 0.01


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
    so its key is forgotten (and given up in the database)."""

    __slots__ = ("key", "version", "local", "_entry", "_since", "_remote")

    def __init__(self, key: str) -> None:
        self.key = key
        self.version = (0, 0)
        # what it waits for happens in this process, which wakes it: no
        # registration with the database (a finish nobody elsewhere waits
        # for then commits without notifying)
        self.local = False
        self._entry: list[int] | None = None
        self._since: float | None = None  # the first wait()
        self._remote = False  # counted in the entry's registrations

    def _now(self) -> tuple[int, int]:
        assert self._entry is not None
        return (self._entry[1], _epoch)

    def arm(self) -> None:
        with _cond:
            if self._entry is None:
                entry = _interest.get(self.key)
                if entry is None:
                    entry = _interest[self.key] = [0, 0, 0]
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
        if not (self._remote or self.local) and _listeners and not self.key.startswith("c:"):
            now = time.monotonic()
            if self._since is None:
                self._since = now
            left = self._since + REGISTER_AFTER_S - now
            if 0 < left < timeout:
                # wait out the grace, then register and wait the rest
                self._wait(left)
                if self.fired():
                    return
                timeout -= left
                left = 0
            if left <= 0:
                self._register()
        self._wait(timeout)

    def _wait(self, timeout: float) -> None:
        with _cond:
            _cond.wait_for(lambda: self._now() != self.version, timeout)

    def _register(self) -> None:
        with _cond:
            entry = self._entry
            if entry is None or self._remote:
                return
            self._remote = True
            entry[2] += 1
            first = entry[2] == 1
        if first:
            for lst in list(_listeners.values()):
                lst.want(self.key)

    def close(self) -> None:
        last_remote = False
        with _cond:
            entry, self._entry = self._entry, None
            if entry is not None:
                entry[0] -= 1
                if self._remote:
                    entry[2] -= 1
                    last_remote = entry[2] <= 0
                if entry[0] <= 0 and _interest.get(self.key) is entry:
                    del _interest[self.key]
            self._remote = False
            self._since = None
        if last_remote:
            for lst in list(_listeners.values()):
                lst.unwant(self.key)

    def __enter__(self) -> Waiter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def registered_keys() -> int:
    """How many keys this process has asked the database to notify it of."""
    with _cond:
        return sum(1 for e in _interest.values() if e[2] > 0)


# -- Postgres LISTEN: one listener per database, relaying into the wake-ups here ------

_listeners: dict[str, Listener] = {}
_listeners_lock = threading.Lock()


def _relay(payload: str) -> None:
    notify_local(payload)
    if payload[:2] == "c:":
        # cancelled: its waiters here re-check too (a waiter on a run of this
        # process registers nothing, Waiter.local, so no "w:" came for it)
        notify_local("w:" + payload[2:])
    if payload[:2] in ("q:", "w:"):  # new work, or a freed slot
        wake_dequeuers()


def ensure_listener(url: str | None) -> None:
    """Start (once per database) the thread that relays Postgres notifications;
    on (re)connect everyone re-checks (anything sent meanwhile was lost).
    ``url`` None: nowhere to listen (SQLite, or behind a pooler without a
    direct URL): waiters poll."""
    if url is None or not dialect_for(url).listens:
        return
    with _listeners_lock:
        if url in _listeners and _listeners[url].is_alive():
            return
        listener = _listeners[url] = start_listener(url, _relay, notify_everyone, notify_local)
        with _cond:
            wanted = [k for k, e in _interest.items() if e[2] > 0]
        for key in wanted:  # waits that began before this database was listened to
            listener.want(key)
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
