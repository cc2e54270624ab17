"""A TCP proxy between wf and Postgres that the tests use to break the network
on purpose: cut every connection (a partition), refuse new ones for a while,
or let a statement through and then drop the connection before its answer
comes back (e.g. a COMMIT that landed while the client cannot know)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class _Pair:
    def __init__(self, client: socket.socket, upstream: socket.socket) -> None:
        self.client = client
        self.upstream = upstream
        self.blackhole = False  # drop what the server sends back
        self.armed = False  # the next client message is the last one
        self.closed = False

    def close(self) -> None:
        self.closed = True
        for s in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()


class NetProxy:
    """Listens on 127.0.0.1:``port`` (a free one) and forwards to ``target``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = int(self.listener.getsockname()[1])
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.refusing = threading.Event()
        self._trap: tuple[bytes, bool] | None = None  # (marker, drop the answer to it)
        self.trap_sprung = threading.Event()
        threading.Thread(target=self._accept, name="netproxy", daemon=True).start()

    def url(self, dbname: str, user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    # -- faults --------------------------------------------------------------------

    def cut_all(self) -> int:
        """Close every open connection at once; returns how many."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for p in pairs:
            p.close()
        return len(pairs)

    def drop_answer_after(self, marker: bytes) -> None:
        """On the next connection whose client sends a message containing
        ``marker``: let the message after it (e.g. the COMMIT of that
        transaction) reach the server, then cut the connection before the
        server's answer gets back."""
        self.trap_sprung.clear()
        self._trap = (marker, False)

    def drop_answer_to(self, marker: bytes) -> None:
        """The next client message containing ``marker`` reaches the server
        (an autocommitted statement runs); the connection is cut before the
        answer gets back."""
        self.trap_sprung.clear()
        self._trap = (marker, True)

    # -- plumbing --------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.refusing.is_set():
                with contextlib.suppress(OSError):
                    client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                with contextlib.suppress(OSError):
                    client.close()
                continue
            pair = _Pair(client, upstream)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump_up, args=(pair,), daemon=True).start()
            threading.Thread(target=self._pump_down, args=(pair,), daemon=True).start()

    def _pump_up(self, pair: _Pair) -> None:
        try:
            while True:
                data = pair.client.recv(65536)
                if not data:
                    break
                if pair.armed and not pair.blackhole:
                    self._spring(pair)
                trap = self._trap
                if trap is not None and trap[0] in data:
                    self._trap = None
                    if trap[1]:
                        self._spring(pair)
                    else:
                        pair.armed = True
                pair.upstream.sendall(data)
        except OSError:
            pass
        self._forget(pair)

    def _spring(self, pair: _Pair) -> None:
        """From now on the server's answers on this connection go nowhere;
        what the client still sends in the next 0.3 s (the rest of the
        statement) reaches the server, which runs it; then the line is cut."""
        pair.blackhole = True

        def cut() -> None:
            time.sleep(0.3)
            self._forget(pair)
            self.trap_sprung.set()

        threading.Thread(target=cut, daemon=True).start()

    def _pump_down(self, pair: _Pair) -> None:
        try:
            while True:
                data = pair.upstream.recv(65536)
                if not data:
                    break
                if pair.blackhole:
                    continue
                pair.client.sendall(data)
        except OSError:
            pass
        self._forget(pair)

    def _forget(self, pair: _Pair) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        pair.close()

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self.listener.close()
        self.cut_all()
