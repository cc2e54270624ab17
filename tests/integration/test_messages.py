"""SPEC §3 messages and events, across real processes: wf.send / wf.recv are
FIFO per topic and deliver each message once (also across a SIGKILL and the
replay that follows); idempotency keys deduplicate sends; a send inside a
workflow happens exactly once; set_event's last value wins and get_event
waits from outside a workflow. The apps are in tests/apps/comm_messages.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import comm_messages
from tests.helpers import (
    count,
    finish,
    marker_lines,
    outcome,
    raw_rows,
    run_app,
    spawn_app,
    wait_for,
)

APP = "tests.apps.comm_messages"


def _recorded(workflow_id: str) -> bool:
    try:
        wf.get_workflow(workflow_id)
    except wf.WorkflowNotFoundError:
        return False
    return True


def _wait_recorded(workflow_id: str, proc: Any) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the app ended early: {finish(proc).describe()}")
        return _recorded(workflow_id)

    wait_for(ready, timeout=60, what=f"workflow {workflow_id} recorded")


def _messages(db_url: str) -> list[tuple[str, str, str]]:
    """Undelivered messages as (destination, topic, message JSON), oldest first."""
    rows = sorted(raw_rows(db_url, "messages"), key=lambda r: int(r["message_id"]))
    return [(r["destination_id"], r["topic"], r["message"]) for r in rows]


def _kinds(workflow_id: str) -> list[str]:
    return [s.kind for s in wf.list_steps(workflow_id)]


def test_messages_from_another_process_are_fifo_per_topic_and_delivered_once(
    db_url: str, observe: str
) -> None:
    n_a, n_b, n_default = 12, 6, 3
    proc = spawn_app(
        APP, "start", "fifo", "fifo_receiver", f"[{n_a}, {n_b}, {n_default}]", db_url=db_url
    )
    _wait_recorded("fifo", proc)
    # interleaved across topics; the receiver reads topic "a" first, so the
    # "b" and default-topic messages wait while "a" is being drained
    for i in range(n_a):
        wf.send("fifo", f"a{i}", topic="a")
        if i < n_b:
            wf.send("fifo", {"b": i}, topic="b")
        if i < n_default:
            wf.send("fifo", [i, "default"])
    out = outcome(finish(proc))

    assert out["a"] == [f"a{i}" for i in range(n_a)]
    assert out["b"] == [{"b": i} for i in range(n_b)]
    assert out["default"] == [[i, "default"] for i in range(n_default)]
    assert out["left"] == [None, None, None]  # each message was delivered once
    # recv's timeout returns None, and only after the timeout
    assert out["timeout_value"] is None
    assert out["timeout_waited"] >= 0.5 - 0.01
    assert _messages(db_url) == []
    assert _kinds("fifo") == ["recv"] * (n_a + n_b + n_default + 3) + ["step", "recv", "step"]
    received = [s.output for s in wf.list_steps("fifo") if s.kind == "recv"]
    assert received[:n_a] == out["a"]


def test_recv_is_not_consumed_twice_when_the_receiver_is_killed(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    proc = spawn_app(
        APP,
        "start",
        "rc",
        "recv_crash",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "after_recv1"},
    )
    _wait_recorded("rc", proc)
    wf.send("rc", "m1", topic="t")
    wf.send("rc", "m2", topic="t")
    first = finish(proc)
    assert first.killed, first.describe()
    assert marker_lines(markers) == ["got m1", "killed at after_recv1"]
    # the recv of m1 was recorded in the same commit that consumed it
    steps = wf.list_steps("rc")
    assert [(s.kind, s.output) for s in steps] == [("recv", "m1")]
    assert _messages(db_url) == [("rc", "t", '"m2"')]

    second = run_app(APP, "recover", "rc", db_url=db_url, env=env)
    assert outcome(second) == ["m1", "m2"]
    lines = marker_lines(markers)
    assert count(lines, "got m1") == 2  # the replay saw the recorded m1 again
    assert count(lines, "got m2") == 1
    assert _messages(db_url) == []
    assert [(s.kind, s.output) for s in wf.list_steps("rc")] == [("recv", "m1"), ("recv", "m2")]


def test_send_with_idempotency_key_delivers_once(launched: str) -> None:
    h = wf.start(comm_messages.drain, "k", 1.0)
    wid = h.workflow_id
    wf.send(wid, "x", topic="k", idempotency_key="key-1")
    wf.send(wid, "x", topic="k", idempotency_key="key-1")
    wf.send(wid, "y", topic="k", idempotency_key="key-2")
    wf.send(wid, "x", topic="k", idempotency_key="key-1")
    wf.send(wid, "z", topic="k")
    wf.send(wid, "z", topic="k")  # no key: a new message each time
    assert h.result(timeout=30) == ["x", "y", "z", "z"]
    # a key stays used after its message was delivered
    wf.send(wid, "x", topic="k", idempotency_key="key-1")
    assert _messages(launched) == []
    # keys are per destination
    other = wf.start(comm_messages.drain, "k", 0.5)
    wf.send(other.workflow_id, "x", topic="k", idempotency_key="key-1")
    assert other.result(timeout=30) == ["x"]


def test_send_to_an_unknown_workflow_from_outside_is_rejected(observe: str) -> None:
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.send("no-such-workflow", "hello")


def test_recv_and_set_event_only_inside_a_workflow(observe: str) -> None:
    with pytest.raises(wf.WfError):
        wf.recv(timeout=0)
    with pytest.raises(wf.WfError):
        wf.set_event("k", 1)


def test_send_inside_a_workflow_is_exactly_once_across_a_crash(db_url: str, observe: str) -> None:
    # the destination exists (a send to an unknown ID fails, inside a workflow
    # as outside), parked on a queue nothing serves until the end
    wf.Queue("sinks").enqueue(comm_messages.drain, "t", 0.2, workflow_id="sink")
    first = run_app(
        APP,
        "start",
        "sender",
        "send_twice",
        '["sink"]',
        db_url=db_url,
        env={"WF_TEST_KILL_AT": "after_send1"},
    )
    assert first.killed, first.describe()
    assert _messages(db_url) == [("sink", "t", '"s1"')]
    second = run_app(APP, "recover", "sender", db_url=db_url)
    assert outcome(second) == "sent"
    # the replayed send of s1 did not send it again
    assert _messages(db_url) == [("sink", "t", '"s1"'), ("sink", "t", '"s2"')]
    assert _kinds("sender") == ["send", "send"]
    # and the destination, once it runs, receives both, once
    wf.shutdown()
    wf.launch(database_url=db_url, queues=["sinks"])
    assert wf.retrieve("sink").result(timeout=30) == ["s1", "s2"]
    assert _messages(db_url) == []


def test_events_last_value_wins_and_get_event_waits_from_outside(db_url: str, observe: str) -> None:
    proc = spawn_app(APP, "start", "pub", "publisher", db_url=db_url)
    # waits (from outside any workflow, in another process) until the value is published
    assert wf.get_event("pub", "progress", timeout=60) == 1
    # "final" comes only after we send "go": get_event must wait for it
    sender = threading.Timer(0.3, lambda: wf.send("pub", "now", topic="go"))
    t0 = time.monotonic()
    sender.start()
    try:
        assert wf.get_event("pub", "final", timeout=30) == {"go": "now"}
    finally:
        sender.join()
    assert time.monotonic() - t0 >= 0.3
    assert outcome(finish(proc)) == "published"
    assert wf.get_event("pub", "progress", timeout=0) == 3  # the last value wins
    t0 = time.monotonic()
    assert wf.get_event("pub", "never-set", timeout=0.3) is None
    assert time.monotonic() - t0 >= 0.3 - 0.01
    assert _kinds("pub") == ["event", "recv", "event", "event", "event"]
    from wf._serialization import loads

    assert {r["key"]: loads(r["value"]) for r in raw_rows(db_url, "events")} == {
        "progress": 3,
        "final": {"go": "now"},
    }


def test_get_event_inside_a_workflow_is_recorded(launched: str) -> None:
    pub = wf.start(comm_messages.publisher)
    assert wf.get_event(pub.workflow_id, "progress", timeout=30) == 1
    with wf.set_workflow_id("reader"):
        assert comm_messages.event_reader(pub.workflow_id) == [1, None]
    assert [(s.kind, s.output) for s in wf.list_steps("reader")] == [("event", 1), ("event", None)]
    wf.send(pub.workflow_id, "go", topic="go")
    assert pub.result(timeout=30) == "published"
    # the same ID again replays the recorded values, not the current ones
    with wf.set_workflow_id("reader"):
        assert comm_messages.event_reader(pub.workflow_id) == [1, None]


# -- async workflows: the *_async variants are the same recorded calls ---------------------


@wf.workflow()
async def async_partner(peer: str) -> dict[str, Any]:
    await wf.set_event_async("phase", "waiting")
    got = await wf.recv_async("ping", timeout=30)
    await wf.sleep_async(0.01)
    await wf.send_async(peer, {"pong": got}, topic="pong")
    await wf.set_event_async("phase", "done")
    return {"got": got}


@wf.workflow()
async def async_pinger(peer: str) -> Any:
    await wf.send_async(peer, "hello", topic="ping")
    seen = await wf.get_event_async(peer, "phase", timeout=30)
    reply = await wf.recv_async("pong", timeout=30)
    return {"reply": reply, "seen": seen}


def test_async_messages_and_events_are_recorded_once(launched: str) -> None:
    import asyncio

    async def main() -> tuple[Any, Any]:
        with wf.set_workflow_id("a-partner"):
            partner = asyncio.create_task(async_partner("a-pinger"))
            await asyncio.sleep(0)
        # the pinger's first call sends to the partner: it must be recorded
        # by then (a send to an unknown workflow fails)
        while True:
            try:
                wf.retrieve("a-partner")
                break
            except wf.WorkflowNotFoundError:
                await asyncio.sleep(0.01)
        with wf.set_workflow_id("a-pinger"):
            pinger = await async_pinger("a-partner")
        return await partner, pinger

    partner, pinger = asyncio.run(main())
    assert partner == {"got": "hello"}
    assert pinger["reply"] == {"pong": "hello"} and pinger["seen"] in ("waiting", "done")
    assert _kinds("a-partner") == ["event", "recv", "sleep", "send", "event"]
    assert _kinds("a-pinger") == ["send", "event", "recv"]
    assert _messages(launched) == [], "a message was left or sent twice"

    # a rerun from the fourth call replays the recv (no new message is taken),
    # sends the pong once more, to the same peer, and reaches the same result
    wf.send("a-partner", "unread", topic="ping")
    again = wf.restart("a-partner", from_step=4, workflow_id="a-partner-2")
    assert again.result(timeout=30) == {"got": "hello"}
    left = _messages(launched)
    assert ("a-partner", "ping", '"unread"') in left
    assert sum(1 for d, t, _ in left if d == "a-pinger" and t == "pong") == 1
