"""Workflows for tests/reliability/test_bad_input.py: the hostile and the
unlucky. Steps append their name to WF_TEST_MARKERS when it is set."""

from __future__ import annotations

from typing import Any

import wf

from tests.apps.comm_common import mark


@wf.workflow()
def echo(x: Any = None) -> Any:
    return x


def plain(x: Any = None) -> Any:
    """Not a workflow."""
    return x


@wf.step()
def plain_step(x: Any = None) -> Any:
    return x


@wf.workflow()
def returns_unserializable() -> Any:
    return object()


@wf.step(retries=0)
def step_returning_unserializable() -> Any:
    mark("step_returning_unserializable")
    return object()


@wf.workflow()
def uses_bad_step() -> Any:
    return step_returning_unserializable()


@wf.workflow()
def survives_bad_step() -> str:
    try:
        step_returning_unserializable()
    except wf.SerializationError as e:
        return f"caught: {type(e).__name__}"
    return "not raised"


@wf.workflow()
def bomb(depth: int = 0) -> int:
    """Calls itself for ever: each call is a child workflow."""
    return bomb(depth + 1)


def _down(n: int) -> int:
    return _down(n + 1) + 1


@wf.workflow()
def python_recursion() -> int:
    """Plain Python recursion inside a workflow body."""
    return _down(0)


@wf.workflow()
def talk(topic: str, key: str) -> Any:
    """Sends itself a message on ``topic``, receives it, publishes it under ``key``."""
    wf.send(wf.workflow_id(), {"topic": topic}, topic=topic)
    got = wf.recv(topic=topic, timeout=10)
    wf.set_event(key, got)
    return got


UNDECODABLE = b"caf\xe9.txt".decode("utf-8", "surrogateescape")  # as os.listdir gives it


@wf.workflow()
def raises_undecodable() -> None:
    raise ValueError(f"cannot open {UNDECODABLE}")


@wf.step(retries=0)
def step_raising_undecodable() -> None:
    raise ValueError(f"cannot open {UNDECODABLE}")


@wf.workflow()
def survives_undecodable_step() -> str:
    try:
        step_raising_undecodable()
    except ValueError as e:
        return "caught: " + str(e).encode("utf-8", "backslashreplace").decode()
    return "not raised"


@wf.workflow()
def logs_undecodable() -> str:
    wf.logger.warning("cannot open %s", UNDECODABLE)
    return "ok"
