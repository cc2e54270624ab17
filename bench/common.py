"""What the benchmark modules share: sizes, databases, statistics, progress
lines, and the tiny line protocol between the driver and its agent processes.

An *agent* is a child process that holds one library (wf or DBOS) launched on
one database and runs workloads on request, timing them itself; the driver
asks each agent in turn, round after round, so every system meets the same
disk and the same server load (measurements are interleaved, not run one
system after the other)."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
BENCH_DIR = REPO / "bench"
PY = sys.executable
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REPLY = "@@bench "


# -- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    rounds: int  # interleaved rounds for floor / sequential / concurrent samples
    floor_ops: int  # raw commits per floor sample
    seq_workflows: int  # sequential workflows per sample
    steps: int  # steps (or transactions) per workflow
    width: int  # workflows at once in the concurrent workload
    queue_workflows: int  # workflows drained by the queue benchmark, per repetition
    queue_reps: int
    recovery_workflows: int
    recovery_reps: int
    list_rows: int
    list_reps: int
    cli_reps: int
    scale_workflows: int  # drained per repetition by 1, 2 and 4 workers (direct, PgBouncer)
    scale_reps: int
    rss_workflows: int  # drained by one worker while its RSS is sampled


FULL = Sizes(
    rounds=12,
    floor_ops=200,
    seq_workflows=10,
    steps=10,
    width=16,
    queue_workflows=2000,
    queue_reps=3,
    recovery_workflows=10_000,
    recovery_reps=3,
    list_rows=1_000_000,
    list_reps=21,
    cli_reps=7,
    scale_workflows=2000,
    scale_reps=2,
    rss_workflows=100_000,
)
QUICK = Sizes(
    rounds=3,
    floor_ops=100,
    seq_workflows=4,
    steps=10,
    width=16,
    queue_workflows=300,
    queue_reps=1,
    recovery_workflows=1000,
    recovery_reps=1,
    list_rows=100_000,
    list_reps=7,
    cli_reps=3,
    scale_workflows=300,
    scale_reps=1,
    rss_workflows=5_000,
)


# -- progress -------------------------------------------------------------------------------

_T0 = time.monotonic()


def log(msg: str) -> None:
    """A progress line on stderr (stdout carries the table or the JSON)."""
    print(f"[bench {time.monotonic() - _T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


# -- statistics -----------------------------------------------------------------------------


def summary(samples: Sequence[float]) -> dict[str, float]:
    """Median (the figure shown), with mean, spread and count for the JSON."""
    xs = sorted(samples)
    if not xs:
        return {
            "median": float("nan"),
            "mean": float("nan"),
            "p10": float("nan"),
            "p90": float("nan"),
            "n": 0,
        }

    def pct(p: float) -> float:
        k = (len(xs) - 1) * p
        lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

    return {
        "median": statistics.median(xs),
        "mean": statistics.fmean(xs),
        "p10": pct(0.10),
        "p90": pct(0.90),
        "n": len(xs),
    }


# -- databases ------------------------------------------------------------------------------


def with_database(url: str, dbname: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def psycopg_url(url: str) -> str:
    """A URL psycopg accepts (no SQLAlchemy driver suffix)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def recreate_database(admin_url: str, dbname: str) -> str:
    """Drop (if present) and create ``dbname``; return its URL."""
    import psycopg
    from psycopg import sql

    with psycopg.connect(psycopg_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return with_database(admin_url, dbname)


def drop_database(admin_url: str, dbname: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(psycopg_url(admin_url), autocommit=True, connect_timeout=10) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname))
        )


def pg_settings(url: str) -> dict[str, str]:
    import psycopg

    names = ("server_version", "fsync", "synchronous_commit", "wal_sync_method", "shared_buffers")
    with psycopg.connect(psycopg_url(url), autocommit=True, connect_timeout=10) as conn:
        return {n: str(conn.execute(f"SHOW {n}").fetchone()[0]) for n in names}  # type: ignore[index]


def sqlite_url(path: Path) -> str:
    return "sqlite:///" + str(path.resolve())


def sqlite_path(url: str) -> Path:
    return Path(url.removeprefix("sqlite:///"))


# -- processes -----------------------------------------------------------------------------


def compile_wf() -> None:
    """Compile wf's modules to bytecode, as ``pip install`` leaves an installed package.

    An editable install's own modules are compiled by Python on first import, unless
    PYTHONDONTWRITEBYTECODE is set (this machine sets it): then every fresh ``wf`` process
    would compile ~100 modules again, which no installed wf does."""
    subprocess.run(
        [
            PY,
            "-m",
            "compileall",
            "-q",
            str(REPO / "runtime"),
            str(REPO / "cli"),
            str(REPO / "bench"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def child_env(**extra: str) -> dict[str, str]:
    """The environment of child processes: the repo importable, no stray wf settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WF_")}
    env["PYTHONPATH"] = str(REPO) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def wf_command() -> list[str] | None:
    """How to run the ``wf`` CLI (the venv's console script), or None without the CLI."""
    try:
        import wf.cli.main  # noqa: F401
    except ImportError:
        return None
    exe = shutil.which("wf", path=str(Path(PY).parent)) or shutil.which("wf")
    if exe:
        return [exe]
    return [PY, "-c", "import sys; from wf.cli.main import main; sys.exit(main())"]


class Agent:
    """A child process running ``python -m MODULE ARGS...`` that answers
    JSON requests, one line each way (its replies are prefixed, so library
    output on stdout cannot be mistaken for one)."""

    def __init__(
        self, label: str, module: str, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.label = label
        self.proc = subprocess.Popen(
            [PY, "-m", module, *args],
            cwd=REPO,
            env=env or child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.ready = self._read()  # the agent's first line says it is launched

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"agent {self.label} exited (code {self.proc.wait()})")
            if line.startswith(REPLY):
                reply: dict[str, Any] = json.loads(line[len(REPLY) :])
                if "error" in reply:
                    raise RuntimeError(f"agent {self.label}: {reply['error']}")
                return reply

    def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("quit")
            except (RuntimeError, OSError, ValueError):
                pass
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def reply(obj: dict[str, Any]) -> None:
    sys.stdout.write(REPLY + json.dumps(obj) + "\n")
    sys.stdout.flush()


def serve(handlers: dict[str, Callable[..., dict[str, Any]]], ready: dict[str, Any]) -> None:
    """The agent's side: announce readiness, then answer requests until ``quit``."""
    reply(ready)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        op = req.pop("op")
        if op == "quit":
            reply({"ok": True})
            return
        try:
            reply(handlers[op](**req))
        except Exception as e:  # report, keep serving
            import traceback

            traceback.print_exc()
            reply({"error": f"{op}: {type(e).__name__}: {e}"})


def parallel(fn: Callable[[int], Any], n: int, threads: int = 8) -> None:
    """``fn(0) ... fn(n - 1)`` on a few threads (seeding rows faster than one
    commit at a time; the seeding is not what is measured)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(threads) as pool:
        for f in [pool.submit(fn, i) for i in range(n)]:
            f.result()


def wait_until(
    pred: Callable[[], bool], timeout: float, interval: float = 0.01, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
