"""Workflows the CLI tests start: success, failure, logs, steps, messages,
slow ones to cancel, await or crash."""

from __future__ import annotations

import os
import time
from pathlib import Path

import sqlalchemy as sa
import wf

queue = wf.Queue("cli_q", concurrency=2)


@wf.step()
def shout(text: str) -> str:
    wf.logger.info("shouting %s", text)
    return text.upper()


@wf.step(retries=0)
def explode(message: str) -> None:
    raise ValueError(message)


@wf.transaction()
def count(label: str) -> int:
    conn = wf.db()
    conn.execute(sa.text("CREATE TABLE IF NOT EXISTS cli_counts (label TEXT)"))
    conn.execute(sa.text("INSERT INTO cli_counts (label) VALUES (:l)"), {"l": label})
    return int(conn.execute(sa.text("SELECT count(*) FROM cli_counts")).scalar_one())


@wf.workflow()
def greet(name: str, punctuation: str = "!") -> str:
    wf.logger.info("greeting %s", name)
    loud = shout(name)
    return f"hello {loud}{punctuation}"


@wf.workflow()
def add(a: int, b: int) -> int:
    return a + b


@wf.workflow()
def echo(*args: object, **kwargs: object) -> dict[str, object]:
    return {"args": list(args), "kwargs": kwargs}


@wf.workflow()
def fail(message: str = "boom") -> None:
    wf.logger.warning("about to fail")
    explode(message)


@wf.step(retries=0)
def explode_chained() -> None:
    try:
        raise KeyError("deep")
    except KeyError as e:
        raise ValueError("inner") from e


@wf.workflow()
def fail_chained(message: str = "outer") -> None:
    """Fails with a RuntimeError raised from a ValueError raised from a KeyError."""
    try:
        explode_chained()
    except ValueError:
        raise RuntimeError(message)  # noqa: B904 (an implicit context, on purpose)


@wf.workflow()
def counted(label: str) -> int:
    n = count(label)
    shout(label)
    return n


@wf.workflow()
def slow(seconds: float = 30.0) -> str:
    """Sleeps in small durable pieces so a cancel stops it soon."""
    end = time.monotonic() + seconds
    n = 0
    while time.monotonic() < end:
        wf.sleep(0.2)
        n += 1
    return f"slept {n}"


@wf.workflow()
def wait_for_message(topic: str | None = None) -> object:
    wf.logger.info("waiting for a message")
    return wf.recv(topic=topic, timeout=60)


@wf.step()
def mark(path: str, text: str) -> None:
    with open(path, "a") as f:
        f.write(text + "\n")


@wf.step()
def block_until(path: str) -> None:
    """Write ``path + '.ready'``, then wait for ``path`` to exist (or forever)."""
    Path(path + ".ready").write_text(str(os.getpid()))
    while not Path(path).exists():
        time.sleep(0.05)


@wf.workflow()
def crashable(marker: str) -> str:
    """Step 1 done, then blocks in step 2 until the marker file exists: a
    test SIGKILLs the process there, creates the marker and recovers."""
    mark(marker + ".log", "step1")
    block_until(marker)
    mark(marker + ".log", "step3")
    return "recovered"


def not_a_workflow() -> None:
    pass


NOT_CALLABLE = 42


@wf.workflow()
def crashable_fail(marker: str) -> str:
    """Like crashable, but fails after the blocking step."""
    mark(marker + ".log", "step1")
    block_until(marker)
    explode("failed after recovery")
    return "unreachable"


@wf.step()
def file_exists(path: str) -> bool:
    return Path(path).exists()


@wf.workflow()
def gated(path: str) -> int:
    """Polls (durably) until ``path`` exists; returns how many polls it took."""
    n = 0
    while not file_exists(path):
        n += 1
        wf.sleep(0.1)
    return n
