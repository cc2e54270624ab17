"""A worker's memory over many workflows: one ``wf worker`` process drains N
enqueued one-step workflows, enqueued in batches (10,000 at a time for
N = 100,000: at most one batch waits in the database), and after each batch
has ended the worker's resident set (``VmRSS``), threads and open file
descriptors are read from ``/proc/PID``. The figure: RSS after the first
batch (10 % of N) and after the last, and the growth between them.

``--rss-trace`` (``trace=True``): the worker runs under ``tracemalloc``
(``python -m bench.rss_bench worker URL QUEUE``, which runs the same
``wf worker`` command in-process, with ``BENCH_TRACEMALLOC=DIR``) and takes a
snapshot after the first and the last batch; the lines whose allocations grew
the most between them are reported (slower, and tracing costs memory itself:
its RSS figures are not comparable with a run without it)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import (
    PY,
    REPO,
    child_env,
    log,
    parallel,
    wait_until,
    wf_command,
)

QUEUE = "bench-rss"
TRACE_ENV = "BENCH_TRACEMALLOC"


def proc_sample(pid: int) -> dict[str, int]:
    """RSS (KiB), threads and open fds of a live process."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "VmRSS":
            out["rss_kb"] = int(value.split()[0])
        elif key == "Threads":
            out["threads"] = int(value)
    out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    return out


def _worker_cmd(url: str, trace: bool) -> list[str]:
    cli = wf_command()
    if cli is None or trace:
        return [PY, "-m", "bench.rss_bench", "worker", url, QUEUE]
    return [
        *cli,
        "worker",
        "bench.workloads",
        "--db",
        url,
        "--queue",
        QUEUE,
        "--log-level",
        "WARNING",
    ]


def _request_snapshot(d: Path, label: str, proc: subprocess.Popen[bytes]) -> None:
    (d / f"{label}.req").touch()
    wait_until(
        lambda: (d / f"{label}.done").exists() or proc.poll() is not None,
        300,
        0.1,
        f"the {label} tracemalloc snapshot",
    )


def _trace_diff(d: Path, top: int = 15) -> list[dict[str, Any]]:
    import tracemalloc

    skip = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
        tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
        tracemalloc.Filter(False, "<unknown>"),
    ]
    early = tracemalloc.Snapshot.load(str(d / "early.snap")).filter_traces(skip)
    end = tracemalloc.Snapshot.load(str(d / "end.snap")).filter_traces(skip)
    out = []
    for st in end.compare_to(early, "lineno")[:top]:
        frame = st.traceback[0]
        where = (
            os.path.relpath(frame.filename, REPO)
            if frame.filename.startswith(str(REPO))
            else frame.filename
        )
        out.append(
            {
                "where": f"{where}:{frame.lineno}",
                "size_diff_kb": round(st.size_diff / 1024, 1),
                "count_diff": st.count_diff,
                "size_kb": round(st.size / 1024, 1),
            }
        )
    return out


