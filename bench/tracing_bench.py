"""What OpenTelemetry spans cost per step: ``python -m bench.tracing_bench``.

Each mode runs in its own process (a tracer provider is process-global),
rounds interleaved, on a fresh SQLite file (where a step costs least, so the
overhead shows most) and on Postgres when it is reachable:

- ``off``: as without ``opentelemetry-api`` installed;
- ``api``: the API installed, no SDK configured (a library user's default);
- ``sdk``: the SDK recording every span, through the batch processor (what
  production uses) to an exporter that discards them.

Prints the median per-step time of 10-step workflows per mode."""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

MODES = ("off", "api", "sdk")


def _agent(url: str, mode: str, count: int) -> None:
    import wf
    from wf import _tracing

    if mode == "off":
        _tracing._trace = None
    elif mode == "sdk":
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            SpanExporter,
            SpanExportResult,
        )

        class Discard(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        provider = TracerProvider()
        provider.add_span_processor(BatchSpanProcessor(Discard()))
        trace.set_tracer_provider(provider)
    from bench.workloads import steps_workflow

    wf.launch(url)
    for _ in range(20):
        steps_workflow(10)
    out = []
    for _ in range(count):
        t = time.perf_counter()
        steps_workflow(10)
        out.append((time.perf_counter() - t) / 10)
    wf.shutdown()
    print(json.dumps(out))


def _run(url: str, mode: str, count: int) -> list[float]:
    res = subprocess.run(
        [sys.executable, "-m", "bench.tracing_bench", "--agent", url, mode, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    return list(json.loads(res.stdout.strip().splitlines()[-1]))


def _pg_url(admin: str) -> str | None:
    try:
        import psycopg

        name = f"wf_bench_tracing_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return admin.rsplit("/", 1)[0] + "/" + name
    except Exception:  # noqa: BLE001 - no Postgres: SQLite only
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--agent", nargs=3, help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--count", type=int, default=200, help="workflows per mode and round")
    p.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = p.parse_args(argv)
    if args.agent:
        _agent(args.agent[0], args.agent[1], int(args.agent[2]))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        urls = {"SQLite": f"sqlite:///{Path(tmp) / 'bench.sqlite'}"}
        pg = _pg_url(args.pg)
        if pg:
            urls["Postgres"] = pg
        print(
            "| backend | "
            + " | ".join(f"{m} (ms/step)" for m in MODES)
            + " | api − off | sdk − off |"
        )
        print("|---|" + "---|" * (len(MODES) + 2))
        for backend, url in urls.items():
            samples: dict[str, list[float]] = {m: [] for m in MODES}
            for _ in range(args.rounds):
                for mode in MODES:
                    samples[mode] += _run(url, mode, args.count)
            med = {m: statistics.median(v) * 1000 for m, v in samples.items()}
            cells = " | ".join(f"{med[m]:.3f}" for m in MODES)
            print(
                f"| {backend} | {cells} | {(med['api'] - med['off']) * 1000:+.1f} µs"
                f" | {(med['sdk'] - med['off']) * 1000:+.1f} µs |"
            )
        if pg:
            import psycopg

            with psycopg.connect(args.pg, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{pg.rsplit("/", 1)[1]}"')
    return 0


if __name__ == "__main__":
    sys.exit(main())
