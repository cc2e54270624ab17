"""wf.delete, wf.gc and wf.export_workflows / wf.import_workflows on both
backends: what a delete removes (every row keyed by the workflow, its
children), that a reused ID starts fresh (DBOS #769), refusals that delete
nothing, collection by age / status / keep in batches, and the retention
setting."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import wf
from wf import _root
from wf._sysdb import retention as sysdb_retention

from tests.helpers import sqlalchemy_url, wait_for

RAN: list[str] = []


@wf.step()
def note(text: str) -> str:
    RAN.append(text)
    wf.logger.info("note %s", text)
    return text.upper()


@wf.workflow()
def child_wf(text: str) -> str:
    return note("child " + text)


@wf.workflow()
def first(text: str) -> str:
    wf.set_event("k", text)
    out = note(text)
    child_wf(text)
    return out


@wf.workflow()
def second(text: str) -> str:
    return "second:" + note(text)


@wf.workflow()
def waits() -> object:
    return wf.recv(timeout=60)


@pytest.fixture(autouse=True)
def _clear() -> Iterator[None]:
    RAN.clear()
    yield


def _engine(url: str) -> Any:
    import sqlalchemy as sa
    from sqlalchemy.pool import NullPool

    return sa.create_engine(sqlalchemy_url(url), poolclass=NullPool)


def _sql(url: str, statement: str, **params: Any) -> list[Any]:
    import sqlalchemy as sa

    s = "wf." if url.startswith("postgresql") else ""
    eng = _engine(url)
    try:
        with eng.begin() as conn:
            res = conn.execute(sa.text(statement.replace("{s}", s)), params)
            return list(res) if res.returns_rows else []
    finally:
        eng.dispose()


def _rows_of(url: str, wid: str) -> dict[str, int]:
    """How many rows of each table are keyed by ``wid``."""
    out = {}
    for table, col in (
        ("workflows", "workflow_id"),
        ("steps", "workflow_id"),
        ("logs", "workflow_id"),
        ("events", "workflow_id"),
        ("messages", "destination_id"),
        ("message_keys", "destination_id"),
    ):
        out[table] = _sql(url, f"SELECT COUNT(*) FROM {{s}}{table} WHERE {col} = :w", w=wid)[0][0]
    return out


def _age(url: str, wid: str, seconds: float, created_offset: float = 0.0) -> None:
    """Make ``wid`` look ``seconds`` old (its last change; created that much
    plus ``created_offset`` ago)."""
    now = int(__import__("time").time() * 1000)
    _sql(
        url,
        "UPDATE {s}workflows SET updated_at = :u, created_at = :c WHERE workflow_id = :w",
        u=now - int(seconds * 1000),
        c=now - int((seconds + created_offset) * 1000),
        w=wid,
    )


def _run(fn: Any, wid: str, *args: Any) -> Any:
    with wf.set_workflow_id(wid):
        return fn(*args)


def test_delete_removes_every_row_and_the_children(launched: str) -> None:
    _run(first, "X", "a")
    wf.send("X", "late", idempotency_key="k1")  # waiting for nobody, with its key
    kid = next(w.workflow_id for w in wf.list_workflows(parent="X"))
    before = _rows_of(launched, "X")
    assert before["steps"] and before["logs"] and before["events"] and before["messages"]
    assert _rows_of(launched, kid)["steps"] == 1
    # a delivered message leaves its idempotency key behind
    h = wf.start(waits, workflow_id="R")
    wf.send("R", "hi", idempotency_key="k2")
    assert h.result(timeout=10) == "hi"
    assert _rows_of(launched, "R")["message_keys"] == 1

    assert wf.delete(["X", "R"]) == ["X", "R", kid]
    for wid in ("X", kid, "R"):
        assert set(_rows_of(launched, wid).values()) == {0}, wid
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow("X")


def test_a_reused_id_after_delete_starts_fresh(launched: str) -> None:
    # DBOS #769: steps left behind by a delete would be replayed by the new run
    assert _run(first, "X", "old") == "OLD"
    assert RAN == ["old", "child old"]
    with pytest.raises(wf.WorkflowConflictError):
        _run(second, "X", "new")  # the ID is taken: another function is a conflict
    wf.delete(["X"])
    assert _run(first, "X", "new") == "NEW"  # same code, other args: runs again
    assert RAN[2:] == ["new", "child new"]
    assert wf.get_event("X", "k", timeout=0) == "new"
    wf.delete(["X"])
    assert wf.get_event("X", "k", timeout=0) is None
    assert set(_rows_of(launched, "X").values()) == {0}
    assert _run(second, "X", "other") == "second:OTHER"  # other code under the old ID
    assert RAN[-1] == "other"
    assert len(wf.list_steps("X")) == 1
    assert [r.message for r in wf.list_logs("X")] == ["note other"]


def test_delete_refuses_a_pending_workflow_unless_forced(launched: str) -> None:
    h = wf.start(waits, workflow_id="W")
    wait_for(lambda: wf.get_workflow("W").status == "PENDING", what="W running")
    _run(first, "done", "x")
    with pytest.raises(wf.WorkflowActiveError, match="W is PENDING"):
        wf.delete(["done", "W"])
    # nothing deleted, not even the ended one named in the same call
    assert wf.get_workflow("done").status == "SUCCESS"
    assert wf.get_workflow("W").status == "PENDING"

    assert wf.delete(["W"], force=True) == ["W"]
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow("W")
    with pytest.raises(wf.WfError):
        h.result(timeout=10)  # the run was cancelled, then its record went


def test_delete_refuses_an_ended_parent_with_a_child_in_flight(launched: str) -> None:
    _run(first, "P", "x")
    kid = next(w.workflow_id for w in wf.list_workflows(parent="P"))
    _sql(launched, "UPDATE {s}workflows SET status = 'ENQUEUED' WHERE workflow_id = :w", w=kid)
    with pytest.raises(wf.WorkflowActiveError, match=f"{kid} is ENQUEUED"):
        wf.delete("P")
    assert _rows_of(launched, "P")["workflows"] == 1
    assert wf.delete("P", force=True) == ["P", kid]


def test_delete_of_an_unknown_id_deletes_nothing(launched: str) -> None:
    _run(second, "known", "x")
    with pytest.raises(wf.WorkflowNotFoundError, match="nope"):
        wf.delete(["known", "nope"])
    assert wf.get_workflow("known").status == "SUCCESS"


def test_gc_by_age_status_and_keep(launched: str) -> None:
    for i in range(4):
        _run(second, f"ok{i}", str(i))
        _age(launched, f"ok{i}", 7200 + i)  # ok0 the newest
    _run(first, "fam", "f")  # a parent with a child: both old
    kid = next(w.workflow_id for w in wf.list_workflows(parent="fam"))
    _age(launched, "fam", 9000)
    _age(launched, kid, 9000)
    _run(second, "fresh", "n")  # too young
    _sql(launched, "UPDATE {s}workflows SET status = 'ERROR' WHERE workflow_id = 'ok3'")
    h = wf.start(waits, workflow_id="live")  # in flight, however old it looks
    wait_for(lambda: wf.get_workflow("live").status == "PENDING")
    _age(launched, "live", 99999)

    assert wf.gc(older_than=3600, statuses=["ERROR"]) == 1
    assert {w.workflow_id for w in wf.list_workflows(limit=None)} == {
        "ok0", "ok1", "ok2", "fam", kid, "fresh", "live"
    }  # fmt: skip
    # keep the newest 2 ended top-level ones (fresh, ok0); children go with
    # their parent and never count
    assert wf.gc(older_than=3600, keep=2) == 4  # ok1, ok2, fam and its child
    assert {w.workflow_id for w in wf.list_workflows(limit=None)} == {"ok0", "fresh", "live"}
    assert wf.gc(older_than=3600) == 1  # ok0
    assert wf.gc(older_than=3600) == 0
    assert {w.workflow_id for w in wf.list_workflows(limit=None)} == {"fresh", "live"}
    wf.send("live", "go")
    assert h.result(timeout=10) == "go"


def test_gc_keeps_a_child_of_a_kept_parent_and_a_tree_in_flight(launched: str) -> None:
    _run(first, "young", "y")
    young_kid = next(w.workflow_id for w in wf.list_workflows(parent="young"))
    _age(launched, young_kid, 9000)  # an old child of a young parent
    _run(first, "old", "o")
    old_kid = next(w.workflow_id for w in wf.list_workflows(parent="old"))
    _age(launched, "old", 9000)
    _sql(launched, "UPDATE {s}workflows SET status = 'PENDING' WHERE workflow_id = :w", w=old_kid)
    assert wf.gc(older_than=3600) == 0
    assert {w.workflow_id for w in wf.list_workflows(limit=None)} >= {
        "young",
        young_kid,
        "old",
        old_kid,
    }
    _sql(launched, "UPDATE {s}workflows SET status = 'SUCCESS' WHERE workflow_id = :w", w=old_kid)
    assert wf.gc(older_than=3600) == 2


def test_gc_walks_batches_past_trees_it_keeps(launched: str) -> None:
    for i in range(7):
        _run(second, f"b{i}", str(i))
        _age(launched, f"b{i}", 7200, created_offset=10 - i)
    _sql(launched, "UPDATE {s}workflows SET status = 'ENQUEUED' WHERE workflow_id = 'b2'")
    db = _root.client()
    n = sysdb_retention.collect(db, None, cutoff_ms=_now_ms() - 3_600_000, batch=2)
    assert n == 6
    assert [w.workflow_id for w in wf.list_workflows(limit=None)] == ["b2"]


def test_a_paced_collection_pauses_between_batches_and_stops(launched: str) -> None:
    for i in range(5):
        _run(second, f"p{i}", str(i))
        _age(launched, f"p{i}", 7200, created_offset=10 - i)
    db = _root.client()
    pauses: list[float] = []
    cutoff = _now_ms() - 3_600_000
    n = sysdb_retention.collect(db, None, cutoff_ms=cutoff, batch=2, pace=1.0, wait=pauses.append)
    assert n == 5 and len(pauses) == 2 and all(p >= 0 for p in pauses)  # 2 full batches, then 1
    for i in range(5):
        _run(second, f"q{i}", str(i))
        _age(launched, f"q{i}", 7200, created_offset=10 - i)
    asked: list[int] = []

    def stop() -> bool:
        asked.append(1)
        return len(asked) > 1

    stopped = sysdb_retention.collect(db, None, cutoff_ms=cutoff, batch=2, stop=stop)
    assert stopped == 2  # one batch, then the stop was noticed
    assert wf.count_workflows() == 3


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def test_gc_refuses_bad_arguments(launched: str) -> None:
    _run(second, "x", "x")
    for bad in (dict(older_than=-1), dict(older_than="soon"), dict(older_than=1, keep=-1)):
        with pytest.raises(wf.ConfigurationError):
            wf.gc(**bad)  # type: ignore[arg-type]
    with pytest.raises(wf.ConfigurationError, match="only ended"):
        wf.gc(older_than=0, statuses=["PENDING"])
    assert wf.get_workflow("x").status == "SUCCESS"


def test_gc_while_workflows_run(launched: str) -> None:
    """Collection next to a running workload: both finish, nothing running is touched."""
    for i in range(30):
        _run(second, f"old{i}", str(i))
        _age(launched, f"old{i}", 7200)
    errors: list[BaseException] = []

    def workload() -> None:
        try:
            for i in range(20):
                _run(first, f"new{i}", str(i))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=workload)
    t.start()
    deleted = wf.gc(older_than=3600)
    t.join(60)
    assert not errors
    assert deleted == 30
    assert wf.count_workflows(top_level=True) == 20


def test_export_import_round_trip_and_refusals(db_url: str) -> None:
    wf.launch(database_url=db_url)
    _run(first, "E", "e")
    records = wf.export_workflows(["E"])
    assert len(records) == 1 and len(records[0]["children"]) == 1
    steps = wf.list_steps("E")
    info = wf.get_workflow("E")
    logs = [(r.step, r.message, r.level) for r in wf.list_logs("E")]
    with pytest.raises(wf.WorkflowConflictError, match="'E' already exists"):
        wf.import_workflows(records)
    wf.delete("E")
    assert wf.import_workflows(records) == [
        "E",
        records[0]["children"][0]["workflow"]["workflow_id"],
    ]
    assert wf.get_workflow("E") == info
    assert wf.list_steps("E") == steps
    assert [(r.step, r.message, r.level) for r in wf.list_logs("E")] == logs
    assert wf.get_event("E", "k", timeout=0) == "e"

    # an in-flight workflow does not move
    wf.start(waits, workflow_id="W")
    wait_for(lambda: wf.get_workflow("W").status == "PENDING")
    with pytest.raises(wf.WorkflowActiveError):
        wf.export_workflows(["W"])
    forged = [
        {
            **records[0],
            "workflow": {**records[0]["workflow"], "workflow_id": "F", "status": "PENDING"},
            "children": [],
        }
    ]
    with pytest.raises(wf.WorkflowActiveError):
        wf.import_workflows(forged)
    with pytest.raises(wf.InvalidExportError):
        wf.import_workflows([{"format": "nope"}])
    with pytest.raises(wf.InvalidExportError, match="must be an integer"):
        bad = {**records[0]["workflow"], "workflow_id": "G", "created_at": "yesterday"}
        wf.import_workflows([{**records[0], "workflow": bad, "children": []}])
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow("F")
    wf.send("W", 1)


def test_retention_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    from wf import _config

    monkeypatch.setenv("WF_RETENTION", "30d")
    assert _config.resolve().retention == 30 * 86400
    monkeypatch.setenv("WF_RETENTION", "off")
    assert _config.resolve().retention is None
    monkeypatch.delenv("WF_RETENTION")
    (tmp_path / "cwd" / "pyproject.toml").write_text('[tool.wf]\nretention = "12h"\n')
    assert _config.resolve().retention == 12 * 3600
    for bad in ("30 days", "-1d", "0", "d"):
        monkeypatch.setenv("WF_RETENTION", bad)
        with pytest.raises(wf.ConfigurationError, match="WF_RETENTION / retention"):
            _config.resolve()


@wf.transaction()
def bump(label: str) -> str:
    return label + "!"


@wf.workflow()
def with_tx(label: str) -> str:
    return bump(label)


def test_delete_and_gc_reach_a_separate_application_database(db_url: str, tmp_path: Any) -> None:
    app_url = "sqlite:///" + str(tmp_path / "app.sqlite")
    wf.launch(database_url=db_url, app_database_url=app_url)
    _run(with_tx, "T1", "a")
    _run(with_tx, "T2", "b")
    outputs = "SELECT COUNT(*) FROM transaction_outputs WHERE workflow_id = :w"
    assert _sql(app_url, outputs, w="T1")[0][0] == 1
    assert wf.delete("T1") == ["T1"]
    assert _sql(app_url, outputs, w="T1")[0][0] == 0
    _age(db_url, "T2", 7200)
    assert wf.gc(older_than=3600) == 1
    assert _sql(app_url, outputs, w="T2")[0][0] == 0
    assert _run(with_tx, "T1", "again") == "again!"  # a fresh run, not the old output
