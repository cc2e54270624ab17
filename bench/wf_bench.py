"""The wf agent: ``python -m bench.wf_bench URL`` launches wf on URL and runs
workloads on request (see bench.common.Agent):

- ``seq``: ``count`` workflows of ``steps`` steps (or transactions) called one
  after another in this thread; the seconds each took;
- ``conc``: ``width`` such workflows started at once with ``wf.start``; the
  seconds until the last result."""

from __future__ import annotations

import sys
import time
from typing import Any

from bench.common import serve


def main(argv: list[str]) -> None:
    import logging

    import wf

    from bench.workloads import WORKFLOWS

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    url = argv[0]
    wf.launch(url)

    def seq(kind: str, steps: int, count: int) -> dict[str, Any]:
        fn = WORKFLOWS[kind]
        out = []
        for _ in range(count):
            t = time.perf_counter()
            fn(steps)
            out.append(time.perf_counter() - t)
        return {"durations": out}

    def conc(kind: str, steps: int, width: int) -> dict[str, Any]:
        fn = WORKFLOWS[kind]
        t = time.perf_counter()
        handles = [wf.start(fn, steps) for _ in range(width)]
        for h in handles:
            h.result()
        return {"elapsed": time.perf_counter() - t}

    for kind in WORKFLOWS:  # warm: connections, statement caches, thread pool
        seq(kind, 10, 3)
        conc(kind, 10, 16)
    try:
        serve({"seq": seq, "conc": conc}, {"ready": True, "system": "wf"})
    finally:
        wf.shutdown()


if __name__ == "__main__":
    main(sys.argv[1:])
