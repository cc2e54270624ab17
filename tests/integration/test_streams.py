"""Streams (SPEC §3.2), across real processes on both backends: a reader in
another process sees every value once, in order, while the writer runs; a
writer SIGKILLed mid-stream and recovered leaves no gap and no duplicate;
async writers and readers; reading an ended or unknown workflow; replays,
re-runs, dry replays and restarts write no duplicate rows; deletes take the
rows along. The apps are in tests/apps/streams_app.py."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import streams_app
from tests.helpers import (
    count,
    finish,
    marker_lines,
    outcome,
    raw_rows,
    run_app,
    spawn_app,
    wait_for,
)

APP = "tests.apps.streams_app"


def _wait_recorded(workflow_id: str, proc: Any) -> None:
    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the app ended early: {finish(proc).describe()}")
        try:
            wf.get_workflow(workflow_id)
        except wf.WorkflowNotFoundError:
            return False
        return True

    wait_for(ready, timeout=60, what=f"workflow {workflow_id} recorded")


def _rows(db_url: str, workflow_id: str, key: str = "out") -> list[dict[str, Any]]:
    rows = [
        r
        for r in raw_rows(db_url, "streams")
        if r["workflow_id"] == workflow_id and r["key"] == key
    ]
    return sorted(rows, key=lambda r: int(r["position"]))


class _Reader(threading.Thread):
    """``wf.read_stream`` in a thread of the test process (another process than the writer)."""

    def __init__(self, workflow_id: str, key: str = "out") -> None:
        super().__init__(daemon=True)
        self.workflow_id, self.key = workflow_id, key
        self.values: list[Any] = []
        self.closed: bool | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            reader = wf.read_stream(self.workflow_id, self.key)
            for v in reader:
                self.values.append(v)
            self.closed = reader.closed
        except BaseException as e:  # noqa: BLE001 - reported by result()
            self.error = e

    def result(self, timeout: float = 60) -> list[Any]:
        self.join(timeout)
        assert not self.is_alive(), f"the reader never ended; read {self.values}"
        if self.error is not None:
            raise self.error
        return self.values


def _squares(n: int) -> list[dict[str, int]]:
    return [{"i": i, "square": i * i} for i in range(n)]


def test_a_reader_in_another_process_gets_every_value_once_in_order(
    db_url: str, observe: str, tmp_path: Path
) -> None:
    n = 30
    markers = tmp_path / "markers.txt"
    proc = spawn_app(
        APP,
        "start",
        "prog",
        "producer",
        f"[{n}, 0.01]",
        db_url=db_url,
        env={"WF_TEST_MARKERS": str(markers)},
    )
    _wait_recorded("prog", proc)
    reader = _Reader("prog")
    reader.start()
    assert outcome(finish(proc)) == n
    assert reader.result() == _squares(n)
    assert reader.closed is True
    rows = _rows(db_url, "prog")
    assert [int(r["closed"]) for r in rows] == [0] * n + [1]
    # each value sits at the position of the call that wrote it (after its step)
    assert [int(r["position"]) for r in rows] == [2 * i + 1 for i in range(n)] + [2 * n]
    steps = wf.list_steps("prog")
    assert [(s.kind, s.name) for s in steps[:2]] == [
        ("step", "work"),
        ("stream", "write_stream:out"),
    ]
    assert (steps[-1].kind, steps[-1].name) == ("stream", "close_stream:out")
    # a second reader, once it is all over, reads the same and stops
    assert list(wf.read_stream("prog", "out")) == _squares(n)


@pytest.mark.parametrize("kill_at", ["after_write5", "before_write5"])
def test_a_writer_killed_mid_stream_and_recovered_loses_and_repeats_nothing(
    db_url: str, observe: str, tmp_path: Path, kill_at: str
) -> None:
    n = 12
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    proc = spawn_app(
        APP,
        "start",
        "crash",
        "producer",
        f"[{n}]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": kill_at},
    )
    _wait_recorded("crash", proc)
    reader = _Reader("crash")
    reader.start()
    first = finish(proc)
    assert first.killed, first.describe()
    written = 6 if kill_at == "after_write5" else 5
    assert [int(r["closed"]) for r in _rows(db_url, "crash")] == [0] * written
    assert reader.is_alive()  # the workflow is PENDING and the stream open: it waits

    second = run_app(APP, "recover", "crash", db_url=db_url, env=env)
    assert outcome(second) == n
    assert reader.result() == _squares(n)
    assert reader.closed is True
    rows = _rows(db_url, "crash")
    assert [int(r["closed"]) for r in rows] == [0] * n + [1]
    assert len({int(r["position"]) for r in rows}) == n + 1
    # steps that completed before the kill did not run again
    lines = marker_lines(markers)
    assert [count(lines, f"work {i}") for i in range(n)] == [1] * n
    kinds = [s.kind for s in wf.list_steps("crash")]
    assert kinds == ["step", "stream"] * n + ["stream"]


def test_async_writers_started_together_land_in_call_order_and_read_async(
    db_url: str, observe: str
) -> None:
    n = 25
    proc = spawn_app(APP, "start", "aprod", "async_producer", f"[{n}]", db_url=db_url)
    _wait_recorded("aprod", proc)

    async def read() -> list[Any]:
        return [v async for v in wf.read_stream_async("aprod", "out")]

    values = asyncio.run(read())
    assert outcome(finish(proc)) == n
    assert values == [*range(n), "last"]
    rows = _rows(db_url, "aprod")
    assert [int(r["position"]) for r in rows] == list(range(n + 2))
    # they were written one after another in position order (each waited for
    # the one before: a reader paging by position meets no gap filled later)
    written = [int(r["created_at"]) for r in rows]
    assert written == sorted(written)


def test_reading_an_ended_unclosed_stream_returns_its_values_and_stops(
    db_url: str, observe: str
) -> None:
    assert outcome(run_app(APP, "start", "unc", "unclosed", "[4]", db_url=db_url)) == 4
    reader = wf.read_stream("unc", "out")
    assert list(reader) == [0, 1, 2, 3]
    assert reader.closed is False
    assert list(wf.read_stream("unc", "out", follow=False)) == [0, 1, 2, 3]
    # a key never written: empty, and it stops (the workflow has ended)
    assert list(wf.read_stream("unc", "nothing")) == []
    entries = list(wf.read_stream("unc", "out").entries())
    assert [(e.index, e.value) for e in entries] == [(0, 0), (1, 1), (2, 2), (3, 3)]
    with pytest.raises(wf.WorkflowNotFoundError, match="no-such"):
        wf.read_stream("no-such", "out")

    async def read_unknown() -> list[Any]:
        return [v async for v in wf.read_stream_async("no-such", "out")]

    with pytest.raises(wf.WorkflowNotFoundError):
        asyncio.run(read_unknown())


def test_a_waiting_reader_is_woken_by_writes_from_another_process(
    db_url: str, backend: str, observe: str, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    proc = spawn_app(
        APP, "start", "gated", "gated", "[3, 4]", db_url=db_url, env={"WF_TEST_GATE": str(gate)}
    )
    _wait_recorded("gated", proc)
    wait_for(lambda: len(_rows(db_url, "gated")) == 3, what="the first three values")
    # follow=False: what is there now, the stream still open
    now = wf.read_stream("gated", "out", follow=False)
    assert list(now) == [0, 1, 2] and now.closed is False
    reader = _Reader("gated")
    reader.start()
    if backend == "postgres":
        # the waiting reader asked to be notified of this stream's writes
        key = wf._sysdb.wake_key("s", "gated", "out")

        def registered() -> bool:
            return any(r["key"] == key for r in raw_rows(db_url, "wake_interest"))

        wait_for(registered, what="the reader's wake-up registration")
    gate.touch()
    assert outcome(finish(proc)) == 7
    assert reader.result() == list(range(7))
    assert reader.closed is True


def test_replays_reruns_and_restarts_write_no_duplicate_rows(launched: str) -> None:
    db_url = launched
    with wf.set_workflow_id("rp"):
        assert streams_app.producer(5) == 5
    before = _rows(db_url, "rp")
    assert len(before) == 6
    # the same ID again: the recorded result, nothing written
    with wf.set_workflow_id("rp"):
        assert streams_app.producer(5) == 5
    info = wf.replay("rp")  # a dry replay writes nothing either
    assert info.workflow_id == "rp"
    assert _rows(db_url, "rp") == before
    # a restart from the 4th value's write copies the values before it; the
    # rest are written by its own run, once each
    handle = wf.restart("rp", from_step=8)
    assert handle.result(timeout=30) == 5
    assert list(wf.read_stream(handle.workflow_id, "out")) == _squares(5)
    assert len(_rows(db_url, handle.workflow_id)) == 6
    assert _rows(db_url, "rp") == before
    # deleting a workflow deletes its streams
    wf.delete(["rp"])
    assert _rows(db_url, "rp") == []


def test_closed_streams_refuse_writes_and_bad_values_write_nothing(launched: str) -> None:
    db_url = launched
    with wf.set_workflow_id("two"):
        out = streams_app.two_streams(3)
    assert out.startswith("refused: stream 'a' of workflow two is closed")
    assert list(wf.read_stream("two", "a")) == [0, 1, 2]
    assert list(wf.read_stream("two", "b")) == [0, -1, -2]  # ended: stops unclosed
    calls = [
        (s.name, s.error.type.rpartition(".")[2] if s.error else None) for s in wf.list_steps("two")
    ]
    assert calls[-3:] == [
        ("close_stream:a", None),
        ("close_stream:a", None),
        ("write_stream:a", "WfError"),
    ]
    assert len(_rows(db_url, "two", "a")) == 4  # three values and one close

    with wf.set_workflow_id("bad"):
        assert streams_app.bad_value() == "done"
    # the unserializable value took no position and wrote nothing
    assert [s.name for s in wf.list_steps("bad")] == ["write_stream:out", "close_stream:out"]
    assert list(wf.read_stream("bad", "out")) == ["ok"]

    with wf.set_workflow_id("body"):
        assert streams_app.reads_in_body("two").startswith("refused: wf.read_stream() cannot")
    with pytest.raises(wf.WfError, match="only available in a workflow"):
        wf.write_stream("out", 1)


def test_the_sample_app_streams_progress_to_a_reader_in_another_process(db_url: str) -> None:
    import subprocess
    import sys

    from tests.helpers import REPO, child_env

    env = child_env(db_url, {"STREAM_PROGRESS_CHUNK_SECONDS": "0.01"})
    proc = subprocess.run(
        [sys.executable, "-m", "sample_apps.stream_progress", "demo", "4"],
        env=env,
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[:4] == [
        " 25%  chunk 1/4  (100 items)",
        " 50%  chunk 2/4  (201 items)",
        " 75%  chunk 3/4  (303 items)",
        "100%  chunk 4/4  (406 items)",
    ]
    assert lines[4].endswith("{'chunks': 4, 'items': 406}")


def test_a_stream_write_notifies_a_registered_listener_on_postgres(pg_database: str) -> None:
    """The trigger's payload is the key readers wait on (wake_key("s", ID, KEY))."""
    import queue

    from wf._sysdb import start_listener, wake_key

    wf.launch(database_url=pg_database)
    payloads: queue.Queue[str] = queue.Queue()
    registered: queue.Queue[str] = queue.Queue()
    listener = start_listener(pg_database, payloads.put, lambda: None, registered.put)
    key = wake_key("s", "nt", "out")
    try:
        assert listener.ready.wait(30)
        listener.want(key)
        assert registered.get(timeout=30) == key
        with wf.set_workflow_id("nt"):
            assert streams_app.unclosed(2) == 2
        seen: list[str] = []
        while key not in seen:
            seen.append(payloads.get(timeout=30))  # queue.Empty fails the test
    finally:
        listener.stop()
        listener.join(2)
