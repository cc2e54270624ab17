"""A soak (issue 18): one ``wf worker`` process serves a long mixed workload
while its resources are sampled; what must stay flat after warm-up is its
resident set, open file descriptors, threads and database connections.

    python -m bench.soak [--workflows 100000] [--db URL] [--every 5] [--json PATH]

The workload, by ``i % 10``: 0-4 ``stepped`` (two steps around a
transaction that writes a row), 5-6 ``chatty`` (a message to itself,
received, and an event), 7 ``sleepy`` (a durable sleep), 8-9 ``nested``
(enqueues a child workflow on a second queue and waits for its result).
Workflows are enqueued in batches of at most 10 % (10,000 for 100,000), the
next batch once the backlog is below half a batch, so the worker is never
idle and the database never holds more than ~1.5 batches waiting.

Every ``--every`` seconds (5): the worker's ``VmRSS``, threads
(``/proc/PID/status``), open fds (``/proc/PID/fd``) and its database
connections (``pg_stat_activity`` rows by ``application_name`` whose client
port is one of the worker's sockets). Printed: the samples (one per 10 % of
the run), then each figure at 10 % of the workflows done and at the end,
and the growth between them. Postgres only (the connection count is the
point), on a fresh database ``wf_soak`` of --db's server (default
WF_TEST_PG_URL, else 127.0.0.1:5432), dropped afterwards."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

QUEUE = "soak"
CHILD_QUEUE = "soak-child"
LEDGER_DDL = "CREATE TABLE IF NOT EXISTS soak_ledger (id BIGSERIAL PRIMARY KEY, i BIGINT NOT NULL)"


# -- the workload (defined when imported as bench.soak: by the worker, and by
# the driver through that name; not in the ``python -m bench.soak`` __main__
# copy, whose workflow names would be ``__main__:...``) -------------------------------------

if __name__ != "__main__":
    import sqlalchemy as sa
    import wf

    SOAK = wf.Queue(QUEUE, worker_concurrency=8)
    CHILDREN = wf.Queue(CHILD_QUEUE, worker_concurrency=8)

    @wf.step()
    def double(i: int) -> int:
        return 2 * i

    @wf.transaction()
    def record(i: int) -> int:
        wf.db().execute(sa.text("INSERT INTO soak_ledger (i) VALUES (:i)"), {"i": i})
        return i

    @wf.workflow()
    def stepped(i: int) -> int:
        return double(i) + record(i) + double(i)

    @wf.workflow()
    def chatty(i: int) -> int:
        wf.send(wf.workflow_id(), i, topic="self")
        got = wf.recv(topic="self", timeout=300)
        wf.set_event("got", got)
        return int(got)

    @wf.workflow()
    def sleepy(i: int) -> int:
        wf.sleep(0.05)
        return double(i)

    @wf.workflow()
    def child(i: int) -> int:
        return double(i)

    @wf.workflow()
    def nested(i: int) -> int:
        h = CHILDREN.enqueue(child, i, workflow_id=f"{wf.workflow_id()}-c")
        return int(h.result(timeout=300))

    def kinds() -> tuple[Any, ...]:
        return (stepped,) * 5 + (chatty,) * 2 + (sleepy,) + (nested,) * 2


# -- the driver ------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds since the first workflow was enqueued
    done: int  # workflows of the main queue ended
    rss_mib: float
    fds: int
    threads: int
    connections: int  # the worker's Postgres sessions
    by_app: dict[str, int]  # ... by application_name


def _proc(pid: int) -> tuple[float, int, int]:
    rss = threads = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            rss = int(value.split()[0])
        elif key == "Threads":
            threads = int(value)
    return rss / 1024, len(os.listdir(f"/proc/{pid}/fd")), threads


def _local_ports(pid: int) -> set[int]:
    """Local TCP ports of the process's sockets (its database connections' client ports)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[9] in inodes:
                ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


