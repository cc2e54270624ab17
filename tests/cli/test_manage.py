"""wf await, cancel, resume, restart, send."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import APPS, WORKFLOW_KEYS, Wf


def test_await_outcomes(wf_cli: Wf) -> None:
    ok = wf_cli.start(f"{APPS}:greet", "bob")
    res = wf_cli("await", ok).ok()
    assert '"hello BOB!"' in res.out
    doc = wf_cli("await", "--json", ok).ok().json()
    assert set(doc) == WORKFLOW_KEYS and doc["output"] == "hello BOB!"
    wf_cli("start", "--id", "bad", f"{APPS}:fail").expect(1)
    assert wf_cli("await", "--json", "bad").expect(1).json()["status"] == "ERROR"


def test_await_timeout_exits_3_and_the_workflow_goes_on(wf_cli: Wf) -> None:
    proc = wf_cli.spawn("start", "--id", "w", f"{APPS}:wait_for_message")
    wf_cli.wait_status("w", "PENDING", proc=proc)
    res = wf_cli("await", "--timeout", "0.5", "w").expect(3)
    assert "timed out" in res.err
    doc = wf_cli("await", "--json", "--timeout", "1s", "w").expect(3).json()
    assert doc["status"] == "PENDING"
    wf_cli("send", "w", "done").ok()
    assert wf_cli("await", "--json", "--timeout", "30", "w").ok().json()["output"] == "done"
    assert wf_cli.finish(proc).code == 0
    wf_cli("await", "--timeout", "later", "w").expect(2).one_line_error("--timeout")


def test_cancel_a_running_workflow(wf_cli: Wf) -> None:
    proc = wf_cli.spawn("start", "--id", "long", f"{APPS}:slow", "60")
    wf_cli.wait_status("long", "PENDING", proc=proc)
    res = wf_cli("cancel", "long").ok()
    assert "cancelled long" in res.out
    started = wf_cli.finish(proc, ["start"])
    assert started.code == 3, started.describe()
    assert "CANCELLED" in started.out
    assert wf_cli("await", "long").code == 3
    assert wf_cli.status("long")["status"] == "CANCELLED"


def test_cancel_several_and_json(wf_cli: Wf) -> None:
    a = wf_cli("start", "--detach", "--queue", "nobody", f"{APPS}:add", "1", "1").ok().out.strip()
    b = wf_cli("start", "--detach", "--queue", "nobody", f"{APPS}:add", "2", "2").ok().out.strip()
    docs = wf_cli("cancel", "--json", a, b).ok().json()
    assert [d["workflow_id"] for d in docs] == [a, b]
    assert all(set(d) == WORKFLOW_KEYS and d["status"] == "CANCELLED" for d in docs)


def test_cancel_with_an_unknown_id_cancels_nothing(wf_cli: Wf) -> None:
    a = wf_cli("start", "--detach", "--queue", "nobody", f"{APPS}:add", "1", "1").ok().out.strip()
    wf_cli("cancel", a, "ghost").expect(4).one_line_error("ghost")
    assert wf_cli.status(a)["status"] == "ENQUEUED"


def test_resume_a_cancelled_workflow(wf_cli: Wf, marker: Path) -> None:
    proc = wf_cli.spawn("start", "--id", "r", f"{APPS}:gated", str(marker))
    wf_cli.wait_status("r", "PENDING", proc=proc)
    wf_cli("cancel", "r").ok()
    assert wf_cli.finish(proc).code == 3
    polls = len(wf_cli("steps", "--json", "r").ok().json())
    assert polls >= 1
    marker.touch()
    res = wf_cli("resume", "r").ok()
    assert "SUCCESS" in res.out
    info = wf_cli.status("r")
    assert info["status"] == "SUCCESS"
    assert info["output"] >= polls // 2  # the recorded polls were replayed, not redone


def test_resume_json_and_detach(wf_cli: Wf) -> None:
    a = wf_cli("start", "--detach", "--queue", "nobody", f"{APPS}:add", "1", "1").ok().out.strip()
    wf_cli("cancel", a).ok()
    doc = wf_cli("resume", "--detach", "--json", a).ok().json()
    assert set(doc) == WORKFLOW_KEYS and doc["status"] == "ENQUEUED"
    assert wf_cli("resume", "--json", a).ok().json()["output"] == 2
    b = wf_cli("start", "--detach", "--queue", "nobody", f"{APPS}:add", "2", "2").ok().out.strip()
    wf_cli("cancel", b).ok()
    docs = wf_cli("resume", "--json", a, b).ok().json()  # several IDs: an array
    assert [d["output"] for d in docs] == [2, 4]


def test_resume_exit_code_follows_the_outcome(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "f", f"{APPS}:fail").expect(1)
    wf_cli("resume", "f").expect(1)


def test_restart(wf_cli: Wf) -> None:
    first = wf_cli.start("--id", "orig", f"{APPS}:counted", "r")
    res = wf_cli("restart", "orig", "--id", "again").ok()
    assert "again" in res.out
    assert "restarted orig as again" in res.err
    info = wf_cli.status("again")
    assert info["output"] == 2  # the transaction ran again
    assert info["inputs"] == wf_cli.status(first)["inputs"]
    doc = wf_cli("restart", "--json", "orig", "--from-step", "2").ok().json()
    assert set(doc) == WORKFLOW_KEYS
    assert doc["workflow_id"] not in ("orig", "again")
    assert doc["output"] == 1  # step 1's recorded result was reused
    new = wf_cli("restart", "--detach", "orig").ok().out.strip()
    assert wf_cli.status(new)["status"] == "ENQUEUED"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["--from-step", "0"], 2, "--from-step"),
        (["--from-step", "9"], 2, "--from-step"),
        (["--from-step", "two"], 2, "--from-step"),
        (["--id", "orig"], 2, "orig"),
    ],
)
def test_restart_bad_input(wf_cli: Wf, args: list[str], code: int, needle: str) -> None:
    wf_cli.start("--id", "orig", f"{APPS}:counted", "r")
    wf_cli("restart", "orig", *args).expect(code).one_line_error(needle)
    assert len(wf_cli("list", "--json").ok().json()) == 1


def test_send(wf_cli: Wf) -> None:
    proc = wf_cli.spawn(
        "start", "--json", "--id", "m", f"{APPS}:wait_for_message", "--kwargs", '{"topic": "t"}'
    )
    wf_cli.wait_status("m", "PENDING", proc=proc)
    res = wf_cli("send", "m", '{"n": 1}', "--topic", "t", "--idempotency-key", "k1").ok()
    assert "sent to m" in res.out
    doc = (
        wf_cli("send", "--json", "m", '{"n": 2}', "--topic", "t", "--idempotency-key", "k1")
        .ok()
        .json()
    )
    assert doc["workflow_id"] == "m" and doc["topic"] == "t"
    out = wf_cli.finish(proc, ["start"])
    assert out.code == 0, out.describe()
    assert out.json()["output"] == {"n": 1}
