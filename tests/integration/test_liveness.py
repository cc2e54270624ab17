"""Who counts as dead. A stale heartbeat proves death only once this
executor has been connected for a whole stale period since the last outage
any of its calls saw, so an outage that stopped everyone's heartbeats (even
one that began during a recovery pass) makes no one look dead."""

from __future__ import annotations

import time

import pytest
from wf import _root as _executor
from wf._errors import DatabaseUnreachableError
from wf._sysdb import ExecutorRow, SystemDatabase
from wf._worker.recovery import STALE_AFTER


def _stale_row(name: str) -> dict[str, ExecutorRow]:
    now = time.time() * 1000
    stale = now - (STALE_AFTER + 5) * 1000
    return {name: ExecutorRow(name, "another-host", 1, int(stale), int(stale))}


def test_a_stale_heartbeat_counts_only_after_a_connected_stale_period(launched: str) -> None:
    ex = _executor.get()
    rows = _stale_row("other")
    ex.connected_since = time.time() - STALE_AFTER - 1
    ex.sysdb.last_outage = 0.0
    assert ex.is_dead("other", rows)
    # an outage seen just now by any call: everyone's heartbeat may be stale
    ex.sysdb.last_outage = time.time()
    assert not ex.is_dead("other", rows)
    assert ex.is_dead("other", rows, trust_stale=True)  # wf recover asks explicitly
    # a row removed at a clean stop is dead at once, outage or not
    assert ex.is_dead("gone", rows)


def test_a_failed_connection_records_the_outage_time() -> None:
    # nothing listens on port 1: a real refused connection, retried briefly
    db = SystemDatabase("postgresql://postgres@127.0.0.1:1/nowhere", outage_timeout=0.3)
    try:
        before = time.time()
        with pytest.raises(DatabaseUnreachableError):
            db.list_executors()
        assert db.last_outage >= before
    finally:
        db.dispose()


def test_an_executor_starting_during_a_recovery_pass_is_not_robbed(
    launched: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An executor writes its heartbeat, then starts workflows. If it does both
    between a recovery pass's two reads (heartbeats, in-flight owners), the
    pass must still see it alive: it reads the owners first."""
    from wf._core import encode_inputs

    from tests.apps.upgrades import flow  # any registered workflow will do

    ex = _executor.get()
    real = ex.sysdb.list_executors

    def then_a_newcomer_starts() -> list[ExecutorRow]:
        rows = real()
        if ex.sysdb.get_workflow("newcomer-1") is None:
            ex.sysdb.heartbeat("newcomer", "another-host", 1)
            ex.sysdb.insert_workflow(
                workflow_id="newcomer-1",
                status="PENDING",
                name=flow.wf_spec.name,
                inputs=encode_inputs([1], {}),
                executor_id="newcomer",
            )
        return rows

    monkeypatch.setattr(ex.sysdb, "list_executors", then_a_newcomer_starts)
    ex.recover()
    monkeypatch.setattr(ex.sysdb, "list_executors", real)
    ex.recover()  # and a pass that sees it from the start leaves it too
    info = ex.sysdb.get_workflow("newcomer-1")
    assert info is not None and (info.status, info.executor_id) == ("PENDING", "newcomer")
