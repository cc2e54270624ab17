"""Steps and transactions inside workflows: retries (durations in seconds, the
last underlying error kept), transactions that fail roll back and are
recorded, wf.db(), and async def workflows in-process."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa
import wf

from tests.helpers import counters, create_counter_table

ATTEMPTS: list[float] = []


class Flaky(Exception):
    pass


@wf.step(retries=2, interval=0.2, backoff=2.0)
def always_fails() -> str:
    ATTEMPTS.append(time.monotonic())
    raise Flaky(f"attempt {len(ATTEMPTS)}")


@wf.step(retries=3, interval=0.05, backoff=1.0)
def fails_twice() -> str:
    ATTEMPTS.append(time.monotonic())
    if len(ATTEMPTS) < 3:
        raise Flaky("not yet")
    return "third time"


@wf.step(retries=0)
def no_retry() -> str:
    ATTEMPTS.append(time.monotonic())
    raise Flaky("once")


@wf.workflow()
def retrying(which: str) -> str:
    fn = {"always": always_fails, "twice": fails_twice, "none": no_retry}[which]
    return fn()


@pytest.fixture(autouse=True)
def _clear() -> None:
    ATTEMPTS.clear()


def test_step_retries_wait_seconds_with_backoff_and_keep_the_last_error(launched: str) -> None:
    with wf.set_workflow_id("retry-1"), pytest.raises(Flaky, match="attempt 3"):
        retrying("always")
    assert len(ATTEMPTS) == 3  # 1 + retries
    gaps = [b - a for a, b in zip(ATTEMPTS, ATTEMPTS[1:], strict=False)]
    assert 0.18 <= gaps[0] < 1.5, gaps  # interval: 0.2 s, not 0.2 ms nor 200 s
    assert 0.38 <= gaps[1] < 2.0, gaps  # times backoff 2
    (step,) = wf.list_steps("retry-1")
    assert step.error is not None and step.error.type.endswith("Flaky")
    assert step.error.message == "attempt 3"
    info = wf.get_workflow("retry-1")
    assert info.status == wf.Status.ERROR
    assert info.error is not None and info.error.message == "attempt 3"


def test_step_succeeding_on_a_retry_records_its_value(launched: str) -> None:
    with wf.set_workflow_id("retry-2"):
        assert retrying("twice") == "third time"
    assert len(ATTEMPTS) == 3
    (step,) = wf.list_steps("retry-2")
    assert step.output == "third time" and step.error is None


def test_retries_zero_runs_once(launched: str) -> None:
    with wf.set_workflow_id("retry-3"), pytest.raises(Flaky):
        retrying("none")
    assert len(ATTEMPTS) == 1


def test_a_failed_step_is_not_run_again_on_replay(launched: str) -> None:
    with wf.set_workflow_id("retry-4"), pytest.raises(Flaky):
        retrying("none")
    h = wf.restart("retry-4", from_step=2)
    with pytest.raises(Flaky, match="once"):
        h.result(timeout=30)
    assert len(ATTEMPTS) == 1  # the recorded error was replayed


# -- transactions -------------------------------------------------------------------------


@wf.transaction()
def add(counter: str, fail: bool) -> int:
    conn = wf.db()
    conn.execute(
        sa.text(
            "INSERT INTO wf_test_counters (name, n) VALUES (:k, 1) "
            "ON CONFLICT (name) DO UPDATE SET n = wf_test_counters.n + 1"
        ),
        {"k": counter},
    )
    if fail:
        raise Flaky(f"rolled back {counter}")
    return int(
        conn.execute(
            sa.text("SELECT n FROM wf_test_counters WHERE name = :k"), {"k": counter}
        ).scalar_one()
    )


@wf.transaction(isolation="read_committed", read_only=True)
def read(counter: str) -> int | None:
    value = (
        wf.db()
        .execute(sa.text("SELECT n FROM wf_test_counters WHERE name = :k"), {"k": counter})
        .scalar()
    )
    return None if value is None else int(value)


@wf.workflow()
def uses_transactions() -> dict[str, Any]:
    first = add("a", False)
    try:
        add("b", True)
        failed = ""
    except Flaky as e:
        failed = str(e)
    return {"first": first, "failed": failed, "a": read("a"), "b": read("b")}


def test_transactions_commit_or_roll_back_with_their_record(launched: str) -> None:
    create_counter_table(launched)
    out = wf.start(uses_transactions, workflow_id="tx-1").result(timeout=30)
    assert out == {"first": 1, "failed": "rolled back b", "a": 1, "b": None}
    assert counters(launched) == {"a": 1}
    steps = wf.list_steps("tx-1")
    assert [(s.kind, s.output) for s in steps] == [
        ("transaction", 1),
        ("transaction", None),
        ("transaction", 1),
        ("transaction", None),
    ]
    assert steps[1].error is not None and steps[1].error.message == "rolled back b"

    # replaying every call runs no transaction again
    again = wf.restart("tx-1", from_step=5).result(timeout=30)
    assert again == out
    assert counters(launched) == {"a": 1}


def test_transaction_outside_a_workflow_just_runs(launched: str) -> None:
    create_counter_table(launched)
    assert add("plain", False) == 1
    assert add("plain", False) == 2
    with pytest.raises(Flaky):
        add("plain", True)
    assert counters(launched) == {"plain": 2}


def test_wf_db_outside_a_transaction_raises() -> None:
    with pytest.raises(wf.WfError):
        wf.db()


# -- async ----------------------------------------------------------------------------------


@wf.step()
async def async_double(x: int) -> tuple[int, int]:
    await asyncio.sleep(0.01)
    return (x, x * 2)


@wf.workflow()
async def async_flow(x: int) -> dict[str, Any]:
    pair = await async_double(x)
    await asyncio.to_thread(time.sleep, 0)
    return {"pair": pair, "type": type(pair).__name__, "id": wf.workflow_id()}


def test_async_workflow_called_and_awaited(launched: str) -> None:
    async def main() -> Any:
        with wf.set_workflow_id("async-1"):
            return await async_flow(3)

    assert asyncio.run(main()) == {"pair": (3, 6), "type": "tuple", "id": "async-1"}
    assert [s.kind for s in wf.list_steps("async-1")] == ["step"]


def test_async_workflow_started_in_the_background(launched: str) -> None:
    async def main() -> Any:
        h = await wf.start_async(async_flow, 4, workflow_id="async-2")
        return await h.result_async(timeout=30)

    assert asyncio.run(main()) == {"pair": (4, 8), "type": "tuple", "id": "async-2"}
    assert wf.start(async_flow, 4, workflow_id="async-2").result(timeout=5)["pair"] == (4, 8)


def test_async_calls_leave_the_event_loop_free(db_url: str) -> None:
    """The first async call launches wf (connect, migrate) and every call
    writes to the database: all of it off the caller's event loop, which
    keeps ticking meanwhile."""
    wf.configure(database_url=db_url)

    async def main() -> tuple[Any, Any, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        # set_workflow_id still names the workflow, though it starts in a thread
        with wf.set_workflow_id("async-free-1"):
            h = await wf.start_async(async_flow, 5)
        launched_ticks = ticks - before
        with wf.set_workflow_id("async-free-2"):
            direct = await async_flow(6)
        stop.set()
        await task
        return await h.result_async(timeout=30), direct, launched_ticks

    started, direct, ticks = asyncio.run(main())
    assert started["id"] == "async-free-1" and direct["id"] == "async-free-2"
    assert started["pair"] == (5, 10) and direct["pair"] == (6, 12)
    assert ticks > 0, "the event loop stood still while wf launched"
