"""wf status, list, steps, logs: output, JSON shapes, filters, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.cli.conftest import APPS, LOG_KEYS, STEP_KEYS, WORKFLOW_KEYS, Wf


def test_status_human_and_json(wf_cli: Wf) -> None:
    wid = wf_cli.start(f"{APPS}:greet", "bob")
    res = wf_cli("status", wid).ok()
    for text in (wid, "SUCCESS", f"{APPS}:greet", '"bob"', '"hello BOB!"', "recoveries"):
        assert text in res.out, res.describe()
    doc = wf_cli("status", "--json", wid).ok().json()
    assert set(doc) == WORKFLOW_KEYS
    assert doc["workflow_id"] == wid
    assert doc["inputs"] == {"args": ["bob"], "kwargs": {}}
    datetime.fromisoformat(doc["created_at"])
    datetime.fromisoformat(doc["updated_at"])


def test_status_of_a_failed_workflow_exits_0(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "bad-one", f"{APPS}:fail", "nope").expect(1)
    res = wf_cli("status", "bad-one").ok()
    assert "ERROR" in res.out and "nope" in res.out
    doc = wf_cli("status", "--json", "bad-one").ok().json()
    assert doc["error"]["message"] == "nope"
    assert doc["error"]["causes"] == []


def test_status_and_show_print_what_an_error_was_raised_from(wf_cli: Wf) -> None:
    """Issue 17: the error's causes, outermost first, in the JSON and as
    ``caused by`` lines; a failed step's error has its own."""
    start = wf_cli("start", "--id", "chained", f"{APPS}:fail_chained").expect(1).out
    assert "caused by" in start and "inner" in start
    doc = wf_cli("status", "--json", "chained").ok().json()
    assert set(doc) == WORKFLOW_KEYS
    assert doc["error"] == {
        "type": "builtins.RuntimeError",
        "message": "outer",
        "causes": [
            {"type": "builtins.ValueError", "message": "inner"},
            {"type": "builtins.KeyError", "message": "'deep'"},
        ],
    }
    lines = wf_cli("status", "chained").ok().out.splitlines()
    error_at = next(i for i, ln in enumerate(lines) if ln.startswith("error"))
    assert "builtins.RuntimeError: outer" in lines[error_at]
    assert lines[error_at + 1].split(None, 2) == ["caused", "by", "builtins.ValueError: inner"]
    assert lines[error_at + 2].split(None, 2) == ["caused", "by", "builtins.KeyError: 'deep'"]
    assert sum("caused by" in ln for ln in wf_cli("show", "chained").ok().out.splitlines()) >= 2

    (step,) = wf_cli("steps", "--json", "chained").ok().json()
    assert set(step) == STEP_KEYS
    assert step["error"]["message"] == "inner"
    assert step["error"]["causes"] == [{"type": "builtins.KeyError", "message": "'deep'"}]


@pytest.mark.parametrize(
    "command",
    [
        ["status"],
        ["steps"],
        ["logs"],
        ["await"],
        ["cancel"],
        ["resume"],
        ["restart"],
        ["send", "<id>", "hi"],
    ],
)
def test_unknown_id_exits_4(wf_cli: Wf, command: list[str]) -> None:
    wf_cli.start(f"{APPS}:add", "1", "1")  # a database with something in it
    args = [a if a != "<id>" else "no-such-id" for a in command]
    if "no-such-id" not in args:
        args.append("no-such-id")
    wf_cli(*args).expect(4).one_line_error("no-such-id")
    rows = wf_cli("list", "--json").ok().json()
    assert len(rows) == 1 and rows[0]["status"] == "SUCCESS"  # nothing changed


def test_list_newest_first_with_limit_and_offset(wf_cli: Wf) -> None:
    ids = [wf_cli.start("--id", f"w{i}", f"{APPS}:add", str(i), "0") for i in range(4)]
    rows = wf_cli("list", "--json").ok().json()
    assert [r["workflow_id"] for r in rows] == list(reversed(ids))
    assert all(set(r) == WORKFLOW_KEYS for r in rows)
    assert [r["workflow_id"] for r in wf_cli("list", "--json", "--limit", "2").ok().json()] == [
        "w3",
        "w2",
    ]
    assert [
        r["workflow_id"]
        for r in wf_cli("list", "--json", "--limit", "2", "--offset", "2").ok().json()
    ] == [
        "w1",
        "w0",
    ]
    res = wf_cli("list").ok()
    assert res.out.splitlines()[0].split()[:3] == ["ID", "STATUS", "NAME"]
    assert all(len(line) <= 80 for line in res.out.splitlines()), res.out


def test_list_filters(wf_cli: Wf) -> None:
    wf_cli.start("--id", "g1", f"{APPS}:greet", "a")
    wf_cli("start", "--id", "f1", f"{APPS}:fail").expect(1)
    wf_cli("start", "--detach", "--id", "q1", "--queue", "cli_other", f"{APPS}:add", "1", "2").ok()

    def ids(*args: str) -> set[str]:
        return {r["workflow_id"] for r in wf_cli("list", "--json", *args).ok().json()}

    assert ids("--status", "ERROR") == {"f1"}
    assert ids("--status", "success", "--status", "error") == {"g1", "f1"}
    assert ids("--status", "SUCCESS,ERROR") == {"g1", "f1"}
    assert ids("--name", "greet") == {"g1"}
    assert ids("--name", f"{APPS}:fail") == {"f1"}
    assert ids("--queue", "cli_other") == {"q1"}
    assert ids("--since", "10m") == {"g1", "f1", "q1"}
    assert ids("--until", "10m") == set()
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert ids("--since", future) == set()
    assert ids("--until", future) == {"g1", "f1", "q1"}
    assert ids("--since", "2000-01-01") == {"g1", "f1", "q1"}
    assert ids("--since", "2000-01-01T00:00:00Z", "--until", "1h ago") == set()


