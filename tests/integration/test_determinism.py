"""SPEC §4.4 (non-determinism is detected by name at each position) and §4.5
(replay fidelity: a workflow sees recorded, deserialized values the first
time too)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.helpers import count, error_line, marker_lines, run_app

APP = "tests.apps.crashy"


# -- non-determinism -------------------------------------------------------------------


def test_different_step_name_on_replay_raises_non_determinism_error(
    db_url: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    first = run_app(
        APP,
        "start",
        "drift-1",
        "drifting",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "after_first"},
    )
    assert first.killed, first.describe()

    # the code changed while the workflow was in flight: position 1 now calls another step
    second = run_app(APP, "recover", "drift-1", db_url=db_url, env={**env, "WF_TEST_VARIANT": "b"})
    assert error_line(second).startswith("NonDeterminismError"), second.describe()

    lines = marker_lines(markers)
    assert count(lines, "original_step start") == 1
    assert count(lines, "renamed_step start") == 0  # the mismatching call never ran
    assert count(lines, "step_two start") == 0

    wf.configure(database_url=db_url)
    info = wf.get_workflow("drift-1")
    assert info.status == wf.Status.ERROR
    assert info.error is not None
    assert info.error.type.endswith("NonDeterminismError")
    assert "original_step" in info.error.message and "renamed_step" in info.error.message
    with pytest.raises(wf.NonDeterminismError):
        wf.retrieve("drift-1").result(timeout=10)


def test_same_code_on_replay_is_fine(db_url: str, tmp_path: Path) -> None:
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    first = run_app(
        APP,
        "start",
        "drift-2",
        "drifting",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "after_first"},
    )
    assert first.killed, first.describe()
    second = run_app(APP, "recover", "drift-2", db_url=db_url, env=env)
    assert "RESULT " in second.stdout, second.describe()
    assert count(marker_lines(markers), "original_step start") == 1


CALL_LOG: list[str] = []
MODE = {"variant": "a"}


@wf.step()
def step_a() -> str:
    CALL_LOG.append("a")
    return "a"


@wf.step()
def step_b() -> str:
    CALL_LOG.append("b")
    return "b"


@wf.transaction()
def txn_a() -> str:
    CALL_LOG.append("txn_a")
    return "t"


@wf.workflow()
def switchable() -> list[str]:
    out = [step_a()]
    if MODE["variant"] == "a":
        out.append(txn_a())
    else:
        out.append(step_b())
    out.append(step_a())
    return out


def test_restart_with_changed_code_detects_the_mismatch_in_process(launched: str) -> None:
    """wf.restart(from_step=3) reuses positions 1-2; with the code now calling
    another function at position 2, the replay fails instead of returning the
    other function's recorded output."""
    CALL_LOG.clear()
    MODE["variant"] = "a"
    try:
        assert wf.start(switchable, workflow_id="switch-1").result(timeout=30) == ["a", "t", "a"]
        MODE["variant"] = "b"
        h = wf.restart("switch-1", from_step=3)
        with pytest.raises(wf.NonDeterminismError):
            h.result(timeout=30)
        assert wf.get_workflow(h.workflow_id).status == wf.Status.ERROR
        assert "b" not in CALL_LOG
    finally:
        MODE["variant"] = "a"


# -- replay fidelity -------------------------------------------------------------------


@dataclasses.dataclass
class Invoice:
    number: int
    issued: dt.date
    total: Decimal
    lines: list[tuple[str, int]]


class Tagged(dict[str, Any]):
    """A dict subclass: stored as a plain dict."""


class Listy(list[int]):
    pass


KEPT: dict[str, Any] = {}
SEEN: dict[str, Any] = {}


@wf.step()
def produce_values() -> dict[str, Any]:
    mutable = [1, 2]
    KEPT["mutable"] = mutable
    return {
        "tuple": (1, (2, 3)),
        "when": dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC),
        "day": dt.date(2024, 3, 4),
        "id": uuid.UUID("00000000-0000-0000-0000-000000000001"),
        "money": Decimal("10.50"),
        "raw": b"\x00\x01",
        "invoice": Invoice(7, dt.date(2024, 1, 1), Decimal("3.30"), [("pen", 2)]),
        "tagged": Tagged(x=1),
        "listy": Listy([3]),
        "set": {1, 2},
        "int_keys": {1: "one"},
        "mutable": mutable,
    }


@wf.step()
def produce_tuple() -> tuple[int, str]:
    return (1, "x")


@wf.step()
def produce_dict_subclass() -> Tagged:
    return Tagged(a=1)


@wf.transaction()
def transaction_tuple() -> tuple[int, int]:
    return (4, 5)


@wf.workflow()
def fidelity() -> str:
    v = produce_values()
    SEEN["values"] = v
    SEEN["tuple"] = produce_tuple()
    SEEN["dict_subclass"] = produce_dict_subclass()
    SEEN["txn_tuple"] = transaction_tuple()
    return "ok"


def _check_seen() -> None:
    v = SEEN["values"]
    assert type(v["tuple"]) is tuple and v["tuple"] == (1, (2, 3)) and type(v["tuple"][1]) is tuple
    assert (
        v["when"] == dt.datetime(2024, 3, 4, 5, 6, 7, tzinfo=dt.UTC)
        and v["when"].tzinfo is not None
    )
    assert type(v["day"]) is dt.date
    assert v["id"] == uuid.UUID("00000000-0000-0000-0000-000000000001")
    assert v["money"] == Decimal("10.50") and str(v["money"]) == "10.50"
    assert v["raw"] == b"\x00\x01"
    assert v["invoice"] == Invoice(7, dt.date(2024, 1, 1), Decimal("3.30"), [("pen", 2)])
    assert type(v["invoice"].lines[0]) is tuple
    assert type(v["tagged"]) is dict and v["tagged"] == {"x": 1}
    assert type(v["listy"]) is list and v["listy"] == [3]
    assert v["set"] == {1, 2}
    assert v["int_keys"] == {1: "one"}
    assert SEEN["tuple"] == (1, "x") and type(SEEN["tuple"]) is tuple
    assert type(SEEN["dict_subclass"]) is dict and SEEN["dict_subclass"] == {"a": 1}
    assert SEEN["txn_tuple"] == (4, 5) and type(SEEN["txn_tuple"]) is tuple


def test_first_run_sees_the_recorded_deserialized_values(launched: str) -> None:
    SEEN.clear()
    assert wf.start(fidelity, workflow_id="fid-1").result(timeout=30) == "ok"
    _check_seen()
    # the step's own object is not handed to the workflow: it got the decoded copy
    assert SEEN["values"]["mutable"] == [1, 2]
    assert SEEN["values"]["mutable"] is not KEPT["mutable"]


def test_replay_sees_the_same_values_as_the_first_run(launched: str) -> None:
    SEEN.clear()
    assert wf.start(fidelity, workflow_id="fid-2").result(timeout=30) == "ok"
    first = dict(SEEN)
    SEEN.clear()
    # a restart that reuses every recorded call replays them all from the record
    h = wf.restart("fid-2", from_step=5)
    assert h.result(timeout=30) == "ok"
    _check_seen()
    assert SEEN == first


@wf.workflow()
def returns_subclass() -> Any:
    return Tagged(z=(1, 2))


def test_workflow_result_is_the_deserialized_form(launched: str) -> None:
    """What the caller gets the first time is what a later caller of the same
    ID gets: the recorded form."""
    out = returns_subclass()
    assert type(out) is dict and out == {"z": (1, 2)} and type(out["z"]) is tuple
