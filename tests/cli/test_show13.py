"""wf show (issue 13): one workflow described in full, once or live with
--follow; piped and on a (pseudo-)terminal."""

from __future__ import annotations

import os
import re
import select
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import WORKFLOW_KEYS, Wf, database_untouched, wf_executable


@pytest.fixture
def db_url(sqlite_database: str) -> str:
    """SQLite only: what these tests check is the command line's rendering
    and selection, the same on both backends (the records and filters behind
    them are tested on both in tests/integration/test_operator_records.py)."""
    return sqlite_database


H2 = "tests.cli.apps.h2"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\r")


def in_terminal(
    wf_cli: Wf,
    *args: str,
    answer: str | None = None,
    prompt: str = "[y/N]",
    timeout: float = 60,
    columns: int = 100,
) -> tuple[int, str]:
    """Run ``wf ARGS`` with stdin, stdout and stderr on a pseudo-terminal
    (so rich draws as on a terminal and prompts ask); type ``answer`` when
    ``prompt`` shows. Returns the exit code and the screen text without
    escape sequences."""
    master, slave = os.openpty()
    env = wf_cli.env({"COLUMNS": str(columns), "LINES": "40", "TERM": "xterm-256color"})
    proc = subprocess.Popen(
        [*wf_executable(), *args],
        env=env,
        cwd=str(wf_cli.cwd),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        close_fds=True,
    )
    os.close(slave)
    raw = b""
    answered = answer is None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the other side closed: the process ended
                    break
                if not chunk:
                    break
                raw += chunk
            if not answered and prompt.encode() in raw:
                os.write(master, (answer or "").encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        else:
            proc.kill()
            raise AssertionError(f"wf {' '.join(args)} did not end in {timeout}s:\n{clean(raw)}")
        code = proc.wait(timeout=30)
    finally:
        os.close(master)
    return code, clean(raw)


def clean(raw: bytes) -> str:
    return _ANSI.sub("", raw.decode("utf-8", "replace"))


def family(wf_cli: Wf, wid: str = "fam") -> str:
    wf_cli("start", "--id", wid, f"{H2}:family", "2").ok()
    return wid


def section(out: str, title: str) -> list[str]:
    """The lines of a piped `wf show` section, up to the next blank line."""
    lines = out.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(title))
    body: list[str] = []
    for ln in lines[start + 1 :]:
        if not ln.strip():
            break
        body.append(ln)
    return body


def test_show_describes_a_workflow_with_steps_children_and_logs(wf_cli: Wf) -> None:
    wid = family(wf_cli)
    out = wf_cli("show", wid).ok().out
    assert all(ln == ln.rstrip() for ln in out.splitlines()), out  # piped: no padding
    head = dict(ln.split(None, 1) for ln in out.split("\n\n", 1)[0].splitlines())
    assert head["workflow"] == wid and head["status"] == "SUCCESS"
    assert head["name"] == f"{H2}:family" and head["inputs"] == "2"
    assert '"again": "family ok"' in head["output"]
    for label in ("created", "started", "queued", "ran", "executor", "recoveries"):
        assert label in head, out
    steps = section(out, "steps")
    assert steps[0].split() == ["#", "NAME", "KIND", "TRIES", "OUTPUT", "/", "ERROR", "DURATION"]
    flaky = next(ln for ln in steps if " flaky " in ln).split()
    assert flaky[:4] == ["2", "flaky", "step", "2"], steps  # retried once: two attempts
    assert any(ln.split()[:3] == ["3", f"{H2}:kid", "child"] and "fam-3" in ln for ln in steps)
    tree = section(out, "children")
    assert [ln.split()[0] for ln in tree] == [wid, "fam-3", "fam-4", "fam-5", "fam-5-1"]
    indents = [len(ln) - len(ln.lstrip()) for ln in tree]
    assert indents == [0, 2, 2, 2, 4], tree
    logs = section(out, "logs (last 10 of 13)")
    assert len(logs) == 10 and logs[0].endswith("line 3") and "doubling 2" in logs[-1]


def test_show_json_is_the_whole_view(wf_cli: Wf) -> None:
    wid = family(wf_cli)
    doc = wf_cli("show", "-o", "json", wid).ok().json()
    assert WORKFLOW_KEYS <= set(doc) and doc["workflow_id"] == wid
    assert {"steps", "children", "logs", "running_call"} <= set(doc)
    assert doc["running_call"] is None
    assert [s["attempts"] for s in doc["steps"]][:2] == [1, 2]
    assert [c["workflow_id"] for c in doc["children"]] == ["fam-3", "fam-4", "fam-5"]
    assert doc["children"][2]["children"][0]["workflow_id"] == "fam-5-1"
    assert len(doc["logs"]) == 10 and doc["logs"][-1]["step"] == "double"
    assert wf_cli("show", "--json", "--logs", "0", wid).ok().json()["logs"] == []
    assert wf_cli("show", "-o", "ids", wid).ok().out == f"{wid}\n"
    line = wf_cli("show", "-o", "jsonl", wid).ok().out
    assert line.count("\n") == 1 and '"steps"' in line