def test_list_empty(wf_cli: Wf) -> None:
    wf_cli("db", "migrate").ok()  # reads never create the database (issue 13)
    assert wf_cli("list", "--json").ok().json() == []
    res = wf_cli("list").ok()
    assert res.out == ""
    assert "no workflows" in res.err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--since", "yesterday-ish"], "--since"),
        (["--until", "2025-13-45"], "--until"),
        (["--since", "10 parsecs"], "--since"),
        (["--status", "DONE"], "DONE"),
        (["--limit", "0"], "--limit"),
        (["--limit", "many"], "--limit"),
        (["--offset", "-1"], "--offset"),
    ],
)
def test_list_bad_input(wf_cli: Wf, args: list[str], needle: str) -> None:
    wf_cli("list", *args).expect(2).one_line_error(needle)


def test_steps(wf_cli: Wf) -> None:
    wid = wf_cli.start(f"{APPS}:counted", "z")
    rows = wf_cli("steps", "--json", wid).ok().json()
    assert [(r["position"], r["name"], r["kind"]) for r in rows] == [
        (1, "count", "transaction"),
        (2, "shout", "step"),
    ]
    assert all(set(r) == STEP_KEYS for r in rows)
    assert rows[1]["output"] == "Z"
    assert rows[0]["error"] is None
    res = wf_cli("steps", wid).ok()
    assert "transaction" in res.out and "step" in res.out and '"Z"' in res.out
    assert all(len(line) <= 80 for line in res.out.splitlines()), res.out


def test_steps_show_errors_and_sleeps(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "f", f"{APPS}:fail", "oops").expect(1)
    rows = wf_cli("steps", "--json", "f").ok().json()
    assert rows[-1]["error"]["message"] == "oops"
    wf_cli("start", "--id", "s", f"{APPS}:slow", "0.3").ok()
    kinds = {r["kind"] for r in wf_cli("steps", "--json", "s").ok().json()}
    assert kinds == {"sleep"}


def test_logs(wf_cli: Wf) -> None:
    g = wf_cli.start(f"{APPS}:greet", "bob")
    wf_cli("start", "--id", "f", f"{APPS}:fail").expect(1)
    rows = wf_cli("logs", "--json").ok().json()
    assert all(set(r) == LOG_KEYS for r in rows)
    assert [r["message"] for r in rows] == ["greeting bob", "shouting bob", "about to fail"]
    assert rows[1]["step"] == "shout"
    assert rows[0]["step"] is None
    only = wf_cli("logs", "--json", g).ok().json()
    assert {r["workflow_id"] for r in only} == {g}
    warn = wf_cli("logs", "--json", "--level", "warning").ok().json()
    assert [r["message"] for r in warn] == ["about to fail"]
    assert wf_cli("logs", "--json", "--since", "1h ago").ok().json() == rows
    future = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    assert wf_cli("logs", "--json", "--since", future).ok().json() == []
    human = wf_cli("logs", g).ok().out.splitlines()
    assert len(human) == 2 and "INFO" in human[0] and "greeting bob" in human[0]
    assert "shouting bob" in human[1]
    wf_cli("logs", "--level", "LOUD").expect(2).one_line_error("--level")
    wf_cli("logs", "--since", "whenever").expect(2).one_line_error("--since")


def test_logs_follow_stops_when_the_workflow_ends(wf_cli: Wf) -> None:
    proc = wf_cli.spawn("start", "--id", "w", f"{APPS}:wait_for_message")
    wf_cli.wait_status("w", "PENDING", proc=proc)
    follower = wf_cli.spawn("logs", "--follow", "--json", "--interval", "0.1", "w")
    wf_cli("send", "w", '"go"').ok()
    res = wf_cli.finish(follower, ["logs", "--follow"], timeout=30)
    assert res.code == 0, res.describe()
    lines = [ln for ln in res.out.splitlines() if ln.strip()]
    import json

    docs = [json.loads(ln) for ln in lines]  # one object per line
    assert [d["message"] for d in docs] == ["waiting for a message"]
    assert wf_cli.finish(proc, ["start"]).code == 0


def test_logs_follow_without_id_stops_on_ctrl_c(wf_cli: Wf) -> None:
    import signal
    import time

    wf_cli.start(f"{APPS}:greet", "bob")
    follower = wf_cli.spawn("logs", "--follow", "--interval", "0.1")
    time.sleep(3.0)
    wf_cli.start(f"{APPS}:greet", "carol")
    deadline = time.monotonic() + 30
    while follower.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        follower.send_signal(signal.SIGINT)
    res = wf_cli.finish(follower, ["logs", "--follow"])
    assert res.code == 0, res.describe()
    assert "greeting bob" in res.out
