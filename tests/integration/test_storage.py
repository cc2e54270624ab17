"""SPEC §4.7 against the databases: what cannot be stored is rejected with
SerializationError before anything is recorded; what is stored is JSON."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal
from typing import Any

import pytest
import wf

from tests.helpers import raw_rows

RAN: list[str] = []


class Opaque:
    pass


@wf.workflow()
def takes(value: Any) -> str:
    RAN.append("takes")
    return "ran"


@wf.step(retries=0)
def returns_opaque() -> Any:
    RAN.append("returns_opaque")
    return Opaque()


@wf.workflow()
def bad_step_output() -> str:
    returns_opaque()
    return "unreachable"


@wf.step(retries=0)
def echo(value: Any) -> Any:
    return value


@wf.workflow()
def bad_step_input() -> str:
    echo(Opaque())
    return "unreachable"


@wf.workflow()
def bad_output() -> Any:
    return Opaque()


@wf.workflow()
def rich(value: Any) -> Any:
    wf.set_event("ev", {"when": value["when"]})
    return {"echo": echo(value), "pair": (1, 2)}


@pytest.fixture(autouse=True)
def _clear() -> None:
    RAN.clear()


@pytest.mark.parametrize(
    "bad",
    [Opaque(), lambda: None, {"nested": [object()]}, {object(): 1}],
    ids=["instance", "lambda", "nested", "key"],
)
def test_unserializable_input_is_rejected_before_anything_is_recorded(
    launched: str, bad: Any
) -> None:
    with pytest.raises(wf.SerializationError):
        takes(bad)
    with pytest.raises(wf.SerializationError):
        wf.start(takes, bad, workflow_id="never-recorded")
    with wf.set_workflow_id("never-either"), pytest.raises(wf.SerializationError):
        takes(value=bad)
    assert RAN == []
    assert wf.list_workflows(limit=None) == []
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow("never-recorded")


def test_self_referencing_input_is_rejected(launched: str) -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(wf.SerializationError):
        takes(loop)
    assert wf.list_workflows(limit=None) == []


def test_step_returning_an_unserializable_value_raises_serialization_error(launched: str) -> None:
    with wf.set_workflow_id("bad-step-out"), pytest.raises(wf.SerializationError):
        bad_step_output()
    info = wf.get_workflow("bad-step-out")
    assert info.status == wf.Status.ERROR
    assert info.error is not None and info.error.type.endswith("SerializationError")


def test_step_given_an_unserializable_argument_raises_serialization_error(launched: str) -> None:
    with wf.set_workflow_id("bad-step-in"), pytest.raises(wf.SerializationError):
        bad_step_input()
    assert wf.get_workflow("bad-step-in").status == wf.Status.ERROR


def test_workflow_returning_an_unserializable_value_fails_cleanly(launched: str) -> None:
    with wf.set_workflow_id("bad-out"), pytest.raises(wf.SerializationError):
        bad_output()
    info = wf.get_workflow("bad-out")
    assert info.status == wf.Status.ERROR
    assert info.error is not None and info.error.type.endswith("SerializationError")


def test_everything_stored_is_json(launched: str) -> None:
    value = {
        "when": dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "id": uuid.uuid4(),
        "amount": Decimal("1.25"),
        "raw": b"\x00\xff",
        "pair": (1, 2),
        "keys": {1: "one"},
    }
    out = wf.start(rich, value, workflow_id="json-1").result(timeout=30)
    assert out == {"echo": value, "pair": (1, 2)}
    assert wf.get_workflow("json-1").inputs["args"] == [value]
    assert wf.get_event("json-1", "ev", timeout=5) == {"when": value["when"]}

    stored = 0
    for table, columns in (
        ("workflows", ("inputs", "output", "error")),
        ("steps", ("output", "error")),
        ("events", ("value",)),
    ):
        for row in raw_rows(launched, table):
            for col in columns:
                text = row[col]
                if text is None:
                    continue
                assert isinstance(text, str), (table, col, type(text))
                json.loads(text)  # plain JSON text, never a pickle
                stored += 1
    assert stored >= 4
