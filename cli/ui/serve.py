"""Run the dashboard under uvicorn on a socket bound here, so a port in use
is one clear line and ``--port 0`` can say which port it got."""

from __future__ import annotations

import contextlib
import signal
import socket
import sys
from collections.abc import Iterator
from typing import Any

from .. import errors


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise errors.CliError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(host: str, port: int, *, read_only: bool, token: str | None) -> int:
    import uvicorn
    import wf

    status = wf.schema_status()  # the database must be there (exit 5), and says its URL
    from .app import create_app

    app = create_app(read_only=read_only, token=token, database=status.url)
    sock = _bind(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/"
    extra = " (read-only)" if read_only else ""
    sys.stdout.write(f"wf ui: serving {url} for {status.url}{extra}; Ctrl-C stops it\n")
    if token:
        sys.stdout.write(f"open {url}?token={token}\n")
    sys.stdout.flush()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = _Server(config)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    sys.stdout.write("wf ui: stopped\n")
    return errors.OK


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, stopping on SIGINT or SIGTERM as a finished
        command (exit 0) instead of re-raising the signal once it is done;
        a second signal stops it at once."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            def stop(_sig: int, _frame: Any) -> None:
                if self.should_exit:
                    self.force_exit = True
                self.should_exit = True

            old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for s, handler in old.items():
                    signal.signal(s, handler)

    return Server


def _Server(config: Any) -> Any:  # noqa: N802 - a class made on demand (uvicorn is imported late)
    return _server_class()(config)
