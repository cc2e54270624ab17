"""The LISTEN connection: a thread that holds one connection to the system
database, runs ``LISTEN wf`` and hands each notification's payload (a
``schema.wake_key``) to a callback. It reconnects with backoff and calls
``on_connect`` after every (re)connect, since notifications sent while it
was away are lost: its owner then wakes every waiter to re-check."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from .dialects import PostgresDialect, dialect_for

log = logging.getLogger("wf")

CHANNEL = "wf"  # the channel the schema's triggers notify
# how long one wait for notifications lasts: the longest stop() may wait
POLL_S = 0.05


class Listener:
    """Relays ``NOTIFY wf`` payloads; built by ``start_listener``.

    ``ready`` is set once it listens (and stays set across reconnects);
    ``stop()`` makes it end within one poll (``POLL_S``), ``join`` waits."""

    def __init__(
        self, url: str, on_payload: Callable[[str], None], on_connect: Callable[[], None]
    ) -> None:
        self.conninfo = PostgresDialect.conninfo(url)
        self.on_payload = on_payload
        self.on_connect = on_connect
        self.ready = threading.Event()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="wf-listen", daemon=True)

    def stop(self) -> None:
        """Ask the thread to end; returns at once."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def is_alive(self) -> bool:
        return self.thread.is_alive()

    def _run(self) -> None:
        import psycopg

        delay = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    delay = 0.1
                    self.ready.set()
                    self._call(self.on_connect)
                    self._relay(conn)
            except Exception as e:
                if self._stop.is_set():
                    return
                log.debug("wf listener: %s", e)
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)

    def _relay(self, conn: Any) -> None:
        # short waits, so stop() takes effect at once (psycopg offers no way to
        # interrupt a wait from another thread)
        while not self._stop.is_set():
            for n in conn.notifies(timeout=POLL_S):
                self._call(self.on_payload, n.payload)

    @staticmethod
    def _call(fn: Callable[..., None], *args: str) -> None:
        # a failing callback must not cost the connection (and every
        # notification sent while it reconnects)
        try:
            fn(*args)
        except Exception:
            log.exception("wf listener: callback %r failed", fn)


def start_listener(
    url: str, on_payload: Callable[[str], None], on_connect: Callable[[], None]
) -> Listener:
    """Start a thread relaying the database's ``NOTIFY wf`` payloads to
    ``on_payload`` (called on that thread), calling ``on_connect`` after each
    (re)connect. Only for a database whose dialect listens (Postgres)."""
    if not dialect_for(url).listens:
        raise ValueError(f"{dialect_for(url).name} has no LISTEN/NOTIFY")
    listener = Listener(url, on_payload, on_connect)
    listener.thread.start()
    return listener
