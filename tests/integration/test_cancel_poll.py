"""The executor's cancel poll (SystemDatabase.cancelled_among): of every run in
this process, which were cancelled elsewhere. It is asked about thousands of IDs
at once while a recovery runs (Postgres binds them as one array, SQLite in
chunks of IN lists): the answer must be exactly the cancelled ones, on both
backends."""

from __future__ import annotations

from wf._sysdb import SystemDatabase


def test_cancelled_among_thousands_of_ids_names_exactly_the_cancelled(db: SystemDatabase) -> None:
    ids = [f"w{i:05d}" for i in range(1_200)]
    for wid in ids:
        assert db.insert_workflow(
            workflow_id=wid, status="PENDING", name="t:w", inputs="[[], {}]", executor_id="e1"
        )
    cancelled = {ids[0], ids[499], ids[500], ids[1_199]}  # either side of a chunk's edge
    for wid in cancelled:
        assert db.cancel_workflow(wid, "test")
    asked = [*ids, "no-such-workflow", 'it\'s "quoted"']
    assert sorted(db.cancelled_among(asked)) == sorted(cancelled)
    assert db.cancelled_among(ids[1:499]) == []
    assert db.cancelled_among([]) == []
