"""The floor: what one durable write costs without any library.

Postgres: psycopg 3, autocommit, ``INSERT ... ON CONFLICT DO NOTHING`` of a
fresh key (so each op is one round trip and one WAL flush at commit; the
statement is prepared on the server from the first call).

SQLite: the stdlib ``sqlite3``, WAL journal with ``synchronous=NORMAL`` (as wf
configures its SQLite connections), ``BEGIN; INSERT; COMMIT`` per op. In that
mode a commit does not wait for fsync (durable against a process crash, not
against power loss), which is why it is so much cheaper than Postgres's."""

from __future__ import annotations

import sqlite3
import time
import uuid
from pathlib import Path

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
