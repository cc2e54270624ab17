"""Queue throughput: two worker processes drain N enqueued one-step workflows.

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
    """A tiny DB-API helper for either dialect (the driver's own connection)."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
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
        cur = self.conn.execute(sql, params)
        return list(cur.fetchall()) if cur.description else []

    def close(self) -> None:
        self.conn.close()


def _drain(sql: _Sql, table: str, queue_col: str, n: int, timeout: float) -> float:
    """Move the staged rows to the served queue; seconds until all have ended."""
    t0 = time.perf_counter()
    sql.q(f"UPDATE {table} SET {queue_col} = %s WHERE {queue_col} = %s", (DRAIN, STAGING))
    left = (
        f"SELECT COUNT(*) FROM {table} WHERE {queue_col} = %s AND status IN ('ENQUEUED', 'PENDING')"
    )
    wait_until(lambda: sql.q(left, (DRAIN,))[0][0] == 0, timeout, 0.01, "the queue to drain")
    elapsed = time.perf_counter() - t0
    counts = dict(
        sql.q(
            f"SELECT status, COUNT(*) FROM {table} WHERE {queue_col} = %s GROUP BY status", (DRAIN,)
        )
    )
    if counts.get("SUCCESS", 0) != n:
        raise RuntimeError(f"queue drained with statuses {counts}, expected {n} SUCCESS")
    sql.q(f"UPDATE {table} SET {queue_col} = %s WHERE {queue_col} = %s", ("bench-done", DRAIN))
    return elapsed


# -- wf ---------------------------------------------------------------------------------


def _start_wf_workers(url: str, err: IO[bytes]) -> list[subprocess.Popen[bytes]]:
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
        subprocess.Popen(cmd, cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=err)
        for _ in range(2)
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


def run_wf(url: str, n: int, reps: int) -> dict[str, Any]:
    from wf._core import encode_inputs
    from wf._sysdb import SystemDatabase

    from bench.workloads import one_step_workflow

    sysdb = SystemDatabase(url)
    sysdb.ensure_reachable()
    sysdb.migrate()
    name = one_step_workflow.wf_spec.name
    table = "wf.workflows" if sysdb.dialect == "postgresql" else "workflows"
    err = tempfile.TemporaryFile()
    procs = _start_wf_workers(url, err)
    sql = _Sql(url)
    try:
        wait_until(lambda: len(sysdb.list_executors()) >= 2, 60, 0.05, "two wf workers")
        time.sleep(0.5)  # their dequeue loops are polling by now
        rates = []
        for rep in range(reps):

            def insert(i: int, rep: int = rep) -> None:
                sysdb.insert_workflow(
                    workflow_id=f"q{rep}-{i:06d}",
                    status="ENQUEUED",
                    name=name,
                    inputs=encode_inputs([i], {}),
                    executor_id=None,
                    queue=STAGING,
                )

            parallel(insert, n)
            elapsed = _drain(sql, table, "queue", n, timeout=max(120.0, n / 10))
            rates.append(n / elapsed)
            log(
                f"  wf queue ({sysdb.dialect}) rep {rep + 1}: {n} workflows in {elapsed:.2f}s = {n / elapsed:.0f}/s"
            )
    except Exception:
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace")[-4000:])
        raise
    finally:
        _stop(procs)
        sql.close()
        sysdb.dispose()
        err.close()
    return {
        "workflows_per_s": summary(rates),
        "workers": 2,
        "n": n,
        "via": "wf worker" if wf_command() else "wf.launch",
    }


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
