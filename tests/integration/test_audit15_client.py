"""wf.Client / wf.AsyncClient, issue 15 audit: a malformed recorded name is
refused before anything is written (one check, shared with ``wf start
--no-import``), and a positive ``timeout=`` really ends the enqueued
workflow CANCELLED with the deadline's reason, in a real worker."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import wf

from tests.apps.client_worker import WorkerCode, running_worker, worker_code
from tests.cli.conftest import database_untouched

MALFORMED = ["nocolon", "a:", ":f", "path/to.py:fn", "jobs.py:fn", "pkg\\mod:fn", "a: b", " :f"]


@pytest.mark.parametrize("name", MALFORMED)
def test_client_refuses_a_malformed_name_and_writes_nothing(db_url: str, name: str) -> None:
    with (
        wf.Client(db_url) as client,
        pytest.raises(wf.ConfigurationError, match="MODULE:FUNCTION|file path|spaces"),
    ):
        client.enqueue(name, 1)
    assert database_untouched(db_url)  # refused before the database was reached


def test_async_client_refuses_a_malformed_name_and_writes_nothing(db_url: str) -> None:
    async def main() -> list[str]:
        refused = []
        async with wf.AsyncClient(db_url) as client:
            for name in MALFORMED:
                with pytest.raises(wf.ConfigurationError):
                    await client.enqueue(name, 1)
                refused.append(name)
        return refused

    assert asyncio.run(main()) == MALFORMED
    assert database_untouched(db_url)


def test_a_well_formed_name_is_still_enqueued(db_url: str) -> None:
    with wf.Client(db_url) as client:
        for name in ("m:f", "pkg.mod:Cls.method", "__main__x:f"):
            assert client.enqueue(name).get_status().status == "ENQUEUED"


def test_an_enqueue_timeout_ends_the_workflow_cancelled_at_its_deadline(
    db_url: str, tmp_path: Path
) -> None:
    code: WorkerCode = worker_code(tmp_path)
    with wf.Client(db_url) as client, running_worker(code, db_url):
        # chat waits up to 120 s for a message that never comes
        handle = client.enqueue("clientjobs:chat", "t1", workflow_id="timed", timeout=1.5)
        assert client.get_event("timed", "ready", timeout=60) == "t1"  # a worker started it
        started = time.monotonic()
        with pytest.raises(wf.WorkflowCancelledError):
            handle.result(timeout=30)
        assert time.monotonic() - started < 20
        info = client.get_workflow("timed")
        assert info.status == "CANCELLED"
        assert info.cancel_reason is not None and "deadline" in info.cancel_reason, info
        assert info.deadline is not None and info.started_at is not None
        assert 1000 <= (info.deadline - info.started_at).total_seconds() * 1000 <= 3000


def test_gc_older_than_zero_or_0s_collects_every_ended_workflow_and_off_is_refused(
    db_url: str,
) -> None:
    wf.launch(database_url=db_url)

    @wf.workflow(name="tests.audit15:one")
    def one() -> int:
        return 1

    for i in range(3):
        with wf.set_workflow_id(f"z{i}"):
            one()
    assert wf.gc(older_than="0s") == 3 and wf.count_workflows() == 0
    with wf.set_workflow_id("z9"):
        one()
    assert wf.gc(older_than=0) == 1
    for bad in ("off", "none", "-1", -1):
        with pytest.raises(wf.ConfigurationError, match="older_than"):
            wf.gc(older_than=bad)
