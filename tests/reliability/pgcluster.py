"""A private, throwaway Postgres cluster for the tests that stop and start
the database (connection loss, chaos). Never the shared server on 5432.

``initdb`` and ``pg_ctl`` come from the newest ``/usr/lib/postgresql/*/bin``
(or WF_TEST_PG_BINDIR, or PATH). initdb refuses to run as root, so as root
they run as the ``postgres`` user (``runuser``) in a temporary directory
chowned to it."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def bindir() -> str | None:
    d = os.environ.get("WF_TEST_PG_BINDIR")
    if d:
        return d

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", path))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return str(Path(initdb).parent) if initdb else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgCluster:
    """A cluster in a temp dir on a free port; ``url`` is a trust login as
    ``postgres`` (or, with ``password``, host logins need it)."""

    def __init__(self, password: str | None = None) -> None:
        bd = bindir()
        if bd is None or not Path(bd, "initdb").exists():
            raise RuntimeError("no initdb/pg_ctl found (install postgresql)")
        self.bindir = bd
        self.password = password
        self.as_root = os.geteuid() == 0
        self.user = "postgres" if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.tmp = Path(tempfile.mkdtemp(prefix="wf-pgtest-"))
        self.data = self.tmp / "data"
        self.log = self.tmp / "server.log"
        self.port = free_port()
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o755)
        self._init()

    # -- running pg binaries -------------------------------------------------------------

    def _cmd(self, tool: str, *args: str) -> list[str]:
        exe = str(Path(self.bindir, tool))
        if self.as_root:
            return ["runuser", "-u", "postgres", "--", exe, *args]
        return [exe, *args]

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            self._cmd(tool, *args), capture_output=True, text=True, timeout=timeout, cwd=self.tmp
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}\n"
                + self.server_log_tail()
            )

    def _init(self) -> None:
        args = ["-D", str(self.data), "-U", "postgres", "--auth-local=trust", "-E", "UTF8"]
        args.append("--no-sync")
        if self.password is None:
            args.append("--auth-host=trust")
        else:
            args.append("--auth-host=scram-sha-256")
        self._run("initdb", *args)
        conf = self.data / "postgresql.conf"
        with open(conf, "a") as f:
            f.write(
                f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.tmp}'\n"
                "max_connections = 300\nshared_buffers = 32MB\n"
                "logging_collector = off\n"
            )
        self.start()
        if self.password is not None:
            # set over the local socket (trust); host logins now need it
            self._run(
                "psql",
                "-h",
                str(self.tmp),
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                f"ALTER ROLE postgres PASSWORD '{self.password}'",
            )

    # -- control -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        cred = "postgres" if self.password is None else f"postgres:{self.password}"
        return f"postgresql://{cred}@127.0.0.1:{self.port}/postgres"

    def database_url(self, dbname: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + dbname

    def create_database(self, dbname: str) -> str:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return self.database_url(dbname)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.wait_ready()

    def stop(self, mode: str = "immediate") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        proc = subprocess.run(
            self._cmd("pg_ctl", "-D", str(self.data), "status"), capture_output=True, text=True
        )
        return proc.returncode == 0

    def wait_ready(self, timeout: float = 60) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.admin_conninfo(), connect_timeout=3).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def admin_conninfo(self, dbname: str = "postgres") -> str:
        """A trust login over the cluster's own socket directory."""
        return f"host={self.tmp} port={self.port} user=postgres dbname={dbname}"

    def server_log_tail(self, n: int = 30) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "--- server log\n" + "\n".join(lines[-n:])

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            if self.is_running():
                self.stop("immediate")
        shutil.rmtree(self.tmp, ignore_errors=True)


@contextlib.contextmanager
def pg_cluster(password: str | None = None) -> Iterator[PgCluster]:
    cluster = PgCluster(password)
    try:
        yield cluster
    finally:
        cluster.destroy()


def available() -> str | None:
    """None when a private cluster can be made here, else why not."""
    bd = bindir()
    if bd is None or not Path(bd, "initdb").exists():
        return "no initdb/pg_ctl (install postgresql)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres user to run initdb as"
        if shutil.which("runuser") is None:
            return "running as root without runuser"
    return None
