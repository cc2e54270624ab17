"""Workflows for tests/integration/test_messages.py: wf.send / wf.recv and
wf.set_event / wf.get_event, run in their own processes by tests.apps.driver
(and in the test process for the in-process cases)."""

from __future__ import annotations

import time
from typing import Any

import wf

from tests.apps.comm_common import kill_point, mark


@wf.step()
def clock() -> float:
    return time.time()


@wf.workflow()
def fifo_receiver(n_a: int, n_b: int, n_default: int) -> dict[str, Any]:
    """Reads topic "a" first, then "b", then the default topic; then checks
    that nothing else is left and that a recv on an empty topic times out."""
    got_a = [wf.recv("a", timeout=30) for _ in range(n_a)]
    got_b = [wf.recv("b", timeout=30) for _ in range(n_b)]
    got_default = [wf.recv(timeout=30) for _ in range(n_default)]
    left = [wf.recv("a", timeout=0.1), wf.recv("b", timeout=0.1), wf.recv(timeout=0.1)]
    t0 = clock()
    nothing = wf.recv("never-sent", timeout=0.5)
    t1 = clock()
    return {
        "a": got_a,
        "b": got_b,
        "default": got_default,
        "left": left,
        "timeout_value": nothing,
        "timeout_waited": t1 - t0,
    }


@wf.workflow()
def recv_crash() -> list[Any]:
    """Receives one message, dies (WF_TEST_KILL_AT=after_recv1), and on
    recovery must get the same first message back and the next one after it."""
    first = wf.recv("t", timeout=30)
    mark(f"got {first}")
    kill_point("after_recv1")
    second = wf.recv("t", timeout=30)
    mark(f"got {second}")
    return [first, second]


@wf.workflow()
def drain(topic: str, timeout: float) -> list[Any]:
    """Every message on ``topic`` until a recv times out."""
    out: list[Any] = []
    while True:
        m = wf.recv(topic, timeout=timeout)
        if m is None:
            return out
        out.append(m)


@wf.workflow()
def send_twice(destination: str) -> str:
    wf.send(destination, "s1", topic="t")
    kill_point("after_send1")
    wf.send(destination, "s2", topic="t")
    return "sent"


@wf.workflow()
def publisher() -> str:
    """Publishes progress 1, waits for "go", publishes 2, 3 and then "final"."""
    wf.set_event("progress", 1)
    go = wf.recv("go", timeout=30)
    wf.set_event("progress", 2)
    wf.set_event("progress", 3)
    wf.set_event("final", {"go": go})
    return "published"


@wf.workflow()
def event_reader(workflow_id: str) -> list[Any]:
    """get_event from inside a workflow (recorded like a step)."""
    return [
        wf.get_event(workflow_id, "progress", timeout=30),
        wf.get_event(workflow_id, "absent", timeout=0.2),
    ]
