"""Schema 4: the triggers NOTIFY only keys some process registered
(wf.wake_interest, written by the listener's session). A key nobody waits
for is not notified; a waiter in another process registers, is notified and
wakes; a registration racing an uncommitted notifier completes only after
that notifier committed (so the waiter's re-check sees it); rows go away
when the waits end, and rows of a killed process are swept. Migration 4
applies on top of a version-3 database with work in it."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import wf
from wf._core import wakeups
from wf._sysdb import SystemDatabase, start_listener, wake_key
from wf._sysdb import schema as wf_schema

from tests.helpers import finish, outcome, spawn_app, wait_for

APP = "tests.apps.comm_messages"
REPO = Path(__file__).resolve().parents[2]


def _migrated(url: str) -> SystemDatabase:
    db = SystemDatabase(url)
    db.ensure_reachable()
    db.migrate()
    return db


def _send(db: SystemDatabase, destination: str, topic: str) -> None:
    with db.transaction() as conn:
        db.insert_message(destination, topic, '"hi"', None, conn)


def _interest(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url, autocommit=True) as conn:
        return [(k, p) for k, p in conn.execute("SELECT key, pid FROM wf.wake_interest")]


class _Spy:
    """A plain LISTEN session of the test's own: what the triggers sent."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("LISTEN wf")
        self.seen: list[str] = []

    def until(self, key: str, timeout: float = 30) -> list[str]:
        """Payloads received up to and including ``key`` (in commit order)."""
        deadline = time.monotonic() + timeout
        while key not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                pytest.fail(f"no notification {key!r} within {timeout}s (got {self.seen})")
            self.seen.extend(n.payload for n in self.conn.notifies(timeout=min(left, 0.5)))
        return self.seen[: self.seen.index(key) + 1]

    def close(self) -> None:
        self.conn.close()


def test_only_registered_keys_are_notified(pg_database: str) -> None:
    db = _migrated(pg_database)
    spy = _Spy(pg_database)
    registered: queue.Queue[str] = queue.Queue()
    listener = start_listener(pg_database, lambda _p: None, lambda: None, registered.put)
    try:
        wanted = wake_key("m", "someone", "t")
        listener.want(wanted)
        assert registered.get(timeout=30) == wanted
        assert _interest(pg_database) == [(wanted, _listener_pid(pg_database))]
        # committed first, so notified first had anyone wanted it
        _send(db, "nobody", "t")
        _send(db, "someone", "t")
        assert spy.until(wanted) == [wanted]
        listener.unwant(wanted)
        wait_for(lambda: not _interest(pg_database), what="the interest row to go")
    finally:
        listener.stop()
        listener.join(5)
        spy.close()
        db.dispose()


def _listener_pid(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'wf listener'"
            " AND datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_a_registration_completes_only_after_a_racing_notifier_committed(
    pg_database: str,
) -> None:
    """The notifier's trigger looked (and found no interest) before the
    registration; the registration must not be in place (the waiter must not
    re-check) until the notifier's write is visible."""
    db = _migrated(pg_database)
    key = wake_key("m", "racer", "t")
    visible_when_registered: list[bool] = []

    def on_registered(k: str) -> None:
        with psycopg.connect(pg_database, autocommit=True) as c:
            n = c.execute("SELECT count(*) FROM wf.messages WHERE destination_id = 'racer'")
            visible_when_registered.append(n.fetchone()[0] == 1)  # type: ignore[index]

    notifier = psycopg.connect(pg_database)  # READ COMMITTED, one open transaction
    listener = start_listener(pg_database, lambda _p: None, lambda: None, on_registered)
    try:
        assert listener.ready.wait(30)
        notifier.execute(
            "INSERT INTO wf.messages (destination_id, topic, message, created_at)"
            " VALUES ('racer', 't', '\"hi\"', 0)"
        )  # its trigger ran: nobody had registered
        listener.want(key)
        time.sleep(0.3)  # the listener tries (and must fail) meanwhile
        assert visible_when_registered == []
        notifier.commit()
        wait_for(lambda: visible_when_registered, what="the registration")
        assert visible_when_registered == [True]
    finally:
        notifier.close()
        listener.stop()
        listener.join(5)
        db.dispose()


def test_a_waiter_in_another_process_registers_is_notified_and_leaves_no_rows(
    pg_database: str,
) -> None:
    wf.configure(database_url=pg_database)
    spy = _Spy(pg_database)
    proc = spawn_app(APP, "start", "pub", "publisher", db_url=pg_database)
    try:
        assert wf.get_event("pub", "progress", timeout=60) == 1
        final = wake_key("e", "pub", "final")
        got: list[Any] = []
        waiter = threading.Thread(target=lambda: got.append(wf.get_event("pub", "final", 30)))
        waiter.start()
        # the waiting process registered its key with its listener's session
        wait_for(lambda: final in [k for k, _ in _interest(pg_database)], what="registration")
        wf.send("pub", "now", topic="go")
        waiter.join(60)
        assert got == [{"go": "now"}]
        spy.until(final)  # the publisher's set_event notified it
        assert outcome(finish(proc)) == "published"
        wait_for(lambda: not _interest(pg_database), what="the interest rows to go")
        assert wakeups.registered_keys() == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        spy.close()


