"""Workflows for the dashboard tests: a pipeline with timed steps, a retried
step, a transaction-free child, events and log lines; failing ones (one with
an error raised from another); and one that keeps running until it is cancelled."""

from __future__ import annotations

import time

import wf

_tries: dict[str, int] = {}


@wf.step()
def fetch(n: int) -> list[int]:
    time.sleep(0.03)
    wf.logger.info("fetched %d items", n)
    return list(range(n))


@wf.step(retries=3, interval=0.01)
def flaky(label: str) -> str:
    """Fails on its first attempt, succeeds on the second."""
    _tries[label] = _tries.get(label, 0) + 1
    if _tries[label] < 2:
        raise RuntimeError(f"{label}: first try fails")
    time.sleep(0.02)
    return f"{label} ok"


@wf.step()
def total(items: list[int]) -> int:
    time.sleep(0.05)
    return sum(items)


@wf.workflow()
def report(n: int) -> str:
    wf.logger.info("report for %d", n)
    return f"report {n}: {total(list(range(n)))}"


@wf.workflow()
def pipeline(n: int = 4) -> dict[str, object]:
    wf.set_event("stage", "fetching")
    items = fetch(n)
    again = flaky(f"pipeline-{wf.workflow_id()}")
    s = total(items)
    child = report(n)
    for i in range(n):
        wf.write_stream("progress", {"done": i + 1, "of": n})
    wf.close_stream("progress")
    wf.set_event("stage", "done")
    wf.logger.warning("pipeline %d finished with %d", n, s)
    return {"sum": s, "again": again, "child": child}


@wf.step(retries=0)
def explode(n: int) -> None:
    raise ValueError(f"bad input {n}")


@wf.workflow()
def broken(n: int) -> None:
    fetch(1)
    explode(n)


@wf.step(retries=0)
def explode_from(n: int) -> None:
    raise RuntimeError(f"step failed for {n}") from ValueError(f"<bad> input {n}")


@wf.workflow()
def broken_with_cause(n: int) -> None:
    """Fails with the step's error, raised from a ValueError (issue 17)."""
    explode_from(n)


@wf.step()
def tick(i: int) -> int:
    return i


@wf.workflow()
def forever(label: str) -> str:
    """Runs until cancelled: a step, then a durable sleep, again and again."""
    i = 0
    while True:
        tick(i)
        wf.sleep(0.2)
        i += 1
