"""DBOS Transact on the same workloads (optional: ``pip install -e '.[bench]'``).

``python -m bench.dbos_bench MODE URL [N]``:

- ``agent``: launch DBOS on URL and answer ``seq`` / ``conc`` requests exactly
  like bench.wf_bench (steps via ``@DBOS.step``, transactions via a
  ``SQLAlchemyDatasource`` on the same database, DBOS 3's transaction API);
- ``worker``: a queue worker listening only to ``bench-drain``;
- ``enqueue``: put N one-step workflows on ``bench-staging`` and exit.

Every DBOS process shares one application name and version, so workers
dequeue what the enqueuer recorded. DBOS's defaults otherwise (pickle
serialization, LISTEN/NOTIFY, its own pool sizes)."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

from bench.common import serve

APP = "wfbench"
STAGING = "bench-staging"
DRAIN = "bench-drain"


def available() -> str | None:
    """DBOS's version when importable, else None."""
    try:
        from importlib.metadata import version

        import dbos  # noqa: F401

        return version("dbos")
    except Exception:
        return None


def _launch(url: str, listen: list[str] | None = None) -> Any:
    from dbos import DBOS, SQLAlchemyDatasource

    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS(
        config={
            "name": APP,
            "system_database_url": url,
            "application_version": "bench",
            "log_level": "WARNING",
        }
    )
    ds = SQLAlchemyDatasource.create(url)
    workflows = _define(DBOS, ds)
    if listen is not None:
        DBOS.listen_queues(listen)
    DBOS.launch()
    return DBOS, workflows


def _define(DBOS: Any, ds: Any) -> dict[str, Any]:
    import sqlalchemy as sa

    select_1 = sa.text("SELECT 1")

    @DBOS.step()
    def noop_step(i: int) -> int:
        return i

    @ds.transaction()
    def noop_tx(i: int) -> int:
        ds.sql_session().execute(select_1)
        return i

    @DBOS.workflow()
    def steps_workflow(n: int) -> int:
        for i in range(n):
            noop_step(i)
        return n

    @DBOS.workflow()
    def tx_workflow(n: int) -> int:
        for i in range(n):
            noop_tx(i)
        return n

    @DBOS.workflow()
    def one_step_workflow(i: int) -> int:
        return int(noop_step(i))

    return {"step": steps_workflow, "transaction": tx_workflow, "one": one_step_workflow}


def agent(url: str) -> None:
    DBOS, workflows = _launch(url)

    def seq(kind: str, steps: int, count: int) -> dict[str, Any]:
        fn = workflows[kind]
        out = []
        for _ in range(count):
            t = time.perf_counter()
            fn(steps)
            out.append(time.perf_counter() - t)
        return {"durations": out}

    def conc(kind: str, steps: int, width: int) -> dict[str, Any]:
        fn = workflows[kind]
        t = time.perf_counter()
        handles = [DBOS.start_workflow(fn, steps) for _ in range(width)]
        for h in handles:
            h.get_result()
        return {"elapsed": time.perf_counter() - t}

    for kind in ("step", "transaction"):
        seq(kind, 10, 3)
        conc(kind, 10, 16)
    try:
        serve({"seq": seq, "conc": conc}, {"ready": True, "system": "dbos", "version": available()})
    finally:
        DBOS.destroy()


def worker(url: str, poll: float, concurrency: int) -> None:
    DBOS, _ = _launch(url, listen=[DRAIN])
    DBOS.register_queue(DRAIN, worker_concurrency=concurrency, polling_interval_sec=poll)
    try:
        serve({}, {"ready": True, "pid": os.getpid()})
    finally:
        DBOS.destroy()


def enqueue(url: str, n: int) -> None:
    DBOS, workflows = _launch(url, listen=[])
    q = DBOS.register_queue(STAGING)
    for i in range(n):
        q.enqueue(workflows["one"], i)
    DBOS.destroy()


if __name__ == "__main__":
    mode, url, *rest = sys.argv[1:]
    if mode == "agent":
        agent(url)
    elif mode == "worker":
        worker(url, float(rest[0]), int(rest[1]))
    elif mode == "enqueue":
        enqueue(url, int(rest[0]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
