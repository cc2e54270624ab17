"""The workflows of the wf.Client tests. The tests copy this file into a
directory of its own as ``clientjobs.py`` and run ``wf worker clientjobs``
there, so the worker has the code and the client processes (and the test
process) cannot import it: they know the workflows only by recorded name,
``clientjobs:add`` and so on.

Not imported as ``tests.apps.client_jobs`` by anything."""

from __future__ import annotations

import os
from pathlib import Path

import wf


class JobError(Exception):
    pass


def _count(tag: str) -> int:
    """One line per run of a step, in COUNT_DIR (the test reads it)."""
    path = Path(os.environ["CLIENT_COUNT_DIR"]) / f"{tag}.count"
    with path.open("a") as f:
        f.write("x\n")
    return len(path.read_text().splitlines())


@wf.step()
def count_step(tag: str) -> int:
    return _count(tag)


@wf.workflow()
def add(a: int, b: int) -> int:
    count_step(f"add-{a}-{b}")
    return a + b


@wf.workflow()
def fail(message: str) -> None:
    raise JobError(message)


@wf.workflow()
def chat(tag: str) -> dict[str, object]:
    """Publishes ``ready``, waits for a message on topic ``go`` (a cancel
    ends the wait), publishes what it got as ``got`` and returns it."""
    runs = count_step(tag)
    wf.set_event("ready", tag)
    msg = wf.recv("go", timeout=120)
    wf.set_event("got", msg)
    return {"tag": tag, "msg": msg, "step_runs": runs}


@wf.workflow()
def progress(n: int) -> int:
    """Streams 0..n-1 under ``progress``, then closes it."""
    for i in range(n):
        wf.write_stream("progress", i)
    wf.close_stream("progress")
    return n
