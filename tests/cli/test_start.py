"""wf start: running, waiting, printing, exit codes, and every bad input."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.cli.conftest import APPS, REPO, WORKFLOW_KEYS, Wf, database_untouched


def test_start_prints_id_and_result(wf_cli: Wf) -> None:
    res = wf_cli("start", f"{APPS}:greet", "bob").ok()
    lines = res.out.splitlines()
    assert lines[0].startswith("workflow ")
    wid = lines[0].split()[1]
    assert "SUCCESS" in res.out
    assert '"hello BOB!"' in res.out
    assert wf_cli.status(wid)["output"] == "hello BOB!"


def test_start_json_is_the_workflow_object(wf_cli: Wf) -> None:
    doc = wf_cli("start", "--json", f"{APPS}:add", "2", "3").ok().json()
    assert set(doc) == WORKFLOW_KEYS
    assert doc["status"] == "SUCCESS"
    assert doc["output"] == 5
    assert doc["error"] is None
    assert doc["name"] == f"{APPS}:add"
    assert doc["inputs"] == {"args": [2, 3], "kwargs": {}}
    assert doc["recovery_attempts"] == 0
    for key in ("created_at", "updated_at"):
        assert isinstance(doc[key], str) and "T" in doc[key]


def test_args_are_json_when_they_parse_else_strings(wf_cli: Wf) -> None:
    doc = (
        wf_cli(
            "start",
            "--json",
            f"{APPS}:echo",
            "1",
            "2.5",
            "true",
            "null",
            '{"a": [1]}',
            "hello",
            "[1, 2]",
            "not json{",
        )
        .ok()
        .json()
    )
    assert doc["output"]["args"] == [1, 2.5, True, None, {"a": [1]}, "hello", [1, 2], "not json{"]


def test_kwargs_option(wf_cli: Wf) -> None:
    doc = (
        wf_cli("start", "--json", f"{APPS}:greet", "ann", "--kwargs", '{"punctuation": "?"}')
        .ok()
        .json()
    )
    assert doc["output"] == "hello ANN?"
    assert doc["inputs"]["kwargs"] == {"punctuation": "?"}


def test_failed_workflow_exits_1_and_shows_the_error(wf_cli: Wf) -> None:
    res = wf_cli("start", f"{APPS}:fail", "kaput").expect(1)
    assert "ERROR" in res.out
    assert "kaput" in res.out
    doc = wf_cli("start", "--json", f"{APPS}:fail", "kaput2").expect(1).json()
    assert doc["status"] == "ERROR"
    assert set(doc["error"]) == {"type", "message", "causes"}
    assert doc["error"]["causes"] == []
    assert "ValueError" in doc["error"]["type"]
    assert doc["error"]["message"] == "kaput2"


def test_timeout_cancels_and_exits_3(wf_cli: Wf) -> None:
    doc = (
        wf_cli("start", "--json", "--timeout", "1", f"{APPS}:slow", "20", timeout=60)
        .expect(3)
        .json()
    )
    assert doc["status"] == "CANCELLED"


def test_id_is_the_idempotency_key(wf_cli: Wf) -> None:
    first = wf_cli("start", "--json", "--id", "order-42", f"{APPS}:counted", "x").ok().json()
    again = wf_cli("start", "--json", "--id", "order-42", f"{APPS}:counted", "x").ok().json()
    assert first["workflow_id"] == again["workflow_id"] == "order-42"
    assert first["output"] == again["output"] == 1  # the transaction ran once
    other = wf_cli("start", "--json", f"{APPS}:counted", "y").ok().json()
    assert other["output"] == 2


def test_same_id_other_function_is_a_conflict(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "taken", f"{APPS}:add", "1", "2").ok()
    wf_cli("start", "--id", "taken", f"{APPS}:greet", "bob").expect(2).one_line_error("taken")


def test_detach_enqueues_and_prints_only_the_id(wf_cli: Wf) -> None:
    res = wf_cli("start", "--detach", f"{APPS}:add", "1", "1").ok()
    wid = res.out.strip()
    assert len(res.out.splitlines()) == 1
    info = wf_cli.status(wid)
    assert info["queue"] == "default"
    assert info["status"] in ("ENQUEUED", "PENDING", "SUCCESS")
    doc = (
        wf_cli("start", "--detach", "--json", "--queue", "other_q", f"{APPS}:add", "1", "1")
        .ok()
        .json()
    )
    assert set(doc) == WORKFLOW_KEYS
    assert doc["queue"] == "other_q"
    assert doc["status"] == "ENQUEUED"


def test_file_path_target(wf_cli: Wf) -> None:
    path = REPO / "tests" / "cli" / "apps" / "standalone.py"
    doc = wf_cli("start", "--json", f"{path}:hello", "path").ok().json()
    assert doc["output"] == "hi path"


def test_module_from_current_directory(wf_cli: Wf, cwd: Path) -> None:
    (cwd / "localapp.py").write_text(
        "import wf\n\n@wf.workflow()\ndef double(n: int) -> int:\n    return 2 * n\n"
    )
    doc = wf_cli("start", "--json", "localapp:double", "21").ok().json()
    assert doc["output"] == 42
    assert doc["name"] == "localapp:double"


# -- bad input: one line, exit 2, nothing written ------------------------------------------

BAD_STARTS = [
    pytest.param(["tests.cli.apps.nope:greet"], "tests.cli.apps.nope", id="unknown-module"),
    pytest.param([f"{APPS}:nope"], "nope", id="unknown-function"),
    pytest.param([f"{APPS}:not_a_workflow"], "not a workflow", id="plain-function"),
    pytest.param([f"{APPS}:shout", "x"], "not a workflow", id="a-step"),
    pytest.param([f"{APPS}:NOT_CALLABLE"], "not a workflow", id="not-callable"),
    pytest.param(
        ["tests.cli.apps.broken:anything"], "broken on purpose", id="module-fails-to-import"
    ),
    pytest.param(["no_colon_here"], "MODULE:FUNCTION", id="no-colon"),
    pytest.param(["missing/file.py:f"], "missing/file.py", id="missing-file"),
    pytest.param([f"{APPS}:add", "1"], "argument", id="too-few-args"),
    pytest.param([f"{APPS}:add", "1", "2", "3"], "argument", id="too-many-args"),
    pytest.param([f"{APPS}:greet", "x", "--kwargs", "{oops"], "--kwargs", id="kwargs-not-json"),
    pytest.param([f"{APPS}:greet", "x", "--kwargs", "[1]"], "--kwargs", id="kwargs-not-object"),
    pytest.param([f"{APPS}:greet", "x", "--kwargs", '{"nope": 1}'], "nope", id="unknown-kwarg"),
    pytest.param([f"{APPS}:greet", "x", "--timeout", "soon"], "--timeout", id="bad-timeout"),
    pytest.param([f"{APPS}:greet", "x", "--timeout", "-3"], "--timeout", id="negative-timeout"),
]


@pytest.mark.parametrize(("args", "needle"), BAD_STARTS)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    wf_cli: Wf, db_url: str, args: list[str], needle: str
) -> None:
    wf_cli("start", *args).expect(2).one_line_error(needle)
    assert database_untouched(db_url)


def test_unserializable_args_are_rejected_before_anything_runs(wf_cli: Wf, db_url: str) -> None:
    # JSON arguments always serialize; a NaN inside --kwargs is the one JSON
    # value that is tagged rather than rejected, so it must still round-trip.
    doc = wf_cli("start", "--json", f"{APPS}:echo", "--kwargs", '{"x": NaN}').ok().json()
    assert doc["status"] == "SUCCESS"


@pytest.mark.parametrize(
    "url",
    [
        "nonsense",
        "mysql://root@127.0.0.1/db",
        "sqlite:relative.db",
        "postgresql://",
    ],
)
def test_malformed_url_is_exit_2(sqlite_cli: Wf, cwd: Path, url: str) -> None:
    res = sqlite_cli("start", "--db", url, f"{APPS}:greet", "bob").expect(2).one_line_error()
    assert "URL" in res.err or "url" in res.err
    assert not any(cwd.iterdir())  # no wf.sqlite or anything else appeared
    sqlite_cli("list", "--db", url).expect(2).one_line_error()
    sqlite_cli("list", env={"WF_DATABASE_URL": url}).expect(2).one_line_error()


def test_debug_shows_the_traceback(wf_cli: Wf) -> None:
    res = wf_cli("start", "--debug", f"{APPS}:nope").expect(2)
    assert "Traceback" in res.err
    assert res.err.rstrip().splitlines()[-1].startswith("error: ")
    res = wf_cli("start", f"{APPS}:nope", env={"WF_DEBUG": "1"}).expect(2)
    assert "Traceback" in res.err


def test_args_starting_with_a_dash(wf_cli: Wf) -> None:
    doc = wf_cli("start", "--json", f"{APPS}:add", "--", "-1", "-2").ok().json()
    assert doc["output"] == -3


def test_output_is_plain_when_piped(wf_cli: Wf) -> None:
    res = wf_cli("start", f"{APPS}:greet", "bob").ok()
    assert "\x1b[" not in res.out and "\x1b[" not in res.err
    assert all(len(line) <= 80 for line in res.out.splitlines())
    assert all(line == line.rstrip() for line in res.out.splitlines())


def test_json_output_is_one_document(wf_cli: Wf) -> None:
    res = wf_cli("start", "--json", f"{APPS}:greet", "bob").ok()
    json.loads(res.out)  # the whole of stdout


def test_start_on_a_queue_waits_for_a_worker(wf_cli: Wf) -> None:
    import signal

    proc = wf_cli.spawn(
        "start", "--json", "--queue", "cli_q", "--id", "queued", f"{APPS}:add", "1", "2"
    )
    wf_cli.wait_status("queued", "ENQUEUED", proc=proc)
    time.sleep(1.0)
    assert wf_cli.status("queued")["status"] == "ENQUEUED"  # `wf start` serves no queue itself
    worker = wf_cli.spawn("worker", APPS)
    try:
        res = wf_cli.finish(proc, ["start"])
        assert res.code == 0, res.describe()
        doc = res.json()
        assert doc["output"] == 3 and doc["queue"] == "cli_q"
    finally:
        worker.send_signal(signal.SIGTERM)
    assert wf_cli.finish(worker, ["worker"]).code == 0


def test_ctrl_c_leaves_the_workflow_to_recovery(wf_cli: Wf) -> None:
    import signal

    proc = wf_cli.spawn("start", "--id", "int", f"{APPS}:slow", "60")
    wf_cli.wait_status("int", "PENDING", proc=proc)
    proc.send_signal(signal.SIGINT)
    res = wf_cli.finish(proc, ["start"])
    assert res.code == 130, res.describe()
    assert "interrupted" in res.err and "wf recover" in res.err
    assert "Traceback" not in res.err
    assert wf_cli.status("int")["status"] == "PENDING"
    wf_cli("cancel", "int").ok()
