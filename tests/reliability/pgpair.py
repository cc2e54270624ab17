"""A private primary + streaming standby pair for the failover tests (issue
18), from Debian's Postgres binaries (``initdb``, ``pg_basebackup -R``,
``pg_ctl promote``), on free ports under one temp dir. Never the shared server.

Replication is synchronous (``synchronous_standby_names = '*'``): a commit
the client saw acknowledged is on both nodes, so promoting the standby loses
nothing acknowledged. While a node is alone (between a promotion and the old
primary's return) the survivor commits alone, as an operator or Patroni
would let it (else every commit would wait for a standby that is not there).

- ``PgPair()`` starts node ``a`` (primary) and ``b`` (its standby).
- ``url(db)``: ``postgresql://postgres@127.0.0.1:Pa,127.0.0.1:Pb/db?target_session_attrs=read-write``.
- ``crash(node)``: SIGKILL of its postmaster (the pid in postmaster.pid),
  as a machine would die; its orphaned backends end by themselves (they
  notice the postmaster is gone), we wait for them.
- ``promote(node)``; ``rejoin(node)``: a fresh ``pg_basebackup -R`` from the
  current primary into the dead node's dir, started as its standby, the pair
  synchronous again.
- ``available()``: None, or the one line saying which Debian package is missing.

As root the binaries run as the ``postgres`` user (initdb refuses root),
like tests/reliability/pgcluster.py."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.reliability.pgcluster import available as cluster_available
from tests.reliability.pgcluster import bindir, free_port

TOOLS = ("initdb", "pg_ctl", "pg_basebackup", "postgres")


def available() -> str | None:
    """None when a pair can be built here, else why not (one line)."""
    why = cluster_available()
    if why is not None:
        return why
    bd = bindir()
    assert bd is not None
    missing = [t for t in TOOLS if not Path(bd, t).exists()]
    if missing:
        return f"no {', '.join(missing)} in {bd} (install the Debian package postgresql)"
    return None


class Node:
    """One Postgres server of the pair: a data dir and a port."""

    def __init__(self, pair: PgPair, name: str) -> None:
        self.pair = pair
        self.name = name
        self.port = free_port()
        self.data = pair.tmp / f"data-{name}"
        self.log = pair.tmp / f"{name}.log"
        # SIGKILLed: its postmaster.pid is stale (and the pid may linger as
        # a zombie that pg_ctl takes for a running server)
        self.crashed = False

    def __repr__(self) -> str:
        return f"Node({self.name}:{self.port})"

    @property
    def admin(self) -> str:
        """A trust login over the pair's socket directory."""
        return f"host={self.pair.tmp} port={self.port} user=postgres dbname=postgres"

    def start(self) -> None:
        self.pair.run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start"
        )

    def stop(self) -> None:
        self.pair.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")

    def is_running(self) -> bool:
        if self.crashed or not self.data.exists():
            return False
        proc = subprocess.run(
            self.pair.cmd("pg_ctl", "-D", str(self.data), "status"), capture_output=True
        )
        return proc.returncode == 0

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def sql(self, statement: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.admin, autocommit=True, connect_timeout=5) as conn:
            cur = conn.execute(statement)
            return list(cur.fetchall()) if cur.description is not None else []

    def in_recovery(self) -> bool:
        return bool(self.sql("SELECT pg_is_in_recovery()")[0][0])

    def log_tail(self, n: int = 25) -> str:
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.name} log\n" + "\n".join(lines[-n:])