def test_show_a_running_workflow_names_the_running_call(wf_cli: Wf, marker: Path) -> None:
    proc = wf_cli.spawn("start", "--id", "g", f"{H2}:gated", str(marker))
    wf_cli.wait_status("g", "PENDING", proc=proc)
    doc = wf_cli("show", "--json", "g").ok().json()
    assert doc["status"] == "PENDING"
    assert doc["running_call"] == len(doc["steps"]) + 1
    out = wf_cli("show", "g").ok().out
    assert re.search(r"^running\s+call #\d+$", out, re.M), out
    assert re.search(r"^\s*\d+\s+\(running\)", out, re.M), out
    assert re.search(r"^ran\s+\S+…$", out, re.M), out  # still running: the time so far
    marker.touch()
    assert wf_cli.finish(proc).code == 0


def test_show_says_why_it_was_cancelled_and_where_a_restart_came_from(
    wf_cli: Wf, marker: Path
) -> None:
    proc = wf_cli.spawn("start", "--id", "c", f"{H2}:gated", str(marker))
    wf_cli.wait_status("c", "PENDING", proc=proc)
    wf_cli("cancel", "c").ok()
    wf_cli.finish(proc)
    out = wf_cli("show", "c").ok().out
    assert re.search(r"^cancelled\s+wf cancel by \S+@\S+$", out, re.M), out
    wid = family(wf_cli, "orig")
    new = wf_cli("restart", "-o", "ids", "--from-step", "3", "--id", "copy", wid).ok().out
    assert new.strip() == "copy"
    out = wf_cli("show", "copy").ok().out
    assert re.search(r"^lineage\s+restarted from orig at step 3$", out, re.M), out
    steps = section(out, "steps")
    assert "copied" in next(ln for ln in steps if ln.split()[0] == "1")
    assert "copied" not in next(ln for ln in steps if ln.split()[0] == "3")


def test_show_follow_piped_prints_the_end_once_and_exits_with_the_outcome(
    wf_cli: Wf, marker: Path
) -> None:
    proc = wf_cli.spawn("start", "--id", "f", f"{H2}:gated", str(marker))
    wf_cli.wait_status("f", "PENDING", proc=proc)
    follow = wf_cli.spawn("show", "--follow", "f")
    time.sleep(1.0)
    assert follow.poll() is None  # still following
    marker.touch()
    res = wf_cli.finish(follow, ["show", "--follow", "f"])
    assert res.code == 0, res.describe()
    assert res.out.count("\nstatus ") == 1 and re.search(r"^status\s+SUCCESS$", res.out, re.M)
    assert wf_cli.finish(proc).code == 0
    # an ended workflow: at once, with its outcome's code
    wf_cli("start", "--id", "bad", "tests.cli.apps.basic:fail").expect(1)
    assert wf_cli("show", "--follow", "bad").expect(1).out.count("ERROR") >= 1
    assert wf_cli("show", "bad").ok()  # without --follow: 0 whatever the status
    assert wf_cli("show", "--follow", "--json", "c-none").code == 4


def test_show_follow_on_a_terminal_draws_live_then_the_final_frame(
    wf_cli: Wf, marker: Path
) -> None:
    proc = wf_cli.spawn("start", "--id", "t", f"{H2}:slow_family", str(marker))
    wf_cli.wait_status("t", "PENDING", proc=proc)

    def release() -> None:
        time.sleep(1.5)
        marker.touch()

    import threading

    threading.Thread(target=release, daemon=True).start()
    code, screen = in_terminal(wf_cli, "show", "--follow", "t")
    assert code == 0, screen
    assert "╭─ workflow t" in screen and "PENDING" in screen  # drawn while it ran
    final = screen[screen.rindex("╭─ workflow t") :]
    assert "SUCCESS" in final and "└── t-1" in final, final
    assert wf_cli.finish(proc).code == 0


def test_show_bad_input(wf_cli: Wf, db_url: str) -> None:
    wf_cli("show", "ghost").expect(5).one_line_error("no wf database")
    assert database_untouched(db_url)  # a read command creates nothing
    wf_cli("db", "migrate").ok()
    wf_cli("show", "ghost").expect(4).one_line_error("ghost")
    wf_cli("show", "-o", "yaml", "x").expect(2).one_line_error("-o")
    wf_cli("show", "--logs", "-1", "x").expect(2)
