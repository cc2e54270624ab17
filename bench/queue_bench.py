"""Queue throughput: worker processes (two, unless told) drain N enqueued
one-step workflows.

To time the draining alone (not worker start-up, not enqueueing), the N
workflows are first enqueued on a queue nobody serves (``bench-staging``)
while both workers are up and serving ``bench-drain``; one UPDATE then moves
them all to ``bench-drain``, and the clock runs from that commit until none is
left ENQUEUED or PENDING (polled every 10 ms). Workers: ``wf worker
bench.workloads --queue bench-drain`` (default concurrency: 16 per worker),
or, without the CLI, ``python -m bench.queue_bench worker URL``.

DBOS: the same with two DBOS processes listening to ``bench-drain``
(worker_concurrency 16, polling every wf's poll interval)."""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

from bench.common import (
    PY,
    REPO,
    Agent,
    child_env,
    log,
    parallel,
    sqlite_path,
    summary,
    wait_until,
    wf_command,
)

STAGING = "bench-staging"
DRAIN = "bench-drain"
WORKER_CONCURRENCY = 16


class _Sql:
    """A tiny DB-API helper for either dialect (the driver's own connection);
    ``n`` counts its statements (each one transaction: autocommit)."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
        self.n = 0
        if self.pg:
            import psycopg

            from bench.common import psycopg_url

            self.conn: Any = psycopg.connect(psycopg_url(url), autocommit=True)
        else:
            import sqlite3

            self.conn = sqlite3.connect(str(sqlite_path(url)), isolation_level=None, timeout=30)

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self.pg:
            sql = sql.replace("%s", "?")
        self.n += 1
        cur = self.conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []

    def close(self) -> None:
        self.conn.close()


# -- commits counted by Postgres ---------------------------------------------------------
#
# A backend publishes its statistics at most once a second while it works, and
# 10 s after it goes idle, but at once when it exits. So the count is read when
# every other backend of the database is gone: before a drain, once the
# enqueueing connections are closed; after it, once the workers have stopped
# (and, behind PgBouncer, its server connections were dropped).


def pg_commits(sql: _Sql) -> int:
    """``pg_stat_database.xact_commit`` of the current database."""
    return int(
        sql.q("SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0]
    )


def wait_alone(url: str, timeout: float = 15.0) -> _Sql:
    """A fresh connection, returned once no other client backend is connected
    to its database (all their statistics are published by then)."""
    sql = _Sql(url)
    others = (
        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
    )
    try:
        wait_until(lambda: sql.q(others)[0][0] == 0, timeout, 0.02, "other backends to exit")
    except TimeoutError:
        rows = sql.q(
            "SELECT application_name, state, backend_type, left(query, 60) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        log(f"  (backends stayed connected, the commit count may be short: {rows})")
    return sql


def _drain(
    sql: _Sql,
    table: str,
    queue_col: str,
    n: int,
    timeout: float,
    procs: list[subprocess.Popen[bytes]] | None = None,
    stall: float = 30.0,
) -> float:
    """Move the staged rows to the served queue; seconds until all have ended.
    Fails early when a worker exits or nothing ends for ``stall`` seconds."""
    last = [n + 1, time.monotonic()]
    left = (
        f"SELECT COUNT(*) FROM {table} WHERE {queue_col} = %s AND status IN ('ENQUEUED', 'PENDING')"
    )

    def drained() -> bool:
        k = sql.q(left, (DRAIN,))[0][0]
        now = time.monotonic()
        if k != last[0]:
            last[:] = [k, now]
        elif now - last[1] > stall:
            raise RuntimeError(
                f"the queue stalled: {k} workflows left, none ended for {stall:.0f}s"
            )
        for p in procs or ():
            if p.poll() is not None:
                raise RuntimeError(f"a worker exited (code {p.returncode}) with {k} workflows left")
        return k == 0

    t0 = time.perf_counter()
    sql.q(f"UPDATE {table} SET {queue_col} = %s WHERE {queue_col} = %s", (DRAIN, STAGING))
    wait_until(drained, timeout, 0.01, "the queue to drain")
    return time.perf_counter() - t0


def _check_drained(sql: _Sql, table: str, queue_col: str, n: int) -> None:
    counts = dict(
        sql.q(
            f"SELECT status, COUNT(*) FROM {table} WHERE {queue_col} = %s GROUP BY status", (DRAIN,)
        )
    )
    if counts.get("SUCCESS", 0) != n:
        raise RuntimeError(f"queue drained with statuses {counts}, expected {n} SUCCESS")
    sql.q(f"UPDATE {table} SET {queue_col} = %s WHERE {queue_col} = %s", ("bench-done", DRAIN))


# -- wf ---------------------------------------------------------------------------------


def _start_wf_workers(
    url: str, err: IO[bytes], count: int = 2, env: dict[str, str] | None = None
) -> list[subprocess.Popen[bytes]]:
    cli = wf_command()
    if cli is not None:
        cmd = [
            *cli,
            "worker",
            "bench.workloads",
            "--db",
            url,
            "--queue",
            DRAIN,
            "--log-level",
            "WARNING",
        ]
    else:
        cmd = [PY, "-m", "bench.queue_bench", "worker", url]
    return [
        subprocess.Popen(
            cmd, cwd=REPO, env=child_env(**(env or {})), stdout=subprocess.DEVNULL, stderr=err
        )
        for _ in range(count)
    ]


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _seed(url: str, n: int, rep: int) -> None:
    """``n`` one-step workflows ENQUEUED on the staging queue (nobody serves it)."""
    from wf._core import encode_inputs
    from wf._sysdb import SystemDatabase

    from bench.workloads import one_step_workflow

    sysdb = SystemDatabase(url)
    name = one_step_workflow.wf_spec.name

    def insert(i: int) -> None:
        sysdb.insert_workflow(
            workflow_id=f"q{rep}-{i:06d}",
            status="ENQUEUED",
            name=name,
            inputs=encode_inputs([i], {}),
            executor_id=None,
            queue=STAGING,
        )

    try:
        parallel(insert, n)
    finally:
        sysdb.dispose()


def _wait_up(sql: _Sql, table: str, procs: list[subprocess.Popen[bytes]]) -> None:
    def up() -> bool:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a wf worker exited at start (code {p.returncode})")
        pids = [p.pid for p in procs]
        marks = ", ".join(["%s"] * len(pids))
        q = f"SELECT COUNT(*) FROM {table} WHERE pid IN ({marks})"
        return int(sql.q(q, tuple(pids))[0][0]) >= len(procs)

    wait_until(up, 60, 0.05, f"{len(procs)} wf workers")
    time.sleep(0.5)  # their dequeue loops are polling by now


def run_wf(
    url: str,
    n: int,
    reps: int,
    workers: int = 2,
    worker_url: str | None = None,
    worker_env: dict[str, str] | None = None,
    commits: bool = False,
    after_stop: Any = None,
) -> dict[str, Any]:
    """``workers`` wf worker processes (on ``worker_url``, default ``url``,
    with ``worker_env`` added to their environment) draining ``n`` workflows,
    ``reps`` times; enqueueing and the clock go directly to ``url``.

    ``commits`` (Postgres): also count the transactions the server committed
    per drain. Each repetition then has workers of its own, started after the
    enqueueing and stopped after the drain (``after_stop()`` runs then: the
    PgBouncer bench drops its server connections there), the count read with
    no other backend connected; the start-up and shutdown commits of the
    workers, measured by one cycle without a drain first, are subtracted, as
    are the bench's own statements."""
    from wf._sysdb import SystemDatabase

    sysdb = SystemDatabase(url)
    sysdb.ensure_reachable()
    sysdb.migrate()
    pg = sysdb.dialect == "postgresql"
    sysdb.dispose()
    commits = commits and pg
    table = "wf.workflows" if pg else "workflows"
    executors = "wf.executors" if pg else "executors"
    err = tempfile.TemporaryFile()
    rates, per_s, per_wf = [], [], []
    procs: list[subprocess.Popen[bytes]] = []
    sql: _Sql | None = None

    def start() -> list[subprocess.Popen[bytes]]:
        return _start_wf_workers(worker_url or url, err, workers, worker_env)

    try:
        if not commits:  # one set of workers for every repetition
            procs = start()
            sql = _Sql(url)
            _wait_up(sql, executors, procs)
            for rep in range(reps):
                _seed(url, n, rep)
                elapsed = _drain(sql, table, "queue", n, max(120.0, n / 10), procs)
                _check_drained(sql, table, "queue", n)
                rates.append(n / elapsed)
                log(
                    f"  wf queue ({sysdb.dialect}, {workers} workers) rep {rep + 1}: {n} workflows in "
                    f"{elapsed:.2f}s = {n / elapsed:.0f}/s"
                )
        else:
            overhead = 0.0
            for rep in range(-1, reps):  # -1: start and stop without a drain
                if rep >= 0:
                    _seed(url, n, rep)
                sql = wait_alone(url)
                c0 = pg_commits(sql)
                before = sql.n
                procs = start()
                _wait_up(sql, executors, procs)
                if rep >= 0:
                    elapsed = _drain(sql, table, "queue", n, max(120.0, n / 10), procs)
                _stop(procs)
                if after_stop is not None:
                    after_stop()
                mine = sql.n - before + 1  # the statements since c0, and c0's own
                sql.close()
                sql = wait_alone(url)
                delta = pg_commits(sql) - c0 - mine
                if rep < 0:
                    overhead = delta
                    log(f"  ({workers} worker(s) starting and stopping: {delta} commits)")
                    sql.close()
                    sql = None
                    continue
                _check_drained(sql, table, "queue", n)
                dc = max(0.0, delta - overhead)
                rates.append(n / elapsed)
                per_s.append(dc / elapsed)
                per_wf.append(dc / n)
                log(
                    f"  wf queue ({sysdb.dialect}, {workers} workers) rep {rep + 1}: {n} workflows in "
                    f"{elapsed:.2f}s = {n / elapsed:.0f}/s, {dc / elapsed:,.0f} commits/s "
                    f"({dc / n:.2f} per workflow)"
                )
                sql.close()
                sql = None
    except Exception:
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace")[-4000:])
        raise
    finally:
        _stop(procs)
        if sql is not None:
            sql.close()
        err.close()
    out: dict[str, Any] = {
        "workflows_per_s": summary(rates),
        "workers": workers,
        "n": n,
        "via": "wf worker" if wf_command() else "wf.launch",
    }
    if per_s:
        out["commits_per_s"] = summary(per_s)
        out["commits_per_workflow"] = summary(per_wf)
    return out


