"""Workflows for the crash tests, run in subprocesses by tests/apps/driver.py.

- Every step and transaction appends lines to the marker file named by
  WF_TEST_MARKERS (``<name> start`` / ``<name> end``), so the test counts how
  often each body ran.
- Transactions increment a row of ``wf_test_counters`` in the application
  database: the counter proves exactly-once.
- ``WF_TEST_KILL_AT=a,b`` makes the process SIGKILL itself when it reaches the
  kill point ``a`` or ``b`` (see ``kill_point`` calls below).
- ``WF_TEST_VARIANT=b`` switches ``drifting`` to different code (non-determinism).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import wf

COUNTER_TABLE = "wf_test_counters"


def kill_point(name: str) -> None:
    if name in os.environ.get("WF_TEST_KILL_AT", "").split(","):
        mark(f"killed at {name}")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached


def mark(line: str) -> None:
    path = os.environ.get("WF_TEST_MARKERS")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def touch(name: str) -> None:
    """Create the file ``name`` in the marker file's directory (a signal to the test)."""
    path = os.environ.get("WF_TEST_MARKERS")
    if path:
        Path(path).with_name(name).touch()


# -- run to completion, exactly-once transactions, never-rerun steps ---------------------


@wf.step()
def step_one(x: int) -> int:
    mark("step_one start")
    kill_point("in_step1")
    mark("step_one end")
    return x + 1


@wf.step()
def step_two(x: int) -> int:
    mark("step_two start")
    kill_point("in_step2")
    mark("step_two end")
    return x * 10


@wf.transaction()
def bump(counter: str) -> int:
    mark(f"bump {counter} start")
    conn = wf.db()
    conn.execute(
        sa.text(
            f"INSERT INTO {COUNTER_TABLE} (name, n) VALUES (:k, 1) "
            f"ON CONFLICT (name) DO UPDATE SET n = {COUNTER_TABLE}.n + 1"
        ),
        {"k": counter},
    )
    n = conn.execute(
        sa.text(f"SELECT n FROM {COUNTER_TABLE} WHERE name = :k"), {"k": counter}
    ).scalar_one()
    kill_point(f"in_{counter}")  # the write is done, the commit is not
    mark(f"bump {counter} end")
    return int(n)


@wf.workflow()
def pipeline(x: int) -> dict[str, Any]:
    wf.logger.info("pipeline %s begins", x)
    a = step_one(x)
    kill_point("after_step1")
    n1 = bump("t1")
    kill_point("after_t1")  # right after the transaction committed
    b = step_two(a)
    kill_point("after_step2")
    n2 = bump("t2")
    kill_point("after_t2")
    wf.logger.info("pipeline %s ends", x)
    return {"a": a, "b": b, "n1": n1, "n2": n2}


# -- child workflows survive a crash with the same IDs -----------------------------------


@wf.workflow()
def child_job(tag: str) -> str:
    return f"{tag}:{step_one(1)}"


@wf.workflow()
def parent_job() -> list[str]:
    first = child_job("first")
    kill_point("after_child1")
    second = child_job("second")
    return [first, second]


# -- idempotent IDs across processes -----------------------------------------------------


@wf.step()
def slow_step() -> str:
    mark("slow_step start")
    time.sleep(1.0)
    mark("slow_step end")
    return "slow"


@wf.workflow()
def once(tag: str) -> str:
    mark("once body")
    return f"{tag}:{slow_step()}"


# -- non-determinism ---------------------------------------------------------------------


@wf.step()
def original_step() -> str:
    mark("original_step start")
    return "original"


@wf.step()
def renamed_step() -> str:
    mark("renamed_step start")
    return "renamed"


@wf.workflow()
def drifting() -> str:
    if os.environ.get("WF_TEST_VARIANT") == "b":
        first = renamed_step()
    else:
        first = original_step()
    kill_point("after_first")
    return first + "+" + step_two(1).__str__()


# -- bounded recovery --------------------------------------------------------------------


@wf.step()
def fragile_step() -> str:
    mark("fragile_step start")
    kill_point("in_fragile")
    return "survived"


@wf.workflow(max_recovery_attempts=2)
def fragile() -> str:
    return fragile_step()


# -- durable sleep -----------------------------------------------------------------------


@wf.workflow()
def sleeper(seconds: float) -> dict[str, float]:
    started = wf_time_step()
    mark(f"sleeping {time.time()}")
    touch("sleeping")
    wf.sleep(seconds)
    return {"started": started, "woke": wf_time_step()}


@wf.step()
def wf_time_step() -> float:
    return time.time()


# -- the same with async def -------------------------------------------------------------


@wf.step()
async def astep(x: int) -> int:
    mark("astep start")
    kill_point("in_astep")
    await asyncio.sleep(0.01)
    mark("astep end")
    return x + 1


@wf.transaction()
async def abump(counter: str) -> int:
    mark(f"abump {counter} start")
    conn = wf.db()
    conn.execute(
        sa.text(
            f"INSERT INTO {COUNTER_TABLE} (name, n) VALUES (:k, 1) "
            f"ON CONFLICT (name) DO UPDATE SET n = {COUNTER_TABLE}.n + 1"
        ),
        {"k": counter},
    )
    n = conn.execute(
        sa.text(f"SELECT n FROM {COUNTER_TABLE} WHERE name = :k"), {"k": counter}
    ).scalar_one()
    kill_point(f"in_a{counter}")
    mark(f"abump {counter} end")
    return int(n)


@wf.workflow()
async def async_pipeline(x: int) -> dict[str, Any]:
    a = await astep(x)
    kill_point("after_astep")
    n = await abump("at1")
    kill_point("after_at1")
    b = await astep(a)
    return {"a": a, "b": b, "n": n}