class Sampler:
    def __init__(self, pid: int, url: str, dbname: str, every: float, done: Any) -> None:
        self.pid, self.url, self.dbname, self.every, self.done = pid, url, dbname, every, done
        self.samples: list[Sample] = []
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def take(self) -> Sample:
        import psycopg

        rss, fds, threads = _proc(self.pid)
        ports = _local_ports(self.pid)
        with psycopg.connect(self.url, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT application_name, client_port FROM pg_stat_activity WHERE datname = %s",
                (self.dbname,),
            ).fetchall()
        by_app: dict[str, int] = {}
        for app, port in rows:
            if port in ports:
                by_app[app] = by_app.get(app, 0) + 1
        s = Sample(
            round(time.monotonic() - self.t0, 1),
            self.done(),
            round(rss, 1),
            fds,
            threads,
            sum(by_app.values()),
            by_app,
        )
        self.samples.append(s)
        return s

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                s = self.take()
            except Exception as e:  # noqa: BLE001 - a sample missed is reported, not fatal
                print(f"soak: sample failed: {e}", file=sys.stderr, flush=True)
                continue
            print(
                f"soak: {s.t:7.0f}s {s.done:>8,} done  RSS {s.rss_mib:6.1f} MiB  "
                f"fds {s.fds:3}  threads {s.threads:3}  db {s.connections:2} {s.by_app}",
                file=sys.stderr,
                flush=True,
            )


def _git_head() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _growth(a: float, b: float) -> float:
    return 100.0 * (b - a) / a if a else 0.0


