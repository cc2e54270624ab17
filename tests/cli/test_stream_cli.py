"""wf stream ID KEY: the values so far (table, -o json, -o jsonl), --follow
until the stream is closed (a reader process woken by a writer process),
and bad input (unknown workflow, a format it has not). Both backends; the
writer is tests/apps/streams_app.py's ``gated``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.cli.conftest import Wf
from tests.helpers import raw_rows, wait_for

GATED = "tests.apps.streams_app:gated"


def _jsonl(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def _wait_values(db_url: str, wid: str, n: int, proc: subprocess.Popen[str]) -> None:
    """Until ``n`` values are in (read from the table: cheaper than a wf process per look)."""

    def there() -> bool:
        assert proc.poll() is None, "the writer ended early"
        try:
            rows = raw_rows(db_url, "streams")
        except Exception:  # noqa: BLE001 - no schema yet
            return False
        return sum(1 for r in rows if r["workflow_id"] == wid) >= n

    wait_for(there, timeout=60, interval=0.05, what=f"{n} values of {wid}")


def test_wf_stream_shows_the_values_so_far_and_follows_to_the_close(
    wf_cli: Wf, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    env = {"WF_TEST_GATE": str(gate)}
    writer = wf_cli.spawn("start", "--id", "g", GATED, "3", "2", env=env)
    assert wf_cli.db_url is not None
    _wait_values(wf_cli.db_url, "g", 3, writer)

    res = wf_cli("stream", "g", "out").ok()
    lines = res.out.splitlines()
    assert lines[0].split() == ["INDEX", "VALUE", "WRITTEN"]
    assert [ln.split()[:2] for ln in lines[1:]] == [["0", "0"], ["1", "1"], ["2", "2"]]
    assert "3 values so far (not closed" in res.err
    docs = wf_cli("stream", "--json", "g", "out").ok().json()
    assert [(d["index"], d["value"]) for d in docs] == [(0, 0), (1, 1), (2, 2)]
    assert set(docs[0]) == {"workflow_id", "key", "index", "value", "written_at"}
    assert docs[0]["workflow_id"] == "g" and docs[0]["key"] == "out"

    # a follower in its own process, woken by the writer's process
    follower = wf_cli.spawn("stream", "g", "out", "--follow", "-o", "jsonl")
    gate.touch()
    followed = wf_cli.finish(follower, ("stream", "--follow"))
    assert followed.code == 0, followed.describe()
    assert [(d["index"], d["value"]) for d in _jsonl(followed.out)] == [(i, i) for i in range(5)]
    assert wf_cli.finish(writer, ("start",)).code == 0

    assert "5 values, closed" in wf_cli("stream", "g", "out").ok().err


def test_wf_stream_of_an_ended_workflow_and_bad_input(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "g2", "tests.apps.streams_app:unclosed", "2").ok()
    # following a stream whose workflow has ended prints it all and stops;
    # table lines are "index  time  value"
    lines = wf_cli("stream", "-f", "g2", "out").ok().out.splitlines()
    assert [(ln.split()[0], ln.split()[-1]) for ln in lines] == [("0", "0"), ("1", "1")]
    assert (
        wf_cli("stream", "g2", "nothing")
        .ok()
        .err.strip()
        .endswith("has no values (not closed; the workflow has ended)")
    )
    wf_cli("stream", "nope", "out").expect(4).one_line_error("no workflow with ID 'nope'")
    wf_cli("stream", "g2", "out", "-o", "ids").expect(2).one_line_error("-o/--output", "ids")
