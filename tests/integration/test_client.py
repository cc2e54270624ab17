"""wf.Client / wf.AsyncClient (issue 15 part 3): a process without the
workflow code enqueues work by recorded name that a real ``wf worker``
subprocess runs, and reads it back through its own database connection.

The workflow module (``clientjobs``) exists only in the worker's directory
(tests/apps/client_worker.py): neither this process nor the client
subprocess can import it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import wf

from tests.apps.client_worker import WorkerCode, running_worker, worker_code
from tests.cli.conftest import database_untouched
from tests.helpers import REPO, child_env


@pytest.fixture
def code(tmp_path: Path) -> WorkerCode:
    assert importlib.util.find_spec("clientjobs") is None
    return worker_code(tmp_path)


def _wait_status(client: wf.Client, workflow_id: str, *statuses: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_workflow(workflow_id).status
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"{workflow_id} stayed {status}, not {statuses}"
        time.sleep(0.05)


def test_a_service_without_the_code_enqueues_work_a_worker_runs(
    db_url: str, code: WorkerCode
) -> None:
    with running_worker(code, db_url):
        proc = subprocess.run(
            [sys.executable, "-m", "tests.apps.client_enqueuer", db_url],
            env=child_env(None),
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    seen = json.loads(proc.stdout)
    assert seen["add"] == 5 and seen["add_status"] == "SUCCESS"
    # the error is recorded under its own class's name; the client, which
    # cannot import that class, gets a WorkflowFailedError carrying it
    assert seen["fail"][0] == "WorkflowFailedError"
    assert "clientjobs.JobError" in seen["fail"][1] and "boom" in seen["fail"][1]
    assert seen["ready"] == "svc"
    assert seen["chat"] == {"tag": "svc", "msg": {"hello": "from the service"}, "step_runs": 1}
    assert seen["got"] == {"hello": "from the service"}
    assert [k for _, k in seen["steps"]] == ["step", "event", "recv", "event"]
    assert seen["modules"] == []
    # recorded exactly as wf records a workflow the worker's own code starts
    with wf.Client(db_url) as client:
        info = client.get_workflow("svc-add")
        assert (info.name, info.queue, info.inputs) == (
            "clientjobs:add",
            "default",
            {"args": [2], "kwargs": {"b": 3}},
        )
    assert code.runs("add-2-3") == 1


def test_priority_orders_and_delay_holds_work_enqueued_by_name(
    db_url: str, code: WorkerCode
) -> None:
    with wf.Client(db_url) as client:
        # enqueued before any worker runs: a one-slot worker then takes them
        # lowest priority first (ties: oldest first)
        for n, prio in [(1, 5), (2, 1), (3, 3), (4, 1)]:
            client.enqueue("clientjobs:add", n, 0, queue="prio", priority=prio, workflow_id=f"p{n}")
        delayed = client.enqueue("clientjobs:add", 9, 9, queue="later", delay=1.5)
        with running_worker(code, db_url, "--concurrency", "1"):
            results = [client.retrieve(f"p{n}").result(timeout=60) for n in (1, 2, 3, 4)]
            assert results == [1, 2, 3, 4]
            assert delayed.result(timeout=60) == 18
        started = {
            i.workflow_id: i.started_at for i in client.list_workflows(queue="prio", limit=None)
        }
        assert sorted(started, key=lambda w: started[w] or 0) == ["p2", "p4", "p3", "p1"]
        info = delayed.status()
        assert info.started_at is not None
        # seconds, not milliseconds: not started before its delay had passed
        assert (info.started_at - info.created_at).total_seconds() >= 1.5


def test_dedup_ids_and_refusals(db_url: str) -> None:
    with wf.Client(db_url) as client:
        first = client.enqueue("clientjobs:add", 1, 2, dedup_id="order-7")
        with pytest.raises(wf.QueueDedupError):
            client.enqueue("clientjobs:add", 1, 2, dedup_id="order-7")
        # another queue is another dedup space
        client.enqueue("clientjobs:add", 1, 2, dedup_id="order-7", queue="other")
        # the ID is the idempotency key: the same ID enqueues nothing new...
        again = client.enqueue("clientjobs:add", 1, 2, workflow_id=first.workflow_id)
        assert again.workflow_id == first.workflow_id
        # ...and names its workflow: another name under it is a conflict
        with pytest.raises(wf.WorkflowConflictError):
            client.enqueue("clientjobs:chat", "x", workflow_id=first.workflow_id)
        before = len(client.list_workflows(limit=None))
        assert before == 2
        refused = [
            lambda: client.enqueue("clientjobs:add", object()),  # cannot be stored
            lambda: client.enqueue("clientjobs:add", b=lambda: 1),
            lambda: client.enqueue(""),
            lambda: client.enqueue(42),
            lambda: client.enqueue("clientjobs:add", queue=" "),
            lambda: client.enqueue("clientjobs:add", priority="high"),
            lambda: client.enqueue("clientjobs:add", delay=-1),
            lambda: client.enqueue("clientjobs:add", timeout=0),
            lambda: client.enqueue("clientjobs:add", workflow_id=""),
            lambda: client.enqueue("clientjobs:add", dedup_id=""),
        ]
        for call in refused:
            with pytest.raises((wf.SerializationError, wf.ConfigurationError)):
                call()
        assert len(client.list_workflows(limit=None)) == before
        with pytest.raises(wf.WorkflowNotFoundError):
            client.retrieve("nope")
        with pytest.raises(wf.WorkflowNotFoundError):
            client.send("nope", 1)
        with pytest.raises(wf.WorkflowNotFoundError):
            client.cancel("nope")
        with pytest.raises(wf.WorkflowNotFoundError):
            client.list_steps("nope")
    with pytest.raises(wf.WfError, match="closed"):
        client.list_workflows()


def test_a_bad_value_on_a_fresh_client_writes_nothing(db_url: str) -> None:
    client = wf.Client(db_url)  # construction reaches nothing
    with pytest.raises(wf.SerializationError):
        client.enqueue("clientjobs:add", object())
    with pytest.raises(wf.ConfigurationError):
        client.enqueue("clientjobs:add", 1, delay="soon")
    client.close()
    assert database_untouched(db_url)
    with pytest.raises(wf.ConfigurationError):
        wf.Client("mysql://nowhere/db")


def test_cancel_resume_send_and_list_through_a_client(db_url: str, code: WorkerCode) -> None:
    with wf.Client(db_url) as client, running_worker(code, db_url):
        handle = client.enqueue("clientjobs:chat", "c1", workflow_id="chat-1")
        assert client.get_event("chat-1", "ready", timeout=60) == "c1"
        client.cancel("chat-1", reason="support ticket 12")
        assert _wait_status(client, "chat-1", "CANCELLED") == "CANCELLED"
        assert client.get_workflow("chat-1").cancel_reason == "support ticket 12"
        with pytest.raises(wf.WorkflowCancelledError):
            handle.result(timeout=30)
        assert [w.workflow_id for w in client.list_workflows(status="CANCELLED")] == ["chat-1"]
        # resumed by a worker, not here: back on its queue, it continues from
        # its last finished call (the step is not run again)
        resumed = client.resume("chat-1")
        assert resumed.workflow_id == "chat-1"
        _wait_status(client, "chat-1", "ENQUEUED", "PENDING")
        assert client.get_event("chat-1", "ready", timeout=60) == "c1"
        client.send("chat-1", "go on", topic="go", idempotency_key="k1")
        client.send("chat-1", "ignored: same key", topic="go", idempotency_key="k1")
        assert resumed.result(timeout=60) == {"tag": "c1", "msg": "go on", "step_runs": 1}
        assert code.runs("c1") == 1
        steps = client.list_steps("chat-1")
        assert [(s.position, s.kind) for s in steps] == [
            (1, "step"),
            (2, "event"),
            (3, "recv"),
            (4, "event"),
        ]
        assert [w.workflow_id for w in client.list_workflows(name="chat")] == ["chat-1"]
        assert client.list_workflows(status="CANCELLED") == []


def test_two_clients_on_two_databases_in_one_process(db_url: str, tmp_path: Path) -> None:
    other_url = "sqlite:///" + str(tmp_path / "other.sqlite")
    wf.launch(database_url=other_url)  # and a launched wf beside them, on the other one
    with wf.Client(db_url) as a, wf.Client(other_url) as b:
        a.enqueue("clientjobs:add", 1, 1, workflow_id="same-id")
        b.enqueue("clientjobs:add", 2, 2, workflow_id="same-id")
        assert a.get_workflow("same-id").inputs["args"] == [1, 1]
        assert b.get_workflow("same-id").inputs["args"] == [2, 2]
        assert wf.get_workflow("same-id").inputs["args"] == [2, 2]
        a.cancel("same-id")
        assert a.get_workflow("same-id").status == "CANCELLED"
        assert b.get_workflow("same-id").status == "ENQUEUED"


def test_async_client(db_url: str, code: WorkerCode) -> None:
    async def main() -> dict[str, object]:
        seen: dict[str, object] = {}
        async with wf.AsyncClient(db_url) as client:
            added = await client.enqueue("clientjobs:add", 20, 22)
            seen["add"] = await added.result(timeout=60)
            seen["status"] = (await added.get_status()).status
            chat = await client.enqueue("clientjobs:chat", "a1", workflow_id="async-chat")
            seen["ready"] = await client.get_event("async-chat", "ready", timeout=60)

            # a wait for an event runs off the loop: other tasks go on meanwhile
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.05)
                    ticks += 1

            task = asyncio.create_task(ticker())
            seen["never"] = await client.get_event("async-chat", "never", timeout=1.0)
            task.cancel()
            seen["ticks"] = ticks
            await client.send("async-chat", "hi", topic="go")
            seen["chat"] = await chat.result(timeout=60)
            seen["steps"] = len(await client.list_steps("async-chat"))
            seen["listed"] = [w.workflow_id for w in await client.list_workflows(name="chat")]
            again = await client.retrieve("async-chat")
            seen["again"] = (await again.status()).status
            with pytest.raises(wf.WorkflowNotFoundError):
                await client.cancel("nope")
        return seen

    with running_worker(code, db_url):
        seen = asyncio.run(main())
    assert seen["add"] == 42 and seen["status"] == "SUCCESS"
    assert seen["ready"] == "a1" and seen["never"] is None
    assert isinstance(seen["ticks"], int) and seen["ticks"] >= 5
    assert seen["chat"] == {"tag": "a1", "msg": "hi", "step_runs": 1}
    assert seen["steps"] == 4 and seen["listed"] == ["async-chat"] and seen["again"] == "SUCCESS"


def test_partitions_debounce_duplicates_and_streams_through_a_client(
    db_url: str, code: WorkerCode
) -> None:
    with wf.Client(db_url) as client:
        # the queue options wf.Queue.enqueue takes, checked the same way: nothing written
        for bad in (
            {"on_duplicate": "ignore"},
            {"partition_key": ""},
            {"debounce_key": "k"},
            {"debounce_key": "k", "debounce": 1.0, "delay": 5},
        ):
            with pytest.raises(wf.ConfigurationError):
                client.enqueue("clientjobs:add", 1, 1, **bad)  # type: ignore[arg-type]
        assert client.list_workflows() == []
        tenant = client.enqueue("clientjobs:add", 1, 1, partition_key="t-1")
        # a burst with one debounce key: one workflow, run with the last call's arguments
        burst = [
            client.enqueue("clientjobs:add", n, 100, debounce_key="doc", debounce=0.5)
            for n in (1, 2, 3)
        ]
        assert len({h.workflow_id for h in burst}) == 1
        first = client.enqueue("clientjobs:add", 7, 7, dedup_id="o-1", delay=60)
        again = client.enqueue("clientjobs:add", 7, 7, dedup_id="o-1", on_duplicate="return")
        assert again.workflow_id == first.workflow_id
        streamed = client.enqueue("clientjobs:progress", 5, workflow_id="client-stream")
        with running_worker(code, db_url):
            assert tenant.result(timeout=60) == 2
            assert burst[0].result(timeout=60) == 103
            assert list(client.read_stream(streamed.workflow_id, "progress")) == [0, 1, 2, 3, 4]

            async def read_async() -> list[object]:
                async with wf.AsyncClient(db_url) as aclient:
                    return [v async for v in aclient.read_stream("client-stream", "progress")]

            assert asyncio.run(read_async()) == [0, 1, 2, 3, 4]
        assert client.get_workflow(tenant.workflow_id).partition_key == "t-1"
        assert code.runs("add-3-100") == 1 and code.runs("add-1-100") == 0
        client.cancel(first.workflow_id)


def test_executors_record_the_workflows_they_registered(db_url: str) -> None:
    """What `wf status` judges by: each executor's row lists the names it
    has registered, rewritten when that set grows (a module imported later)."""
    from wf import _root

    wf.launch(database_url=db_url)
    mine = _root.get().executor_id

    def names() -> list[str]:
        return next(e.workflows or [] for e in wf.list_executors() if e.executor_id == mine)

    late_name = f"clientjobs:late_{uuid.uuid4().hex[:8]}"  # the registry is per process
    assert late_name not in names()

    @wf.workflow(name=late_name)
    def late(a: int, b: int) -> int:
        return a + b

    _root.get()._beat()  # the next heartbeat, without waiting 5 s for it
    assert late_name in names()
    assert names() == sorted(names())
