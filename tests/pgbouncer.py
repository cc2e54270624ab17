"""A private PgBouncer for the tests (issue 14, issue 18): Debian's
``pgbouncer`` started on a free port in a temp dir, in front of the test
Postgres (WF_TEST_PG_URL, else 127.0.0.1:5432), never a shared one.

- ``find_pgbouncer()`` finds the executable (/usr/sbin/pgbouncer, or PATH);
  ``ensure_pgbouncer()`` installs it with ``apt-get install -y pgbouncer``
  when it is missing and we are root with apt-get (as in CI), else says why
  it cannot be had (the one reason a test skips).
- ``PgBouncer(server_url)`` writes a config (``pool_mode = transaction`` by
  default, ``auth_type = trust`` with an auth_file naming the URL's user, a
  ``* = host=... port=...`` wildcard so every new test database is served,
  the admin console open to that user) and starts it. pgbouncer refuses to
  run as root: as root it runs as the ``postgres`` OS user (else ``nobody``),
  in a temp dir chowned to that user, as a direct child (its pid is ours to
  signal). ``url(db)`` goes through it, ``direct_url(db)`` does not;
  ``admin("RECONNECT")`` runs a command on its console; ``stop()``,
  ``start()``, ``restart()``; ``close()`` stops it and removes the dir.
- The ``pooled`` fixture (import ``pooled_fixture`` into a test module):
  a fresh database (conftest's ``pg_database``, created and dropped on the
  direct URL) behind a fresh PgBouncer; yields a ``Pooled`` with both URLs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import pytest

from tests.helpers import skip_unless_ci

DEBIAN_PATH = "/usr/sbin/pgbouncer"

_install_lock = threading.Lock()
_install_problem: list[str | None] = []  # the cached outcome of one install attempt


def find_pgbouncer() -> str | None:
    """The pgbouncer executable, or None."""
    if os.access(DEBIAN_PATH, os.X_OK):
        return DEBIAN_PATH
    return shutil.which("pgbouncer")


def ensure_pgbouncer() -> tuple[str | None, str | None]:
    """``(path, None)``, installing Debian's package first when it is missing
    and this process may (root, apt-get present); else ``(None, why)``."""
    exe = find_pgbouncer()
    if exe is not None:
        return exe, None
    with _install_lock:
        if not _install_problem:
            _install_problem.append(_install())
        problem = _install_problem[0]
    exe = find_pgbouncer()
    if exe is not None:
        return exe, None
    return None, problem or "pgbouncer is still missing after apt-get install"


def _install() -> str | None:
    if shutil.which("apt-get") is None:
        return "pgbouncer is not installed and there is no apt-get to install it"
    if os.geteuid() != 0:
        return "pgbouncer is not installed (run 'apt-get install -y pgbouncer' as root)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    cmd = ["apt-get", "install", "-y", "-q", "pgbouncer"]
    last = ""
    for attempt in range(2):
        if attempt == 1:  # stale package lists: refresh once, then retry
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        if proc.returncode == 0:
            return None
        last = (proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"])[-1]
    return f"pgbouncer is not installed and 'apt-get install -y pgbouncer' failed: {last}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def _run_as() -> pwd.struct_passwd | None:
    """The OS user pgbouncer runs as (None: as ourselves, we are not root)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise RuntimeError("running as root and there is neither a postgres nor a nobody user")