def test_interest_rows_do_not_accumulate(launched: str) -> None:
    @wf.workflow()
    def slowish(i: int) -> int:
        time.sleep(0.05)  # longer than a waiter's grace
        return i

    for _ in range(3):
        handles = [wf.start(slowish, i) for i in range(8)]
        assert [h.result() for h in handles] == list(range(8))
    assert wakeups.registered_keys() == 0
    assert wakeups.tracked_keys() == 0
    if launched.startswith("postgresql"):
        wait_for(lambda: not _interest(launched), what="the interest rows to go")


def test_a_wait_on_a_run_of_this_process_registers_nothing(launched: str) -> None:
    """result() of a workflow this process runs is woken in-process when it
    ends, so it registers no interest (and the finish notifies nobody), also
    when it waits far past the grace."""
    gate = threading.Event()

    @wf.workflow()
    def held(i: int) -> int:
        gate.wait(30)
        return i

    seen: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            seen.append(wakeups.registered_keys())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        handles = [wf.start(held, i) for i in range(4)]
        threading.Timer(0.5, gate.set).start()  # result() waits 50 graces
        assert [h.result(timeout=30) for h in handles] == list(range(4))
    finally:
        stop.set()
        sampler.join(5)
    assert seen and max(seen) == 0, max(seen)
    if launched.startswith("postgresql"):
        assert _interest(launched) == []


_CANCEL = """
import sys, wf
wf.configure(database_url=sys.argv[1])
wf.cancel(sys.argv[2])
"""


def test_a_local_waiter_sees_a_cancel_from_another_process(launched: str) -> None:
    """The run is here but the cancel is not: the waiter still ends with it
    (on Postgres woken by the cancel's notification, on SQLite by its
    re-check), before the run reaches its next call."""
    gate = threading.Event()

    @wf.step()
    def long_step() -> str:
        gate.wait(30)
        return "done"

    @wf.workflow()
    def cancellable() -> str:
        return long_step()

    with wf.set_workflow_id("cancel-me"):
        handle = wf.start(cancellable)
    try:
        wait_for(lambda: handle.status().status == "PENDING", what="the run to start")
        subprocess.run(
            [sys.executable, "-c", _CANCEL, launched, "cancel-me"], check=True, timeout=60
        )
        with pytest.raises(wf.WorkflowCancelledError):
            handle.result(timeout=20)
        assert not gate.is_set()  # the step is still running: its end did not wake us
    finally:
        gate.set()


_KILLED_WAITER = """
import sys, wf
wf.configure(database_url=sys.argv[1])
wf.get_event("nobody", "never", timeout=600)
"""


def test_rows_of_a_killed_waiter_are_swept(pg_database: str) -> None:
    _migrated(pg_database).dispose()
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WAITER, pg_database],
        cwd=str(REPO),
        env={k: v for k, v in os.environ.items() if not k.startswith("WF_")},
    )
    try:
        key = wake_key("e", "nobody", "never")
        wait_for(lambda: [k for k, _ in _interest(pg_database)] == [key], 60, what="the row")
        (pid,) = {p for _, p in _interest(pg_database)}
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)

    def gone() -> bool:
        with psycopg.connect(pg_database, autocommit=True) as c:
            return (
                c.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
                is None
            )

    wait_for(gone, what="the killed process's session to end")
    assert _interest(pg_database) != []  # nothing removed it yet
    listener = start_listener(pg_database, lambda _p: None, lambda: None)
    try:
        assert listener.ready.wait(30)  # swept on connect
        assert _interest(pg_database) == []
    finally:
        listener.stop()
        listener.join(5)


def test_migration_4_applies_on_a_version_3_database(
    pg_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SystemDatabase, "migrations", wf_schema.MIGRATIONS[:3])
    old = _migrated(pg_database)
    assert old.schema_version() == 3
    _send(old, "before", "t")  # work recorded under version 3
    old.dispose()
    monkeypatch.setattr(SystemDatabase, "migrations", wf_schema.MIGRATIONS)
    db = _migrated(pg_database)
    assert db.schema_version() == wf_schema.LATEST_VERSION
    assert _interest(pg_database) == []
    spy = _Spy(pg_database)
    registered: queue.Queue[str] = queue.Queue()
    listener = start_listener(pg_database, lambda _p: None, lambda: None, registered.put)
    try:
        key = wake_key("m", "before", "t")
        listener.want(key)
        assert registered.get(timeout=30) == key
        _send(db, "before", "t")
        assert spy.until(key) == [key]
    finally:
        listener.stop()
        listener.join(5)
        spy.close()
        db.dispose()


def test_migration_4_is_a_version_bump_on_sqlite(
    sqlite_database: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SystemDatabase, "migrations", wf_schema.MIGRATIONS[:3])
    _migrated(sqlite_database).dispose()
    monkeypatch.setattr(SystemDatabase, "migrations", wf_schema.MIGRATIONS)
    db = _migrated(sqlite_database)
    assert db.schema_version() == wf_schema.LATEST_VERSION
    db.dispose()
