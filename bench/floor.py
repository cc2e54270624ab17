"""The floor: what one durable write costs without any library.

Postgres: psycopg 3, autocommit, ``INSERT ... ON CONFLICT DO NOTHING`` of a
fresh key (so each op is one round trip and one WAL flush at commit; the
statement is prepared on the server from the first call).

SQLite: the stdlib ``sqlite3``, WAL journal with ``synchronous=NORMAL`` (as wf
configures its SQLite connections), ``BEGIN; INSERT; COMMIT`` per op. In that
mode a commit does not wait for fsync (durable against a process crash, not
against power loss), which is why it is so much cheaper than Postgres's.

The concurrent floor (``PgConcurrentFloor``, ``SqliteConcurrentFloor``): C
connections, each in its own Python thread, doing the same op in a loop; the
figure is commits per second over all of them, from the moment the C threads
are released together until the last one is done. SQLite's threads open their
transactions with ``BEGIN IMMEDIATE`` and a 30 s busy timeout, as wf does."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import psycopg_url


class PgFloor:
    SQL = "INSERT INTO bench_floor (k, v) VALUES (%s, %s) ON CONFLICT DO NOTHING"

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(psycopg_url(url), autocommit=True)
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (k TEXT PRIMARY KEY, v TEXT)")
        self.prefix = uuid.uuid4().hex[:8]
        self.i = 0
        self.sample(20)  # warm: connection, plan, prepared statement

    def sample(self, n: int) -> list[float]:
        """Seconds per op, one value per op."""
        out = []
        conn, sql = self.conn, self.SQL
        for _ in range(n):
            self.i += 1
            key = f"{self.prefix}-{self.i}"
            t = time.perf_counter()
            conn.execute(sql, (key, "x"), prepare=True)
            out.append(time.perf_counter() - t)
        return out

    def close(self) -> None:
        self.conn.close()


class SqliteFloor:
    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS bench_floor (k TEXT PRIMARY KEY, v TEXT)")
        self.prefix = uuid.uuid4().hex[:8]
        self.i = 0
        self.sample(20)

    def sample(self, n: int) -> list[float]:
        out = []
        conn = self.conn
        for _ in range(n):
            self.i += 1
            key = f"{self.prefix}-{self.i}"
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.execute(
                "INSERT INTO bench_floor (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING", (key, "x")
            )
            conn.execute("COMMIT")
            out.append(time.perf_counter() - t)
        return out

    def close(self) -> None:
        self.conn.close()


class _Concurrent:
    """C persistent threads, each with its own connection and op; ``sample``
    releases them together for ``n`` ops each and returns commits per second."""

    def __init__(self, conns: list[Any], op: Callable[[Any, str], None]) -> None:
        self.conns = conns
        self.op = op
        self.prefix = uuid.uuid4().hex[:8]
        self.n = 0
        self.round = 0
        self.stopping = False
        self.errors: list[BaseException] = []
        c = len(conns)
        self.go = threading.Barrier(c + 1)
        self.done = threading.Barrier(c + 1)
        self.threads = [
            threading.Thread(target=self._loop, args=(k,), name=f"floor-{k}", daemon=True)
            for k in range(c)
        ]
        for t in self.threads:
            t.start()
        self.sample(5)  # warm: connections, plans, prepared statements

    def _loop(self, k: int) -> None:
        conn, op = self.conns[k], self.op
        while True:
            self.go.wait()
            if self.stopping:
                return
            base = f"{self.prefix}-{self.round}-{k}-"
            try:
                for i in range(self.n):
                    op(conn, base + str(i))
            except BaseException as e:  # reported by sample()
                self.errors.append(e)
            self.done.wait()

    def sample(self, n: int) -> float:
        """Commits per second of ``n`` ops on each of the C connections at once."""
        self.n = n
        self.round += 1
        t = time.perf_counter()
        self.go.wait()
        self.done.wait()
        elapsed = time.perf_counter() - t
        if self.errors:
            raise RuntimeError(f"concurrent floor: {self.errors[0]!r}")
        return len(self.conns) * n / elapsed

    def close(self) -> None:
        self.stopping = True
        try:
            self.go.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        for t in self.threads:
            t.join(10)
        for conn in self.conns:
            conn.close()


class PgConcurrentFloor(_Concurrent):
    def __init__(self, url: str, connections: int) -> None:
        import psycopg

        conns = [psycopg.connect(psycopg_url(url), autocommit=True) for _ in range(connections)]
        conns[0].execute("CREATE TABLE IF NOT EXISTS bench_floor (k TEXT PRIMARY KEY, v TEXT)")
        sql = PgFloor.SQL

        def op(conn: Any, key: str) -> None:
            conn.execute(sql, (key, "x"), prepare=True)

        super().__init__(conns, op)


class SqliteConcurrentFloor(_Concurrent):
    def __init__(self, path: Path, connections: int) -> None:
        conns = []
        for _ in range(connections):
            conn = sqlite3.connect(
                str(path), isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conns.append(conn)
        conns[0].execute("CREATE TABLE IF NOT EXISTS bench_floor (k TEXT PRIMARY KEY, v TEXT)")
        sql = "INSERT INTO bench_floor (k, v) VALUES (?, ?) ON CONFLICT DO NOTHING"

        def op(conn: Any, key: str) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(sql, (key, "x"))
            conn.execute("COMMIT")

        super().__init__(conns, op)