def run(url: str, n: int, every: float = 5.0, dbname: str | None = None) -> dict[str, Any]:
    """Soak one worker with ``n`` workflows on a fresh database of ``url``'s
    server; the samples and the growth from 10 % to 100 %."""
    import psycopg

    from bench.common import PY, REPO, child_env, drop_database, recreate_database, wf_command

    # a database of this run's own: two soaks at once must not drop each other's
    dbname = dbname or f"wf_soak_{os.getpid()}"
    db = recreate_database(url, dbname)
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute(LEDGER_DDL)
    import wf

    from bench import soak as app  # the workload, under its importable name

    wf.configure(database_url=db)
    wf.migrate()
    cli = wf_command() or [PY, "-m", "wf.cli.main"]
    err_path = Path(f"/tmp/wf-soak-worker-{os.getpid()}.log")
    with open(err_path, "w") as err:
        worker = subprocess.Popen(
            [*cli, "worker", "bench.soak", "--db", db, "--log-level", "WARNING"],
            cwd=REPO,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    table = "wf.workflows"

    def count(where: str) -> int:
        with psycopg.connect(db, autocommit=True) as conn:
            row = conn.execute(
                f"SELECT count(*) FROM {table} WHERE queue = %s AND {where}", (QUEUE,)
            ).fetchone()
        return int(row[0]) if row else 0

    def done() -> int:
        return count("status IN ('SUCCESS', 'ERROR', 'CANCELLED', 'RETRIES_EXCEEDED')")

    batch = max(1, min(10_000, n // 10))
    sampler = Sampler(worker.pid, db, dbname, every, done)
    t0 = time.monotonic()
    try:
        deadline = time.monotonic() + 60
        while not any(e.pid == worker.pid and e.alive for e in wf.list_executors()):
            if worker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start:\n{err_path.read_text()[-3000:]}")
            time.sleep(0.1)
        sampler.start()
        from concurrent.futures import ThreadPoolExecutor

        kinds = app.kinds()
        enqueued = 0
        with ThreadPoolExecutor(8) as pool:
            while enqueued < n:
                k = min(batch, n - enqueued)
                list(
                    pool.map(
                        lambda i: app.SOAK.enqueue(kinds[i % 10], i, workflow_id=f"s-{i:07d}"),
                        range(enqueued, enqueued + k),
                    )
                )
                enqueued += k
                # the next batch once less than half a batch waits
                while enqueued - done() > batch // 2 and enqueued < n:
                    if worker.poll() is not None:
                        raise RuntimeError(f"the worker died:\n{err_path.read_text()[-3000:]}")
                    time.sleep(1)
        last = (-1, time.monotonic())
        while True:
            d = done()
            if d >= n:
                break
            if worker.poll() is not None:
                raise RuntimeError(f"the worker died:\n{err_path.read_text()[-3000:]}")
            if d != last[0]:
                last = (d, time.monotonic())
            elif time.monotonic() - last[1] > 120:
                raise RuntimeError(f"stalled at {d} of {n}:\n{err_path.read_text()[-3000:]}")
            time.sleep(1)
        elapsed = time.monotonic() - t0
        final = sampler.take()
        sampler.stop()
        ok = count("status = 'SUCCESS'")
        with psycopg.connect(db, autocommit=True) as conn:
            ledger = conn.execute("SELECT count(*), count(DISTINCT i) FROM soak_ledger").fetchone()
        log_tail = err_path.read_text()[-2000:]
    finally:
        sampler.stop()
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
        wf.shutdown()
        drop_database(url, dbname)
    samples = [s for s in sampler.samples if s is not final] + [final]
    early = next((s for s in samples if s.done >= n // 10), samples[0])
    figures = {
        name: {
            "at_10pct": getattr(early, name),
            "at_end": getattr(final, name),
            "growth_pct": round(_growth(getattr(early, name), getattr(final, name)), 1),
        }
        for name in ("rss_mib", "fds", "threads", "connections")
    }
    return {
        "git": _git_head(),
        "workflows": n,
        "success": ok,
        "ledger_rows": ledger[0] if ledger else None,
        "ledger_distinct": ledger[1] if ledger else None,
        "minutes": round(elapsed / 60, 1),
        "workflows_per_s": round(n / elapsed, 1),
        "every_s": every,
        "early": asdict(early),
        "final": asdict(final),
        "figures": figures,
        "samples": [asdict(s) for s in samples],
        "worker_log_tail": log_tail,
    }


# at most this much growth from 10 % of the workflows done to the end; a
# count (fds, threads, connections) may also be one higher: a thread started
# lazily or a pooled connection opened at a peak, under the pools' bound
MAX_GROWTH = 0.10


def problems(result: dict[str, Any]) -> list[str]:
    """What is not flat, one line each (none: the soak passed)."""
    out = []
    if result["success"] != result["workflows"]:
        out.append(f"{result['workflows'] - result['success']:,} workflows did not end SUCCESS")
    for name, fig in result["figures"].items():
        early, end = fig["at_10pct"], fig["at_end"]
        if end > early * (1 + MAX_GROWTH) + (0 if name == "rss_mib" else 1):
            out.append(f"{name}: {early} -> {end} ({fig['growth_pct']:+.1f} %)")
    return out


def report(result: dict[str, Any]) -> str:
    n = result["workflows"]
    out = [
        f"soak (git {result.get('git', '?')}): {n:,} workflows through one wf worker in "
        f"{result['minutes']} min "
        f"({result['workflows_per_s']}/s), {result['success']:,} SUCCESS, "
        f"ledger {result['ledger_rows']:,} rows ({result['ledger_distinct']:,} distinct)",
        "",
        f"| {'t (s)':>7} | {'done':>9} | {'RSS MiB':>7} | {'fds':>4} | {'threads':>7} | {'db conns':>8} |",
        f"|{'-' * 9}|{'-' * 11}|{'-' * 9}|{'-' * 6}|{'-' * 9}|{'-' * 10}|",
    ]
    shown: list[dict[str, Any]] = []
    step = max(1, n // 10)
    for s in result["samples"]:
        if not shown or s["done"] // step > shown[-1]["done"] // step or s is result["samples"][-1]:
            shown.append(s)
    for s in shown:
        out.append(
            f"| {s['t']:>7.0f} | {s['done']:>9,} | {s['rss_mib']:>7.1f} | {s['fds']:>4} | "
            f"{s['threads']:>7} | {s['connections']:>8} |"
        )
    out.append("")
    e, f = result["early"], result["final"]
    out.append(f"growth from {e['done']:,} done to {f['done']:,} done:")
    for name, fig in result["figures"].items():
        out.append(
            f"  {name:12} {fig['at_10pct']:>8} -> {fig['at_end']:>8}  ({fig['growth_pct']:+.1f} %)"
        )
    out.append(f"  connections by application_name at the end: {f['by_app']}")
    bad = problems(result)
    out.append("not flat: " + "; ".join(bad) if bad else "flat: every figure within the limit")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from bench.common import DEFAULT_PG_URL

    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split("\n\n")[0])
    p.add_argument("--workflows", type=int, default=100_000)
    p.add_argument("--db", default=os.environ.get("WF_TEST_PG_URL") or DEFAULT_PG_URL)
    p.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    p.add_argument("--json", help="also write the result to this file")
    args = p.parse_args(argv)
    if not args.db.startswith("postgres"):
        p.error("the soak needs Postgres (it counts the worker's connections)")
    result = run(args.db, args.workflows, args.every)
    print(report(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 1 if problems(result) else 0


if __name__ == "__main__":
    sys.exit(main())
