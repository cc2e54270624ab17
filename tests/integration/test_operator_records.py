"""What operators read (issue 13, SPEC §5's new fields), through the public
API on both backends: why a workflow was cancelled, when it started running,
what a restart copied, each call's attempts and detail, children listed and
counted, events, executors with what they serve, declared schedules, and
reads that never create a database."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
import wf

from tests.helpers import wait_for

ATTEMPTS: dict[str, int] = {}


@wf.step(retries=3, interval=0.01)
def flaky(key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} fails")
    return "ok"


@wf.workflow()
def retried(key: str) -> str:
    return flaky(key)


@wf.step()
def plain(x: int) -> int:
    return x + 1


@wf.workflow()
def kid(x: int) -> int:
    return plain(x)


@wf.workflow()
def family(n: int) -> list[int]:
    handles = [wf.start(kid, i) for i in range(n)]
    return [h.result() for h in handles]


@wf.workflow()
def chatty() -> str:
    wf.set_event("progress", 50)
    wf.set_event("stage", "done")
    got = wf.recv("inbox", timeout=0.01)
    wf.send(wf.workflow_id(), "note to self", topic="self")
    return str(got)


@wf.workflow()
def sleeper(seconds: float) -> None:
    wf.sleep(seconds)
    plain(1)


@wf.workflow()
def sleepy_parent() -> None:
    h = wf.start(sleeper, 30)
    h.result()


def test_cancel_records_its_reason_and_children_say_whose(launched: str) -> None:
    h = wf.start(sleepy_parent)
    child_id = f"{h.workflow_id}-1"
    wait_for(lambda: _status(child_id) == "PENDING", timeout=10)
    wf.cancel(h.workflow_id, reason="operator alice: bad input")
    wait_for(lambda: _status(child_id) == "CANCELLED", timeout=10)
    assert wf.get_workflow(h.workflow_id).cancel_reason == "operator alice: bad input"
    assert wf.get_workflow(child_id).cancel_reason == f"parent {h.workflow_id} was cancelled"
    wf.resume(h.workflow_id, detach=True)
    assert wf.get_workflow(h.workflow_id).cancel_reason is None  # a resume clears it
    wf.cancel(h.workflow_id)
    assert wf.get_workflow(h.workflow_id).cancel_reason == "wf.cancel"


@wf.workflow()
def too_slow() -> None:
    wf.sleep(5)
    plain(1)


def test_a_timeout_records_why(launched: str) -> None:
    h = wf.start(too_slow, timeout=0.3)
    with pytest.raises(wf.WorkflowCancelledError):
        h.result(timeout=20)
    info = wf.get_workflow(h.workflow_id)
    assert info.status == "CANCELLED"
    assert info.cancel_reason is not None and "timeout" in info.cancel_reason


def test_started_at_and_retried_attempts(launched: str) -> None:
    key = uuid.uuid4().hex
    h = wf.start(retried, key)
    assert h.result(timeout=20) == "ok"
    info = wf.get_workflow(h.workflow_id)
    assert info.started_at is not None and info.created_at <= info.started_at
    (step,) = wf.list_steps(h.workflow_id)
    assert step.attempts == 3 and ATTEMPTS[key] == 3
    h2 = wf.start(kid, 1)
    h2.result(timeout=20)
    assert [s.attempts for s in wf.list_steps(h2.workflow_id)] == [1]


def test_children_are_named_listed_and_counted(launched: str) -> None:
    h = wf.start(family, 3)
    assert h.result(timeout=30) == [1, 2, 3]
    steps = wf.list_steps(h.workflow_id)
    kids = [s.child_workflow_id for s in steps if s.kind == "child"]
    assert kids == [f"{h.workflow_id}-{i}" for i in (1, 2, 3)]
    listed = wf.list_workflows(parent=h.workflow_id, limit=None)
    assert sorted(w.workflow_id for w in listed) == sorted(kids)
    assert all(w.parent_workflow_id == h.workflow_id for w in listed)
    assert wf.count_workflows(parent=h.workflow_id) == 3
    top = wf.list_workflows(top_level=True, limit=None, child_counts=True)
    assert [w.workflow_id for w in top] == [h.workflow_id]
    assert top[0].child_count == 3
    assert wf.count_workflows() == 4 and wf.count_workflows(top_level=True) == 1
    assert wf.count_workflows(status="SUCCESS", name="kid") == 3
    with pytest.raises(wf.ConfigurationError):
        wf.count_workflows(queue="  ")


def test_communication_calls_record_their_detail_and_events_list(launched: str) -> None:
    h = wf.start(chatty)
    h.result(timeout=20)
    detail = {(s.name, s.detail) for s in wf.list_steps(h.workflow_id)}
    assert ("set_event", "key progress") in detail
    assert ("recv", "topic inbox") in detail
    assert ("send", f"to {h.workflow_id} topic self") in detail
    events = {e.key: e.value for e in wf.list_events(h.workflow_id)}
    assert events == {"progress": 50, "stage": "done"}
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.list_events("no-such-workflow")


def test_restart_records_its_lineage(launched: str) -> None:
    h = wf.start(family, 2)
    h.result(timeout=30)
    again = wf.restart(h.workflow_id, from_step=2)
    again.result(timeout=30)
    info = wf.get_workflow(again.workflow_id)
    assert info.forked_from == h.workflow_id and info.forked_from_step == 2
    assert wf.get_workflow(h.workflow_id).forked_from is None


def test_restart_from_a_position_past_the_recorded_calls_is_refused(launched: str) -> None:
    h = wf.start(family, 2)
    h.result(timeout=30)
    n = len(wf.list_steps(h.workflow_id))
    before = len(wf.list_workflows())
    with pytest.raises(
        wf.ConfigurationError, match=rf"has {n} recorded step\(s\); use 1\.\.{n + 1}"
    ):
        wf.restart(h.workflow_id, from_step=n + 2)
    with pytest.raises(wf.ConfigurationError, match="counts from 1"):
        wf.restart(h.workflow_id, from_step=0)
    assert len(wf.list_workflows()) == before  # nothing written
    wf.restart(h.workflow_id, from_step=n + 1).result(timeout=30)  # the last position is fine


def test_executors_say_what_they_serve(launched: str) -> None:
    mine = [e for e in wf.list_executors() if e.pid == os.getpid()]
    assert len(mine) == 1 and mine[0].alive
    assert mine[0].queues is not None  # an app process serves its declared queues only


def test_send_from_a_tool_says_when_a_key_was_used(launched: str) -> None:
    from wf._support import send_message

    h = wf.start(sleeper, 0.2)
    assert send_message(h.workflow_id, "hi", idempotency_key="k1") is True
    assert send_message(h.workflow_id, "hi", idempotency_key="k1") is False
    assert send_message(h.workflow_id, "hi") is True
    h.result(timeout=20)


# -- reads never create a database ---------------------------------------------------------


def test_reads_never_create_a_sqlite_file(tmp_path: Path) -> None:
    missing = tmp_path / "typo" / "wf.sqlite"
    wf.configure(database_url=f"sqlite:///{missing}", create=False)
    with pytest.raises(wf.NoDatabaseError, match="no wf database at"):
        wf.list_workflows()
    assert not missing.parent.exists()
    here = tmp_path / "wf.sqlite"
    wf.configure(database_url=f"sqlite:///{here}", create=False)
    with pytest.raises(wf.NoDatabaseError):
        wf.count_workflows()
    with pytest.raises(wf.NoDatabaseError):
        wf.schema_status(f"sqlite:///{here}")
    assert not here.exists()
    # an empty file (not a wf database) stays as it was
    here.write_bytes(b"")
    with pytest.raises(wf.NoDatabaseError):
        wf.get_workflow("x")
    assert here.read_bytes() == b""


def test_reads_never_create_a_postgres_database_or_schema(
    pg_admin_url: str, pg_database: str
) -> None:
    name = f"wf_missing_{uuid.uuid4().hex[:10]}"
    url = pg_admin_url.rsplit("/", 1)[0] + "/" + name
    wf.configure(database_url=url, create=False)
    try:
        with pytest.raises(wf.NoDatabaseError, match="no wf database at"):
            wf.list_workflows()
        with pytest.raises(wf.NoDatabaseError):
            wf.schema_status(url)
        assert not _pg_has_database(pg_admin_url, name)
    finally:
        _pg_drop(pg_admin_url, name)
    # a database without the wf schema: not created either
    wf.configure(database_url=pg_database, create=False)
    with pytest.raises(wf.NoDatabaseError):
        wf.cancel("x")
    engine = sa.create_engine(pg_database)
    with engine.connect() as conn:
        schemas = conn.exec_driver_sql(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = 'wf'"
        ).scalar()
    engine.dispose()
    assert schemas == 0


def test_a_missing_role_is_not_called_a_missing_database(pg_admin_url: str) -> None:
    url = pg_admin_url.replace("postgres@", "nouser_wf@", 1)
    if url == pg_admin_url:
        pytest.skip("the admin URL names no user")
    wf.configure(database_url=url, create=False)
    with pytest.raises(wf.DatabaseUnreachableError) as e:
        wf.list_workflows()
    assert not isinstance(e.value, wf.NoDatabaseError)
    assert "cannot be created" not in str(e.value)
    assert "nouser_wf" in str(e.value)


def _status(workflow_id: str) -> str | None:
    try:
        return wf.get_workflow(workflow_id).status
    except wf.WorkflowNotFoundError:
        return None


def _pg_has_database(admin_url: str, name: str) -> bool:
    engine = sa.create_engine(admin_url)
    try:
        with engine.connect() as conn:
            return bool(
                conn.exec_driver_sql(
                    "SELECT 1 FROM pg_database WHERE datname = %(n)s", {"n": name}
                ).scalar()
            )
    finally:
        engine.dispose()


def _pg_drop(admin_url: str, name: str) -> None:
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
    finally:
        engine.dispose()
    time.sleep(0)


def test_a_blank_queue_name_is_refused_before_anything_is_written(launched: str) -> None:
    for blank in ("", "  "):
        with pytest.raises(wf.ConfigurationError, match="queue name"):
            wf.start(kid, 1, queue=blank)
        with pytest.raises(wf.ConfigurationError, match="a queue needs a name"):
            wf.Queue(blank)
    assert wf.count_workflows() == 0


def test_a_read_only_sqlite_url_to_a_missing_file_is_no_database(tmp_path: Path) -> None:
    missing = tmp_path / "nothing.sqlite"
    wf.configure(database_url=f"sqlite:///{missing}?mode=ro", create=False)
    with pytest.raises(wf.NoDatabaseError):
        wf.list_workflows()
    assert not missing.exists()