class PgPair:
    def __init__(self) -> None:
        why = available()
        if why is not None:
            raise RuntimeError(why)
        bd = bindir()
        assert bd is not None
        self.bindir = bd
        self.as_root = os.geteuid() == 0
        self.tmp = Path(tempfile.mkdtemp(prefix="wf-pgpair-"))
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)
        os.chmod(self.tmp, 0o755)
        self.a = Node(self, "a")
        self.b = Node(self, "b")
        self.primary = self.a
        self.standby: Node | None = None
        try:
            self._init_primary(self.a)
            self._make_standby(self.b, self.a)
        except BaseException:
            self.destroy()
            raise

    # -- running the binaries --------------------------------------------------------------

    def cmd(self, tool: str, *args: str) -> list[str]:
        exe = str(Path(self.bindir, tool))
        if self.as_root:
            return ["runuser", "-u", "postgres", "--", exe, *args]
        return [exe, *args]

    def run(self, tool: str, *args: str, timeout: float = 120) -> None:
        proc = subprocess.run(
            self.cmd(tool, *args), capture_output=True, text=True, timeout=timeout, cwd=self.tmp
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n"
                f"{proc.stderr}\n{self.logs()}"
            )

    def logs(self) -> str:
        return "\n".join(n.log_tail() for n in (self.a, self.b))

    # -- building --------------------------------------------------------------------------

    def _conf(self, node: Node) -> str:
        return (
            f"\nport = {node.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.tmp}'\n"
            "max_connections = 200\nshared_buffers = 32MB\nlogging_collector = off\n"
            "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n"
            # pg_rewind could use it; a rejoin here takes a fresh base backup
            "wal_log_hints = on\n"
            "synchronous_standby_names = '*'\nsynchronous_commit = on\n"
            # an OS that does not crash keeps what was written: no fsync wait
            # (a SIGKILL loses no written WAL)
            "fsync = off\nfull_page_writes = off\n"
            "wal_receiver_status_interval = 1s\n"
        )

    def _init_primary(self, node: Node) -> None:
        self.run(
            "initdb",
            "-D",
            str(node.data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=trust",  # its pg_hba.conf also lets 127.0.0.1 replicate
            "-E",
            "UTF8",
            "--no-sync",
        )
        with open(node.data / "postgresql.conf", "a") as f:
            f.write(self._conf(node))
        node.start()
        # no standby yet: commit alone until one is streaming
        self._set_sync(node, "")

    def _make_standby(self, node: Node, primary: Node) -> None:
        """A fresh base backup of ``primary`` in ``node``'s dir, started as its
        standby; then replication is made synchronous again."""
        if node.data.exists():
            self._rm_data(node)
        self.run(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            "postgres",
            "-D",
            str(node.data),
            "-R",  # standby.signal and primary_conninfo
            "-X",
            "stream",
            "--no-sync",
            "-c",
            "fast",
        )
        with open(node.data / "postgresql.conf", "a") as f:
            f.write(f"\nport = {node.port}\n")
        # a crashed postmaster's socket lock names its pid, which may linger
        # as a zombie: Postgres would take it for a live server on the port
        for stale in (f".s.PGSQL.{node.port}.lock", f".s.PGSQL.{node.port}"):
            with contextlib.suppress(FileNotFoundError):
                (self.tmp / stale).unlink()
        node.start()
        node.crashed = False
        self.standby = node
        self._wait(lambda: node.in_recovery(), f"{node} in recovery")
        self._set_sync(primary, "'*'")
        self._wait(
            lambda: (
                primary.sql("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'")[
                    0
                ][0]
                == 1
            ),
            f"{node} streaming synchronously from {primary}",
        )

    def _rm_data(self, node: Node) -> None:
        shutil.rmtree(node.data, ignore_errors=True)

    @staticmethod
    def _set_sync(node: Node, names: str) -> None:
        node.sql(f"ALTER SYSTEM SET synchronous_standby_names = {names or repr('')}")
        node.sql("SELECT pg_reload_conf()")

    def _wait(self, ready: object, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                if ready():  # type: ignore[operator]
                    return
            except Exception as e:  # noqa: BLE001 - not up yet
                last = e
            time.sleep(0.1)
        raise RuntimeError(f"timed out waiting for {what} ({last})\n{self.logs()}")

    # -- the URLs --------------------------------------------------------------------------

    def url(self, dbname: str, first: Node | None = None) -> str:
        """Both nodes, ``first`` (default a) first, writable node wanted."""
        order = [self.a, self.b] if first in (None, self.a) else [self.b, self.a]
        hosts = ",".join(f"127.0.0.1:{n.port}" for n in order)
        return f"postgresql://postgres@{hosts}/{dbname}?target_session_attrs=read-write"

    def node_url(self, node: Node, dbname: str) -> str:
        """One node only."""
        return f"postgresql://postgres@127.0.0.1:{node.port}/{dbname}"

    def create_database(self, dbname: str) -> None:
        self.primary.sql(f'CREATE DATABASE "{dbname}"')

    # -- failing over ----------------------------------------------------------------------

    def crash(self, node: Node) -> None:
        """SIGKILL the node's postmaster; wait until every process it had is gone."""
        pid = node.postmaster_pid()
        children = _children(pid)
        os.kill(pid, signal.SIGKILL)
        node.crashed = True
        deadline = time.monotonic() + 30
        for child in [pid, *children]:
            while _alive(child):
                if time.monotonic() > deadline:  # an orphan that does not notice
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                time.sleep(0.05)
        if self.standby is node:
            self.standby = None

    def promote(self, node: Node) -> None:
        """Make ``node`` the primary; it commits alone until a standby joins."""
        self.run("pg_ctl", "-D", str(node.data), "-w", "-t", "60", "promote")
        self._wait(lambda: not node.in_recovery(), f"{node} promoted")
        self._set_sync(node, "")
        self.primary = node
        if self.standby is node:
            self.standby = None

    def rejoin(self, node: Node) -> None:
        """Bring a dead (or diverged) node back as the standby of the primary."""
        if node.is_running():
            node.stop()
        self._make_standby(node, self.primary)

    def destroy(self) -> None:
        for node in (self.a, self.b):
            with contextlib.suppress(Exception):
                if node.is_running():
                    node.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(OSError):
            out += [int(x) for x in task.read_text().split()]
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@contextlib.contextmanager
def pg_pair() -> Iterator[PgPair]:
    pair = PgPair()
    try:
        yield pair
    finally:
        pair.destroy()