def run(url: str, n: int, batch: int | None = None, trace: bool = False) -> dict[str, Any]:
    from wf._core import encode_inputs
    from wf._sysdb import SystemDatabase

    from bench.queue_bench import _Sql, _stop
    from bench.workloads import one_step_workflow

    batch = batch or max(1, min(10_000, n // 10))
    batches = max(1, n // batch)
    n = batches * batch
    sysdb = SystemDatabase(url)
    sysdb.ensure_reachable()
    sysdb.migrate()
    pg = sysdb.dialect == "postgresql"
    table = "wf.workflows" if pg else "workflows"
    name = one_step_workflow.wf_spec.name
    tdir = Path(tempfile.mkdtemp(prefix="wf-bench-rss-"))
    env = {TRACE_ENV: str(tdir)} if trace else {}
    err = tempfile.TemporaryFile()
    proc = subprocess.Popen(
        _worker_cmd(url, trace),
        cwd=REPO,
        env=child_env(**env),
        stdout=subprocess.DEVNULL,
        stderr=err,
    )
    sql = _Sql(url)
    samples: list[dict[str, Any]] = []
    diff: list[dict[str, Any]] = []
    traced: dict[str, int] = {}
    left = f"SELECT COUNT(*) FROM {table} WHERE queue = %s AND status IN ('ENQUEUED', 'PENDING')"
    try:

        def up() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the wf worker exited at start (code {proc.returncode})")
            return any(e.pid == proc.pid for e in sysdb.list_executors())

        wait_until(up, 60, 0.05, "the wf worker")
        samples.append({"done": 0, **proc_sample(proc.pid)})
        t0 = time.perf_counter()
        busy = 0.0
        for b in range(batches):

            def insert(i: int, b: int = b) -> None:
                sysdb.insert_workflow(
                    workflow_id=f"m{b}-{i:06d}",
                    status="ENQUEUED",
                    name=name,
                    inputs=encode_inputs([i], {}),
                    executor_id=None,
                    queue=QUEUE,
                )

            tb = time.perf_counter()
            parallel(insert, batch)
            last = [-1, time.monotonic()]

            def drained(last: list[Any] = last) -> bool:
                k = sql.q(left, (QUEUE,))[0][0]
                if proc.poll() is not None:
                    raise RuntimeError(f"the wf worker exited (code {proc.returncode})")
                if k != last[0]:
                    last[:] = [k, time.monotonic()]
                elif time.monotonic() - last[1] > 60:
                    raise RuntimeError(f"the queue stalled with {k} workflows left")
                return k == 0

            wait_until(drained, max(300.0, batch / 20), 0.05, "the batch to drain")
            busy += time.perf_counter() - tb
            s = {"done": (b + 1) * batch, **proc_sample(proc.pid)}
            samples.append(s)
            log(
                f"  rss ({sysdb.dialect}): {s['done']:,} done, RSS {s['rss_kb'] / 1024:.1f} MiB, "
                f"{s['threads']} threads, {s['fds']} fds"
            )
            if trace and (b == 0 or b == batches - 1):
                _request_snapshot(tdir, "early" if b == 0 else "end", proc)
        elapsed = time.perf_counter() - t0
        ok = sql.q(
            f"SELECT COUNT(*) FROM {table} WHERE queue = %s AND status = 'SUCCESS'", (QUEUE,)
        )
        if ok[0][0] != n:
            raise RuntimeError(f"{ok[0][0]} of {n} workflows ended SUCCESS")
        if trace and batches > 1:
            diff = _trace_diff(tdir)
            traced = {k: int((tdir / f"{k}.done").read_text() or 0) for k in ("early", "end")}
            log(
                f"  traced Python memory: {traced['early'] / 1024:.0f} KiB after the first batch, "
                f"{traced['end'] / 1024:.0f} KiB after the last"
            )
            for row in diff[:8]:
                log(
                    f"  grew: {row['where']} +{row['size_diff_kb']} KiB ({row['count_diff']:+} blocks)"
                )
    except Exception:
        err.seek(0)
        sys.stderr.write(err.read().decode(errors="replace")[-4000:])
        raise
    finally:
        _stop([proc])
        sql.close()
        sysdb.dispose()
        err.close()
        import shutil

        shutil.rmtree(tdir, ignore_errors=True)
    first, end = samples[1], samples[-1]
    return {
        "n": n,
        "batch": batch,
        "traced": trace,
        "samples": samples,
        "early": first,
        "end": end,
        "growth_pct": 100.0 * (end["rss_kb"] - first["rss_kb"]) / first["rss_kb"],
        "workflows_per_s": n / busy if busy else None,
        "minutes": round(elapsed / 60, 2),
        "trace_top": diff,
        "traced_kb": {k: round(v / 1024, 1) for k, v in traced.items()},
    }


def worker_main(url: str, queue: str) -> None:
    """``wf worker bench.workloads --queue QUEUE`` in this process, under
    tracemalloc when ``BENCH_TRACEMALLOC`` names a directory: a file
    ``LABEL.req`` there asks for a snapshot (``LABEL.snap``, then ``LABEL.done``)."""
    d = os.environ.pop(TRACE_ENV, None)
    if d:
        import gc
        import tracemalloc

        tracemalloc.start(1)
        where = Path(d)

        def snapshots() -> None:
            while True:
                for req in sorted(where.glob("*.req")):
                    gc.collect()
                    tracemalloc.take_snapshot().dump(str(where / f"{req.stem}.snap"))
                    req.unlink()
                    current = tracemalloc.get_traced_memory()[0]
                    (where / f"{req.stem}.done").write_text(str(current))
                time.sleep(0.1)

        threading.Thread(target=snapshots, name="bench-tracemalloc", daemon=True).start()
    from wf.cli.main import main

    main(["worker", "bench.workloads", "--db", url, "--queue", queue, "--log-level", "WARNING"])


if __name__ == "__main__":
    if sys.argv[1] == "worker":
        worker_main(sys.argv[2], sys.argv[3])
