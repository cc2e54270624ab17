"""Issue 17: a recorded error keeps what it was raised from (``causes``),
and a replay rebuilds that chain as ``__cause__`` links, so a workflow sees
the same exception on a replay as on its first run; on both backends."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa
import wf

from tests.helpers import _engine, raw_rows

INNER = ("builtins.ValueError", "inner")
OUTER = ("builtins.RuntimeError", "outer")


@wf.step(retries=0)
def explicit() -> None:
    raise RuntimeError("outer") from ValueError("inner")


@wf.step(retries=0)
def implicit() -> None:
    try:
        int("inner")
    except ValueError:
        raise RuntimeError("outer")  # noqa: B904 (the implicit context is the point)


@wf.step()
def after() -> str:
    return "after"


STEPS = {"explicit": explicit, "implicit": implicit}


@wf.workflow()
def fails(kind: str) -> None:
    STEPS[kind]()


@wf.workflow()
def catches(kind: str) -> dict[str, object]:
    """Returns what it saw of the step's error: a replay must see the same."""
    try:
        STEPS[kind]()
    except RuntimeError as e:
        cause = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
        seen: dict[str, object] = {"cause": [type(cause).__name__, str(cause)]}
    seen["next"] = after()
    return seen


@wf.workflow()
def parent(kind: str) -> None:
    fails(kind)


def _pair(info: wf.ErrorInfo) -> tuple[str, str]:
    return info.type, info.message


def _step_error(db_url: str, workflow_id: str) -> dict[str, Any]:
    """The error of the workflow's one recorded call, as stored."""
    (row,) = [r for r in raw_rows(db_url, "steps") if r["workflow_id"] == workflow_id]
    return json.loads(row["error"])  # type: ignore[no-any-return]


def _raises_with_cause(h: wf.WorkflowHandle) -> None:
    with pytest.raises(RuntimeError, match="^outer$") as caught:
        h.result(timeout=30)
    cause = caught.value.__cause__ or caught.value.__context__
    assert type(cause) is ValueError and "inner" in str(cause)


@pytest.mark.parametrize("kind", ["explicit", "implicit"])
def test_a_failed_step_records_its_causes_and_replays_them(launched: str, kind: str) -> None:
    wid = f"fails-{kind}"
    h = wf.start(fails, kind, workflow_id=wid)
    _raises_with_cause(h)  # the first run: the step's own exception

    stored = _step_error(launched, wid)
    assert (stored["type"], stored["message"]) == OUTER
    (cause,) = stored["causes"]
    assert cause["type"] == "builtins.ValueError" and "inner" in cause["message"]

    info = wf.get_workflow(wid)
    assert info.error is not None and _pair(info.error) == OUTER
    assert [c.type for c in info.error.causes] == ["builtins.ValueError"]
    (step,) = wf.list_steps(wid)
    assert step.error == info.error  # the workflow failed with the step's error

    # rebuilt from the record: the same error with the same __cause__
    again = wf.WorkflowHandle(wid)
    with pytest.raises(RuntimeError, match="^outer$") as caught:
        again.result(timeout=30)
    rebuilt = caught.value.__cause__
    assert type(rebuilt) is ValueError and (type(rebuilt).__name__, str(rebuilt)) == (
        "ValueError",
        cause["message"],
    )

    # a replay (restart copying the failed step) records the same error
    replayed = wf.restart(wid, from_step=2)
    _raises_with_cause(replayed)
    assert wf.get_workflow(replayed.workflow_id).error == info.error


@pytest.mark.parametrize("kind", ["explicit", "implicit"])
def test_a_workflow_catching_the_error_sees_the_same_cause_on_a_replay(
    launched: str, kind: str
) -> None:
    first = wf.start(catches, kind, workflow_id=f"catches-{kind}").result(timeout=30)
    assert first["cause"][0] == "ValueError" and "inner" in first["cause"][1]
    replayed = wf.restart(f"catches-{kind}", from_step=2).result(timeout=30)
    assert replayed == first


def test_a_parent_sees_its_childs_error_with_its_causes(launched: str) -> None:
    h = wf.start(parent, "explicit", workflow_id="parent-1")
    _raises_with_cause(h)
    info = wf.get_workflow("parent-1")
    assert info.error is not None and _pair(info.error) == OUTER
    assert [_pair(c) for c in info.error.causes] == [INNER]
    # replayed, the child's call is resolved from the child's recorded error
    replayed = wf.restart("parent-1", from_step=2)
    _raises_with_cause(replayed)
    assert wf.get_workflow(replayed.workflow_id).error == info.error


def test_an_error_recorded_without_causes_still_loads_and_replays(launched: str) -> None:
    wid = "old-format"
    with pytest.raises(RuntimeError):
        wf.start(fails, "explicit", workflow_id=wid).result(timeout=30)
    old = json.dumps({"type": "builtins.RuntimeError", "message": "outer", "args": ["outer"]})
    table = "steps" if launched.startswith("sqlite") else "wf.steps"
    eng = _engine(launched)
    try:
        with eng.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE {table} SET error = :e WHERE workflow_id = :w"),
                {"e": old, "w": wid},
            )
    finally:
        eng.dispose()
    (step,) = wf.list_steps(wid)
    assert step.error == wf.ErrorInfo(*OUTER) and step.error.causes == ()
    replayed = wf.restart(wid, from_step=2)
    with pytest.raises(RuntimeError, match="^outer$") as caught:
        replayed.result(timeout=30)
    assert caught.value.__cause__ is None
    error = wf.get_workflow(replayed.workflow_id).error
    assert error is not None and error.causes == ()