class PgBouncer:
    """One pgbouncer process in front of the Postgres of ``server_url``."""

    def __init__(
        self,
        server_url: str,
        *,
        pool_mode: str = "transaction",
        default_pool_size: int = 4,
        extra: dict[str, str] | None = None,
    ) -> None:
        exe, why = ensure_pgbouncer()
        if exe is None:
            raise RuntimeError(why)
        self.exe = exe
        server = urlsplit(server_url)
        self.server_host = server.hostname or "127.0.0.1"
        self.server_port = server.port or 5432
        self.user = unquote(server.username or "postgres")
        self.password = unquote(server.password) if server.password else None
        self.server_url = server_url
        self.pool_mode = pool_mode
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="wf-pgbouncer-"))
        self.ini = self.tmp / "pgbouncer.ini"
        self.log = self.tmp / "pgbouncer.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as = _run_as()
        settings = {
            "listen_addr": "127.0.0.1",
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(self.tmp / "userlist.txt"),
            "admin_users": self.user,
            "stats_users": self.user,
            "pool_mode": pool_mode,
            "default_pool_size": str(default_pool_size),
            "min_pool_size": "0",
            "reserve_pool_size": "0",
            "max_client_conn": "2000",
            "max_db_connections": "0",
            # psycopg/SQLAlchemy may send these; pgbouncer rejects unknown ones
            "ignore_startup_parameters": "extra_float_digits",
            "server_lifetime": "3600",
            "server_idle_timeout": "60",
            "logfile": str(self.log),
            "pidfile": str(self.tmp / "pgbouncer.pid"),
            "log_connections": "0",
            "log_disconnections": "0",
            "log_pooler_errors": "1",
        }
        settings.update(extra or {})
        lines = ["[databases]", f"* = host={self.server_host} port={self.server_port}", ""]
        lines.append("[pgbouncer]")
        lines += [f"{k} = {v}" for k, v in settings.items()]
        self.ini.write_text("\n".join(lines) + "\n")
        secret = (self.password or "").replace('"', '""')
        (self.tmp / "userlist.txt").write_text(f'"{self.user}" "{secret}"\n')
        os.chmod(self.tmp / "userlist.txt", 0o600)
        if self._as is not None:
            for p in (self.tmp, self.ini, self.tmp / "userlist.txt"):
                os.chown(p, self._as.pw_uid, self._as.pw_gid)
        try:
            self.start()
        except BaseException:
            self.close()
            raise

    # -- URLs ----------------------------------------------------------------------------

    def url(self, dbname: str) -> str:
        """``dbname`` through the pooler."""
        cred = self.user if self.password is None else f"{self.user}:{self.password}"
        return f"postgresql://{cred}@127.0.0.1:{self.port}/{dbname}"

    def direct_url(self, dbname: str) -> str:
        """``dbname`` on the Postgres itself, around the pooler."""
        return with_database(self.server_url, dbname)

    @property
    def admin_url(self) -> str:
        return self.url("pgbouncer")

    # -- process -------------------------------------------------------------------------

    def start(self, timeout: float = 30) -> None:
        if self.proc is not None and self.proc.poll() is None:
            return
        kwargs: dict[str, Any] = {}
        if self._as is not None:
            kwargs = {"user": self._as.pw_uid, "group": self._as.pw_gid, "extra_groups": []}
        with open(self.tmp / "stdout.log", "ab") as out:
            self.proc = subprocess.Popen(
                [self.exe, str(self.ini)],
                cwd=self.tmp,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                **kwargs,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"pgbouncer exited with {self.proc.returncode} at start\n{self.log_tail()}"
                )
            try:
                self.admin("SHOW VERSION")
                return
            except Exception as e:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"pgbouncer did not accept connections ({e})\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> None:
        """SIGTERM: immediate shutdown (every client and server connection
        dropped); SIGINT: safe shutdown (waits for the clients' transactions);
        SIGKILL: a crash."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, sig)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def restart(self, sig: int = signal.SIGTERM, down_for: float = 0.0) -> None:
        """Stop (``sig``), stay down ``down_for`` seconds, start again on the same port."""
        self.stop(sig)
        if down_for:
            time.sleep(down_for)
        self.start()

    def is_running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        self.stop(signal.SIGTERM)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- the admin console ---------------------------------------------------------------

    def admin(self, command: str) -> list[dict[str, Any]]:
        """Run one command on the admin console (simple query protocol, which
        is all it speaks); rows as dicts (none for RECONNECT, KILL, ...)."""
        import psycopg
        from psycopg.rows import dict_row

        with psycopg.connect(
            self.admin_url,
            autocommit=True,
            connect_timeout=5,
            cursor_factory=psycopg.ClientCursor,
            row_factory=dict_row,
        ) as conn:
            cur = conn.execute(command)
            return list(cur.fetchall()) if cur.description is not None else []

    def pools(self, dbname: str) -> list[dict[str, Any]]:
        return [r for r in self.admin("SHOW POOLS") if r.get("database") == dbname]

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            lines = []
        with contextlib.suppress(OSError):
            lines += (self.tmp / "stdout.log").read_text(errors="replace").splitlines()
        return "--- pgbouncer log\n" + "\n".join(lines[-n:])


def tcp_peers(pid: int) -> list[tuple[str, int]]:
    """The (address, port) each established IPv4 TCP connection of process
    ``pid`` goes to (from /proc: which of its sockets are connections where)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
    peers = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            cols = line.split()
            remote, state, inode = cols[2], cols[3], cols[9]
            if state == "01" and inode in inodes:  # ESTABLISHED
                addr_hex, port_hex = remote.split(":")
                addr = ".".join(str(b) for b in reversed(bytes.fromhex(addr_hex)))
                peers.append((addr, int(port_hex, 16)))
    return peers


@contextlib.contextmanager
def pgbouncer(server_url: str, **kwargs: Any) -> Iterator[PgBouncer]:
    bouncer = PgBouncer(server_url, **kwargs)
    try:
        yield bouncer
    finally:
        bouncer.close()


@dataclass
class Pooled:
    """One test's database, behind its own PgBouncer."""

    bouncer: PgBouncer
    dbname: str
    url: str  # through the pooler
    direct: str  # the same database on the Postgres itself

    def env(
        self, *, pooler: bool = True, listen: bool = False, extra: Mapping[str, str] | None = None
    ) -> dict[str, str]:
        """The wf settings of a process that goes through the pooler:
        WF_DATABASE_URL (the pooler), WF_POOLER=transaction unless not
        ``pooler``, WF_LISTEN_URL (the direct URL) with ``listen``."""
        from tests.helpers import child_env

        env = child_env(self.url, extra)
        for var in ("WF_POOLER", "WF_LISTEN_URL"):
            env.pop(var, None)
        if pooler:
            env["WF_POOLER"] = "transaction"
        if listen:
            env["WF_LISTEN_URL"] = self.direct
        return env


@pytest.fixture(name="pooled")
def pooled_fixture(pg_database: str, pg_admin_url: str) -> Iterator[Pooled]:
    """A fresh database behind a fresh PgBouncer (transaction pooling,
    default_pool_size 4); skips with one line only when pgbouncer is missing
    and cannot be installed."""
    exe, why = ensure_pgbouncer()
    if exe is None:
        skip_unless_ci(f"no PgBouncer: {why}")
    dbname = urlsplit(pg_database).path.lstrip("/")
    with pgbouncer(pg_admin_url) as bouncer:
        yield Pooled(bouncer=bouncer, dbname=dbname, url=bouncer.url(dbname), direct=pg_database)