def worker_main(url: str) -> None:
    """Fallback worker without the CLI: launch wf as a worker until SIGTERM."""
    import threading

    import wf

    import bench.workloads  # noqa: F401

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    wf.launch(url, worker=True, queues=[DRAIN])
    stop.wait()
    wf.shutdown()


# -- DBOS ---------------------------------------------------------------------------------


def run_dbos(url: str, n: int, reps: int) -> dict[str, Any]:
    from wf._worker.dequeue import POLL_INTERVAL

    pg = url.startswith("postgresql")
    table = "dbos.workflow_status" if pg else "workflow_status"
    workers = [
        Agent(
            f"dbos-worker-{k}",
            "bench.dbos_bench",
            "worker",
            url,
            str(POLL_INTERVAL),
            str(WORKER_CONCURRENCY),
        )
        for k in range(2)
    ]
    sql = _Sql(url)
    try:
        rates = []
        for rep in range(reps):
            subprocess.run(
                [PY, "-m", "bench.dbos_bench", "enqueue", url, str(n)],
                cwd=REPO,
                env=child_env(),
                check=True,
            )
            elapsed = _drain(sql, table, "queue_name", n, timeout=max(120.0, n / 5))
            _check_drained(sql, table, "queue_name", n)
            rates.append(n / elapsed)
            log(
                f"  DBOS queue ({'postgresql' if pg else 'sqlite'}) rep {rep + 1}: {n} in {elapsed:.2f}s = {n / elapsed:.0f}/s"
            )
    finally:
        for w in workers:
            w.close()
        sql.close()
    return {
        "workflows_per_s": summary(rates),
        "workers": 2,
        "n": n,
        "poll_interval_s": POLL_INTERVAL,
    }


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker_main(sys.argv[2])
