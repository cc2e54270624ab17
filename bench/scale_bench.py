"""Scale-out: queue throughput with 1, 2 and 4 ``wf worker`` processes on one
Postgres, directly and through PgBouncer, and the commits per second the
server reached during each drain.

Each configuration gets a fresh database and the queue benchmark's drain
(bench.queue_bench: N one-step workflows staged, moved to the served queue by
one UPDATE, timed until none is left). Commits: the database's
``pg_stat_database.xact_commit`` delta over the drain, less the bench's own
polls and the workers' idle rate (see ``queue_bench._drain``).

PgBouncer: Debian's ``/usr/sbin/pgbouncer`` (``apt-get install pgbouncer``),
started here on a free port with a config in a temporary directory
(``pool_mode = transaction``, ``auth_type = trust``, every database name
forwarded to the Postgres of ``--pg``) and stopped at the end. Its workers run
in wf's pooler mode: ``WF_DATABASE_URL`` the PgBouncer URL,
``WF_POOLER=transaction`` (no server-side prepared statements) and
``WF_LISTEN_URL`` the direct URL (LISTEN does not survive transaction
pooling). Without pgbouncer its rows say so; nothing fails."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import log, psycopg_url, wait_until

PGBOUNCER = "/usr/sbin/pgbouncer"
POOL_SIZE = 20  # server connections per database (PgBouncer's default_pool_size)
WORKER_COUNTS = (1, 2, 4)


def pgbouncer_path() -> str | None:
    if os.access(PGBOUNCER, os.X_OK):
        return PGBOUNCER
    return shutil.which("pgbouncer")


def ensure_pgbouncer() -> str | None:
    """The pgbouncer executable, installing Debian's package first when it is
    missing and this process may (root, apt-get present); None without it."""
    exe = pgbouncer_path()
    if exe is not None or os.geteuid() != 0 or shutil.which("apt-get") is None:
        return exe
    log("scale: pgbouncer missing: apt-get install -y pgbouncer")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "pgbouncer"],
            env=env,
            capture_output=True,
            timeout=600,
        )
    except (OSError, subprocess.SubprocessError) as e:
        log(f"scale: apt-get failed: {e}")
    return pgbouncer_path()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _with_netloc(url: str, host: str, port: int) -> str:
    parts = urlsplit(url)
    user = parts.username or "postgres"
    netloc = f"{user}@{host}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _unprivileged_user() -> str:
    import pwd

    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            pass
    raise RuntimeError("running as root and there is neither a postgres nor a nobody user")


class PgBouncer:
    """A PgBouncer in transaction-pooling mode in front of the Postgres of
    ``admin_url``, on a free port of 127.0.0.1; ``url(direct)`` is the same
    database through it. A context manager: stopped (SIGTERM) on exit."""

    def __init__(self, admin_url: str, pool_size: int = POOL_SIZE) -> None:
        exe = pgbouncer_path()
        if exe is None:
            raise FileNotFoundError("pgbouncer not installed")
        parts = urlsplit(psycopg_url(admin_url))
        self.user = parts.username or "postgres"
        self.pool_size = pool_size
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="wf-bench-pgbouncer-"))
        ini = self.dir / "pgbouncer.ini"
        users = self.dir / "userlist.txt"
        users.write_text(f'"{self.user}" ""\n')
        lines = [
            "[databases]",
            f"* = host={parts.hostname or '127.0.0.1'} port={parts.port or 5432}",
            "[pgbouncer]",
            "listen_addr = 127.0.0.1",
            f"listen_port = {self.port}",
            "unix_socket_dir =",
            "auth_type = trust",
            f"auth_file = {users}",
            "pool_mode = transaction",
            f"default_pool_size = {pool_size}",
            "max_client_conn = 1000",
            "ignore_startup_parameters = extra_float_digits",
            f"admin_users = {self.user}",
            "log_connections = 0",
            "log_disconnections = 0",
        ]
        if os.geteuid() == 0:  # it refuses to run as root: drop to another user
            lines.append(f"user = {_unprivileged_user()}")
            self.dir.chmod(0o755)
        ini.write_text("\n".join(lines) + "\n")
        for f in (ini, users):
            f.chmod(0o644)
        self.log = open(self.dir / "pgbouncer.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [exe, str(ini)], stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir
        )
        try:
            wait_until(self._accepts, 15, 0.05, "pgbouncer to listen")
        except Exception:
            self.stop()
            raise

    def _accepts(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"pgbouncer exited (code {self.proc.returncode}): {self.tail()}")
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
            return True
        except OSError:
            return False

    def tail(self) -> str:
        try:
            return (self.dir / "pgbouncer.log").read_text(errors="replace")[-1500:].strip()
        except OSError:
            return ""

    def url(self, direct_url: str) -> str:
        return _with_netloc(direct_url, "127.0.0.1", self.port)

    def drop_server_connections(self, direct_url: str) -> None:
        """Close PgBouncer's server connections to that database (``KILL``,
        then ``RESUME``), so their backends exit and publish their statistics."""
        import psycopg

        db = urlsplit(direct_url).path.lstrip("/")
        admin = _with_netloc(psycopg_url(direct_url), "127.0.0.1", self.port)
        admin = urlunsplit(urlsplit(admin)._replace(path="/pgbouncer"))
        with psycopg.connect(admin, autocommit=True) as conn:  # simple protocol only
            for cmd in (f"KILL {db}", f"RESUME {db}"):
                conn.pgconn.exec_(cmd.encode())

    def version(self) -> str:
        exe = pgbouncer_path() or PGBOUNCER
        out = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
        return out.splitlines()[0].strip() if out else "?"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # immediate shutdown
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgBouncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run(
    fresh: Callable[[str], str],
    admin_url: str,
    n: int,
    reps: int,
    workers: Sequence[int] = WORKER_COUNTS,
    pgbouncer: bool = True,
) -> dict[str, Any]:
    """``fresh(suffix)`` creates a database and returns its URL. The result:
    ``{"direct": {"1": {...}, ...}, "pgbouncer": {...} or {"skipped": why}}``."""
    from bench import queue_bench

    out: dict[str, Any] = {"n": n, "workers": list(workers), "direct": {}, "pgbouncer": {}}
    for w in workers:
        log(f"scale: {w} worker(s), Postgres direct")
        try:
            out["direct"][str(w)] = queue_bench.run_wf(
                fresh(f"scale_{w}"), n, reps, workers=w, commits=True
            )
        except Exception as e:
            traceback.print_exc()
            out["direct"][str(w)] = {"error": f"{type(e).__name__}: {e}"}
    if not pgbouncer:
        out["pgbouncer"] = {"skipped": "not measured (--skip pgbouncer)"}
        return out
    if ensure_pgbouncer() is None:
        log("scale: pgbouncer not installed (apt-get install -y pgbouncer): its rows are skipped")
        out["pgbouncer"] = {"skipped": "not measured: pgbouncer not installed"}
        return out
    try:
        bouncer = PgBouncer(admin_url)
    except Exception as e:
        traceback.print_exc()
        out["pgbouncer"] = {"skipped": f"not measured: pgbouncer did not start ({e})"}
        return out
    with bouncer:
        out["pgbouncer_info"] = {
            "version": bouncer.version(),
            "pool_mode": "transaction",
            "default_pool_size": bouncer.pool_size,
        }
        for w in workers:
            log(f"scale: {w} worker(s) through PgBouncer (transaction pooling)")
            direct = fresh(f"scale_pgb_{w}")
            env = {
                "WF_DATABASE_URL": bouncer.url(direct),
                "WF_POOLER": "transaction",
                "WF_LISTEN_URL": direct,
            }
            try:
                out["pgbouncer"][str(w)] = queue_bench.run_wf(
                    direct,
                    n,
                    reps,
                    workers=w,
                    worker_url=bouncer.url(direct),
                    worker_env=env,
                    commits=True,
                    after_stop=lambda d=direct: bouncer.drop_server_connections(d),
                )
            except Exception as e:
                traceback.print_exc()
                tail = bouncer.tail()
                if tail:
                    log("pgbouncer log: " + tail[-600:])
                out["pgbouncer"][str(w)] = {"error": f"{type(e).__name__}: {e}"}
                rest = [str(x) for x in workers if x > w]
                for r in rest:
                    out["pgbouncer"][r] = {"error": f"not tried after the failure with {w}"}
                break
    return out
