"""Workflows for tests/reliability/test_worker_faults.py (workers and liveness
under faults), run in subprocesses.

Step bodies append ``<step> <tag> start|end <pid> <time>`` to the file named
by WF_TEST_MARKERS (one O_APPEND write per line), so the test can tell which
process ran what, and when.

- ``guarded(tag, seconds)``: the step ``work`` sleeps ``seconds``, then the
  step ``after``; served through the queue ``q2_one`` (concurrency 1).
- ``held(tag)``: the step ``hold`` blocks until the file WF_TEST_RELEASE
  exists, then the step ``after``.
- ``parent(i)``: waits (in a step) for the file WF_TEST_RELEASE, then starts
  ``child(i)`` in the background and waits for it.
- ``tx_wf(seconds)``: one transaction that holds its connection ``seconds``.

Commands (``python -m tests.apps.q2_faults COMMAND ...``; each launches wf
from WF_DATABASE_URL first):

- ``held PREFIX N``: start ``held(i)`` under IDs ``PREFIX<i>``, then wait for
  ever (the test kills it).
- ``fanout N``: start N parents, create WF_TEST_RELEASE (so they all start
  their child at once), wait for them all, print ``RESULT <json>`` with their
  statuses and the sum of their outputs.
- ``txs N SECONDS``: start N ``tx_wf`` and print ``RESULT <json>``: how many
  ended with each status.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import wf
from wf._serialization import dumps

from tests.apps.comm_common import mark

ONE = wf.Queue("q2_one", concurrency=1)


def _mark(step: str, tag: str, what: str) -> None:
    mark(f"{step} {tag} {what} {os.getpid()} {time.time()!r}")


@wf.step()
def work(tag: str, seconds: float) -> int:
    _mark("work", tag, "start")
    time.sleep(seconds)
    _mark("work", tag, "end")
    return os.getpid()


@wf.step()
def after(tag: str) -> int:
    _mark("after", tag, "start")
    return os.getpid()


@wf.workflow()
def guarded(tag: str, seconds: float) -> dict[str, int]:
    return {"work": work(tag, seconds), "after": after(tag)}


@wf.step()
def hold(tag: str) -> int:
    _mark("hold", tag, "start")
    release = Path(os.environ["WF_TEST_RELEASE"])
    while not release.exists():
        time.sleep(0.02)
    _mark("hold", tag, "end")
    return os.getpid()


@wf.workflow()
def held(tag: str) -> dict[str, int]:
    return {"hold": hold(tag), "after": after(tag)}


@wf.step()
def leaf(i: int) -> int:
    return 2 * i


@wf.workflow()
def child(i: int) -> int:
    return leaf(i)


@wf.step()
def gate() -> None:
    release = Path(os.environ["WF_TEST_RELEASE"])
    while not release.exists():
        time.sleep(0.05)


@wf.workflow()
def parent(i: int) -> int:
    gate()  # all parents hold their threads first, then all start a child at once
    return int(wf.start(child, i).result()) + 1


@wf.transaction()
def slow_tx(seconds: float) -> int:
    time.sleep(seconds)
    return 1


@wf.workflow()
def tx_wf(seconds: float) -> int:
    return int(slow_tx(seconds))


def _statuses(handles: list[Any], timeout: float) -> dict[str, int]:
    counts: Counter[str] = Counter()
    deadline = time.monotonic() + timeout
    for h in handles:
        try:
            h.result(timeout=max(0.1, deadline - time.monotonic()))
        except wf.AwaitTimeoutError:
            pass
        except Exception:  # noqa: BLE001 - counted by status below
            pass
        counts[str(h.status().status)] += 1
    return dict(counts)


def main(argv: list[str]) -> int:
    command, *rest = argv
    wf.launch()
    if command == "held":
        prefix, n = rest
        for i in range(int(n)):
            wf.start(held, f"{prefix}{i}", workflow_id=f"{prefix}{i}")
        while True:
            time.sleep(1)
    if command == "fanout":
        n = int(rest[0])
        handles = [wf.start(parent, i, workflow_id=f"parent-{i}") for i in range(n)]
        Path(os.environ["WF_TEST_RELEASE"]).touch()
        counts = _statuses(handles, float(os.environ.get("WF_TEST_WAIT", "120")))
        total = sum(int(h.status().output or 0) for h in handles)
        print(f"RESULT {dumps({'statuses': counts, 'total': total})}", flush=True)
    elif command == "txs":
        n, seconds = int(rest[0]), float(rest[1])
        handles = [wf.start(tx_wf, seconds, workflow_id=f"tx-{i}") for i in range(n)]
        counts = _statuses(handles, float(os.environ.get("WF_TEST_WAIT", "300")))
        print(f"RESULT {dumps({'statuses': counts})}", flush=True)
    else:
        raise SystemExit(f"unknown command {command!r}")
    # exit without waiting for anything still running: the test has its answer
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
