"""The LISTEN connection: a thread that holds one connection to the system
database, runs ``LISTEN wf`` and hands each notification's payload (a
``schema.wake_key``) to a callback. It reconnects with backoff and calls
``on_connect`` after every (re)connect, since notifications sent while it
was away are lost: its owner then wakes every waiter to re-check.

The same session registers this process's interest in wake-up keys (schema
4: the triggers notify a key only if some session registered it, see
``schema.wake_wanted``). ``want(key)`` asks for a key, ``unwant(key)`` gives
it up; the thread writes the rows and calls ``on_registered(key)`` once a
row is committed, so a waiter re-checks after its registration (the half of
the race argument that is the waiter's). Rows live as long as the session:
a reconnect registers every wanted key again, and rows of sessions that are
gone are swept on connect and every ``SWEEP_S``. On a database without
schema 4 (older wf) every notification is sent anyway: keys count as
registered at once."""

from __future__ import annotations

import logging
import os
import re
import select
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from . import queries
from .dialects import PostgresDialect, dialect_for

log = logging.getLogger("wf")

CHANNEL = "wf"  # the channel the schema's triggers notify
# the longest wait for notifications between two looks at stop() and want()
# (both also wake the thread at once through its pipe)
POLL_S = 0.05
# a registration that met a notifier of its key's bucket tries again after this
RETRY_S = 0.002
SWEEP_S = 60.0
APPLICATION_NAME = "wf listener"


def _sql(name: str) -> str:
    """A named statement for psycopg (``:x`` binds as ``%(x)s``)."""
    text = queries.render(name, PostgresDialect())
    return re.sub(r"(?<!:):(\w+)", r"%(\1)s", text)


class Listener:
    """Relays ``NOTIFY wf`` payloads; built by ``start_listener``.

    ``ready`` is set once it listens (and stays set across reconnects);
    ``stop()`` makes it end at once, ``join`` waits."""

    def __init__(
        self,
        url: str,
        on_payload: Callable[[str], None],
        on_connect: Callable[[], None],
        on_registered: Callable[[str], None] | None = None,
    ) -> None:
        self.conninfo = PostgresDialect.conninfo(url)
        self.on_payload = on_payload
        self.on_connect = on_connect
        self.on_registered = on_registered
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._wanted: set[str] = set()
        # registered in the current session (or taken as such: no schema 4)
        self._held: set[str] = set()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        # closed with the object, not with the thread: a poke after the
        # thread ended must not write into a reused descriptor
        weakref.finalize(self, _close, self._wake_r, self._wake_w)
        self.thread = threading.Thread(target=self._run, name="wf-listen", daemon=True)

    # -- asked from other threads -----------------------------------------------------

    def stop(self) -> None:
        """Ask the thread to end; returns at once."""
        self._stop.set()
        self._poke()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def want(self, key: str) -> None:
        """Register interest in ``key`` (``on_registered(key)`` once done)."""
        with self._lock:
            if key in self._wanted:
                return
            self._wanted.add(key)
        self._poke()

    def unwant(self, key: str) -> None:
        with self._lock:
            if key not in self._wanted:
                return
            self._wanted.discard(key)
        self._poke()

    def registered(self) -> set[str]:
        """The keys registered in the current session (a copy)."""
        with self._lock:
            return set(self._held)

    def _poke(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (the thread will look anyway) or closed

    # -- the thread -----------------------------------------------------------------

    def _run(self) -> None:
        import psycopg

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=10,
                    application_name=APPLICATION_NAME,
                ) as conn:
                    with self._lock:
                        self._held = set()
                    # its writes are an unlogged registry: no flush to wait for
                    conn.execute("SET synchronous_commit = off")
                    interest = self._sweep(conn)
                    # before any registration (schema.wake_wanted); and last,
                    # so pg_stat_activity shows it until a wait registers
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.1
                    self.ready.set()
                    self._call(self.on_connect)
                    self._relay(conn, interest)
            except Exception as e:
                if self._stop.is_set():
                    return
                log.debug("wf listener: %s", e)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _sweep(self, conn: Any) -> bool:
        """Delete rows of sessions that are gone; False: no schema 4 here."""
        import psycopg

        try:
            conn.execute(_sql("wake_sweep"))
            return True
        except (psycopg.errors.UndefinedTable, psycopg.errors.InvalidSchemaName):
            return False

    def _relay(self, conn: Any, interest: bool) -> None:
        sock = conn.fileno()
        swept = time.monotonic()
        while not self._stop.is_set():
            pending = self._reconcile(conn, interest)
            # notifications that arrived during a statement wait in
            # psycopg's backlog, not on the socket: take them first
            self._drain(conn)
            readable, _, _ = select.select(
                [sock, self._wake_r], [], [], RETRY_S if pending else POLL_S
            )
            if self._wake_r in readable:
                try:
                    while os.read(self._wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
            self._drain(conn)
            if time.monotonic() - swept > SWEEP_S:
                swept = time.monotonic()
                if interest:
                    conn.execute(_sql("wake_sweep"))
                elif self._sweep(conn):  # migrated meanwhile: register for real
                    interest = True
                    with self._lock:
                        self._held = set()
        if interest:
            # a clean stop: this session's rows go with it
            conn.execute(_sql("wake_forget_session"))

    def _drain(self, conn: Any) -> None:
        for n in conn.notifies(timeout=0):
            self._call(self.on_payload, n.payload)

    def _reconcile(self, conn: Any, interest: bool) -> bool:
        """Write the wanted keys not yet registered, delete the unwanted;
        True if some registration must be tried again."""
        with self._lock:
            add = self._wanted - self._held
            drop = self._held - self._wanted
        if drop:
            if interest:
                conn.execute(_sql("wake_unregister"), {"keys": sorted(drop)})
            with self._lock:
                self._held -= drop
        retry = False
        done = []
        for key in sorted(add):
            # one key (one lock) per transaction: see schema.wake_register
            if not interest or conn.execute(_sql("wake_register"), {"key": key}).fetchone()[0]:
                done.append(key)
            else:
                retry = True
        if done:
            with self._lock:
                self._held.update(done)
            if self.on_registered is not None:
                for key in done:
                    self._call(self.on_registered, key)
        return retry

    @staticmethod
    def _call(fn: Callable[..., None], *args: str) -> None:
        # a failing callback must not cost the connection (and every
        # notification sent while it reconnects)
        try:
            fn(*args)
        except Exception:
            log.exception("wf listener: callback %r failed", fn)


def _close(*fds: int) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def start_listener(
    url: str,
    on_payload: Callable[[str], None],
    on_connect: Callable[[], None],
    on_registered: Callable[[str], None] | None = None,
) -> Listener:
    """Start a thread relaying the database's ``NOTIFY wf`` payloads to
    ``on_payload`` (called on that thread), calling ``on_connect`` after each
    (re)connect and ``on_registered(key)`` once a ``want(key)`` is in place.
    Only for a database whose dialect listens (Postgres)."""
    if not dialect_for(url).listens:
        raise ValueError(f"{dialect_for(url).name} has no LISTEN/NOTIFY")
    listener = Listener(url, on_payload, on_connect, on_registered)
    listener.thread.start()
    return listener
