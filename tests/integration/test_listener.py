"""The LISTEN connection of the system database layer (wf._sysdb.listener):
a trigger's NOTIFY of a key the listener registered reaches the callback with
the key wake_key computes, a dropped connection is re-established (and
announced through on_connect, its keys registered again), and stop() ends
the thread at once."""

from __future__ import annotations

import queue
import threading
import time

import pytest
import sqlalchemy as sa
from wf._sysdb import SystemDatabase, start_listener, wake_key
from wf._sysdb.listener import APPLICATION_NAME, Listener


def _migrated(url: str) -> SystemDatabase:
    db = SystemDatabase(url)
    db.ensure_reachable()
    db.migrate()
    return db


def _send(db: SystemDatabase, destination: str, topic: str) -> None:
    with db.transaction() as conn:
        db.insert_message(destination, topic, '"hi"', None, conn)


def _expect(payloads: queue.Queue[str], key: str, deadline_s: float = 30.0) -> None:
    deadline = time.monotonic() + deadline_s
    seen = []
    while time.monotonic() < deadline:
        try:
            payload = payloads.get(timeout=0.5)
        except queue.Empty:
            continue
        if payload == key:
            return
        seen.append(payload)
    pytest.fail(f"no notification {key!r} within {deadline_s}s (got {seen})")


def _registered(listener: Listener, registered: queue.Queue[str], key: str) -> None:
    listener.want(key)
    assert registered.get(timeout=30) == key


def test_a_trigger_notify_reaches_on_payload_and_stop_is_immediate(pg_database: str) -> None:
    db = _migrated(pg_database)
    payloads: queue.Queue[str] = queue.Queue()
    registered: queue.Queue[str] = queue.Queue()
    connects = threading.Semaphore(0)
    listener = start_listener(pg_database, payloads.put, connects.release, registered.put)
    try:
        assert listener.ready.wait(30)
        assert connects.acquire(timeout=30)
        _registered(listener, registered, wake_key("m", "wf-1", "topic/é"))
        # the message trigger's payload is the key Python computes for it
        _send(db, "wf-1", "topic/é")
        _expect(payloads, wake_key("m", "wf-1", "topic/é"))
    finally:
        started = time.monotonic()
        listener.stop()
        listener.join(0.2)
        elapsed = time.monotonic() - started
        db.dispose()
    assert not listener.is_alive(), "the listener thread still runs 0.2 s after stop()"
    assert elapsed < 0.25


def test_the_listener_reconnects_after_its_connection_is_killed(pg_database: str) -> None:
    db = _migrated(pg_database)
    payloads: queue.Queue[str] = queue.Queue()
    connects = threading.Semaphore(0)
    registered: queue.Queue[str] = queue.Queue()
    listener = start_listener(pg_database, payloads.put, connects.release, registered.put)
    try:
        assert connects.acquire(timeout=30)
        _registered(listener, registered, wake_key("m", "wf-2", "t"))
        with db.engine.connect() as conn:
            killed = conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND application_name = :name"
                ),
                {"name": APPLICATION_NAME},
            ).fetchall()
        assert killed, "found no LISTEN session to kill"
        # on_connect again: the owner wakes its waiters to re-check
        assert connects.acquire(timeout=30), "the listener did not reconnect"
        # and the new session registered the key again
        assert registered.get(timeout=30) == wake_key("m", "wf-2", "t")
        _send(db, "wf-2", "t")
        _expect(payloads, wake_key("m", "wf-2", "t"))
    finally:
        listener.stop()
        listener.join(5)
        db.dispose()
    assert not listener.is_alive()


def test_sqlite_has_no_listener(sqlite_database: str) -> None:
    with pytest.raises(ValueError):
        start_listener(sqlite_database, lambda _p: None, lambda: None)
