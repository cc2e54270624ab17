"""-o table|json|jsonl|ids on every command that prints records, the JSON
fields issue 13 adds, --time-format, and shell completion; through the real
``wf`` executable."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime
from pathlib import Path

import pytest

from tests.cli.conftest import (
    APPS,
    STEP_KEYS,
    WORKFLOW_KEYS,
    Wf,
    database_untouched,
    wf_executable,
)
from tests.cli.test_cli_bugs13 import write_family_app


@pytest.fixture
def db_url(sqlite_database: str) -> str:
    """SQLite only: what these tests check is the command line's rendering
    and selection, the same on both backends (the records and filters behind
    them are tested on both in tests/integration/test_operator_records.py)."""
    return sqlite_database


def jsonl(text: str) -> list[object]:
    return [json.loads(line) for line in text.splitlines()]


# -- the formats -------------------------------------------------------------------


def test_list_formats(wf_cli: Wf) -> None:
    ids = [wf_cli.start(f"{APPS}:add", str(i), "1") for i in range(3)]
    docs = wf_cli("list", "-o", "json").ok().json()
    assert [d["workflow_id"] for d in docs] == ids[::-1]
    assert all(set(d) == WORKFLOW_KEYS for d in docs)
    assert wf_cli("list", "--json").ok().json() == docs
    assert wf_cli("list", "--output", "JSON", "--json").ok().json() == docs
    assert jsonl(wf_cli("list", "-o", "jsonl").ok().out) == docs
    assert wf_cli("list", "-o", "ids").ok().out == "".join(i + "\n" for i in ids[::-1])
    table = wf_cli("list", "-o", "table").ok().out.splitlines()
    assert table[0] == wf_cli("list").ok().out.splitlines()[0] and table[0].startswith("ID ")
    assert [line.split()[0] for line in table[1:]] == ids[::-1]
    wf_cli("list", "-o", "yaml").expect(2).one_line_error("-o/--output", "yaml")
    wf_cli("list", "-o", "ids", "--json").expect(2).one_line_error("--json")
    # nothing matches: the machine formats print an empty result, the table says so
    assert wf_cli("list", "-s", "ERROR", "-o", "json").ok().json() == []
    assert wf_cli("list", "-s", "ERROR", "-o", "ids").ok().out == ""
    assert wf_cli("list", "-s", "ERROR").ok().err == "no workflows\n"


def test_status_formats_and_several_ids(wf_cli: Wf) -> None:
    a = wf_cli.start(f"{APPS}:greet", "a")
    b = wf_cli.start(f"{APPS}:add", "1", "2")
    one = wf_cli("status", "-o", "json", a).ok().json()
    assert isinstance(one, dict) and set(one) == WORKFLOW_KEYS and one["workflow_id"] == a
    both = wf_cli("status", "-o", "json", a, b).ok().json()
    assert [d["workflow_id"] for d in both] == [a, b]
    assert jsonl(wf_cli("status", "-o", "jsonl", a, b).ok().out) == both
    assert wf_cli("status", "-o", "ids", b, a).ok().out == f"{b}\n{a}\n"
    human = wf_cli("status", a, b).ok().out
    assert human.count("workflow  ") == 2 and "\n\n" in human
    # an unknown ID among known ones: the others are printed, exit 4
    res = wf_cli("status", "-o", "json", a, "nope", b).expect(4)
    assert [d["workflow_id"] for d in res.json()] == [a, b]
    res.one_line_error("nope")
    wf_cli("status", "nope").expect(4).one_line_error("nope")


def test_list_ids_into_xargs_status(wf_cli: Wf, cwd: Path) -> None:
    ids = [wf_cli.start(f"{APPS}:add", str(i), "1") for i in range(3)]
    wf = " ".join(wf_executable())
    res = subprocess.run(
        f"{wf} list -o ids | xargs {wf} status -o json",
        shell=True,
        capture_output=True,
        text=True,
        env=wf_cli.env(),
        cwd=str(cwd),
        check=True,
    )
    assert [d["workflow_id"] for d in json.loads(res.stdout)] == ids[::-1]


def test_steps_formats_and_new_fields(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    parent = wf_cli.start(f"{app}:parent", "2")
    steps = wf_cli("steps", "-o", "json", parent).ok().json()
    assert all(set(s) == STEP_KEYS for s in steps)
    assert [s["child_workflow_id"] for s in steps] == [f"{parent}-1", f"{parent}-2"]
    assert [s["attempts"] for s in steps] == [1, 1]
    assert jsonl(wf_cli("steps", "-o", "jsonl", parent).ok().out) == steps
    # ids: the child workflows the steps started
    assert wf_cli("steps", "-o", "ids", parent).ok().out == f"{parent}-1\n{parent}-2\n"
    assert "child workflows" in wf_cli("steps", "--help").ok().out
    # a retried step's attempts; a recv's topic
    retried = wf_cli.start(f"{app}:persevere")
    (flaky,) = wf_cli("steps", "--json", retried).ok().json()
    assert flaky["attempts"] == 3 and flaky["output"] == 3
    table = wf_cli("steps", retried).ok().out.splitlines()
    assert table[0].split() == ["#", "NAME", "KIND", "TRIES", "OUTPUT", "/", "ERROR", "DURATION"]
    assert table[1].split()[:4] == ["1", "flaky", "step", "3"]
    listened = wf_cli.start(f"{app}:listener")
    (recv,) = wf_cli("steps", "--json", listened).ok().json()
    assert recv["kind"] == "recv" and "orders" in recv["detail"]
    assert "orders" in wf_cli("steps", listened).ok().out.splitlines()[1]


def test_workflow_json_has_the_new_fields(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    parent = wf_cli.start(f"{app}:parent", "1")
    child = wf_cli.status(f"{parent}-1")
    assert child["parent_workflow_id"] == parent
    assert child["app_version"] is None and child["cancel_reason"] is None
    assert child["forked_from"] is None and child["forked_from_step"] is None
    assert child["deadline"] is None and child["child_count"] is None  # not counted by status
    started = datetime.fromisoformat(child["started_at"])
    assert datetime.fromisoformat(child["created_at"]) <= started
    assert started <= datetime.fromisoformat(child["updated_at"])
    (listed,) = wf_cli("list", "--json").ok().json()
    assert listed["workflow_id"] == parent and listed["child_count"] == 1


def test_logs_formats(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    g = wf_cli.start(f"{APPS}:greet", "a")
    h = wf_cli.start(f"{app}:listener")
    docs = wf_cli("logs", "-o", "json").ok().json()
    assert {d["workflow_id"] for d in docs} == {g, h} and len(docs) >= 3
    assert jsonl(wf_cli("logs", "-o", "jsonl").ok().out) == docs
    assert wf_cli("logs", "-o", "ids").ok().out == f"{g}\n{h}\n"  # each once, oldest first
    assert wf_cli("logs", "-o", "ids", h).ok().out == f"{h}\n"
    followed = wf_cli("logs", "--follow", "-o", "jsonl", g, timeout=60).ok()
    assert jsonl(followed.out) == [d for d in docs if d["workflow_id"] == g]
    assert wf_cli("logs", "--follow", "-o", "ids", g, timeout=60).ok().out == f"{g}\n"


def test_queue_list_formats(wf_cli: Wf) -> None:
    wf_cli("start", "--detach", "--queue", "q_one", f"{APPS}:add", "1", "2").ok()
    wf_cli("start", "--detach", "--queue", "q_two", f"{APPS}:add", "1", "2").ok()
    docs = wf_cli("queue", "list", "-o", "json").ok().json()
    names = [d["name"] for d in docs]
    assert {"q_one", "q_two"} <= set(names)
    assert wf_cli("queue", "list", "-o", "ids").ok().out == "".join(n + "\n" for n in names)
    assert jsonl(wf_cli("queue", "list", "-o", "jsonl").ok().out) == docs
    assert "queue names" in wf_cli("queue", "list", "--help").ok().out


def test_db_status_and_count_print_one_document(wf_cli: Wf) -> None:
    wf_cli.start(f"{APPS}:add", "1", "2")
    doc = wf_cli("db", "status", "-o", "json").ok().json()
    assert doc["up_to_date"] is True and doc["url_source"] == "WF_DATABASE_URL"
    assert wf_cli("db", "status", "-o", "table").ok().out == wf_cli("db", "status").ok().out
    for fmt in ("jsonl", "ids"):
        wf_cli("db", "status", "-o", fmt).expect(2).one_line_error(fmt)
        wf_cli("count", "-o", fmt).expect(2).one_line_error(fmt)
    assert wf_cli("count", "-o", "json").ok().json() == {"count": 1}
    assert wf_cli("count", "-o", "table").ok().out == "1\n"


# -- --time-format -------------------------------------------------------------------


def _line(text: str, label: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [label]]
    return line.split(None, 1)[1]


def test_times_say_their_zone(wf_cli: Wf) -> None:
    wid = wf_cli.start(f"{APPS}:greet", "a")
    created = datetime.fromisoformat(wf_cli.status(wid)["created_at"])
    utc = _line(wf_cli("status", wid, env={"TZ": "UTC"}).ok().out, "created")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", utc), utc
    paris = _line(wf_cli("status", wid, env={"TZ": "Europe/Paris"}).ok().out, "created")
    assert paris.endswith((" CET", " CEST")), paris
    iso = _line(wf_cli("status", "--time-format", "iso", wid).ok().out, "created")
    assert datetime.fromisoformat(iso).utcoffset() is not None
    assert abs((datetime.fromisoformat(iso) - created).total_seconds()) < 1
    rel = wf_cli("status", wid, env={"WF_TIME_FORMAT": "relative"}).ok().out
    assert _line(rel, "created").endswith(" ago")
    # log lines: local time with the zone, by default
    line = wf_cli("logs", wid, env={"TZ": "UTC"}).ok().out.splitlines()[0]
    assert line.split()[2] == "UTC", line
    wf_cli("status", "--time-format", "martian", wid).expect(2).one_line_error("--time-format")


def test_list_shows_ages_unless_a_time_format_is_asked(wf_cli: Wf) -> None:
    wf_cli.start(f"{APPS}:greet", "a")
    assert "AGE" in wf_cli("list").ok().out.splitlines()[0].split()
    out = wf_cli("list", "--time-format", "local", env={"TZ": "UTC"}).ok().out.splitlines()
    assert "CREATED (UTC)" in out[0], out  # one zone for all rows: said in the header
    datetime.strptime(" ".join(out[1].split()[4:6]), "%Y-%m-%d %H:%M:%S")
    out = wf_cli("list", "--time-format", "iso").ok().out.splitlines()
    assert datetime.fromisoformat(out[1].split()[4]).utcoffset() is not None, out


# -- completion ----------------------------------------------------------------------


def complete(wf_cli: Wf, words: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash completion offers for the last word of ``words``."""
    parts = words.split(" ")
    e = {"_WF_COMPLETE": "complete_bash", "COMP_WORDS": words, "COMP_CWORD": str(len(parts) - 1)}
    res = wf_cli(env={**e, **(env or {})}).ok()
    return res.out.split()


def test_completion_of_commands_options_and_statuses(wf_cli: Wf) -> None:
    assert complete(wf_cli, "wf co") == ["count"]
    assert "list" in complete(wf_cli, "wf l")
    assert complete(wf_cli, "wf list --chi") == ["--children"]
    assert complete(wf_cli, "wf list --status E") == ["ENQUEUED", "ERROR"]
    assert complete(wf_cli, "wf count -s R") == ["RETRIES_EXCEEDED"]
    assert complete(wf_cli, "wf list -o j") == ["json", "jsonl"]
    assert complete(wf_cli, "wf status --time-format r") == ["relative"]


def test_completion_of_queue_names(wf_cli: Wf, db_url: str, tmp_path: Path) -> None:
    # no database yet: nothing offered, nothing created
    assert complete(wf_cli, "wf list --queue ") == []
    assert database_untouched(db_url)
    wf_cli("start", "--detach", "--queue", "cli_other", f"{APPS}:add", "1", "2").ok()
    wf_cli("start", "--detach", "--queue", "batch", f"{APPS}:add", "1", "2").ok()
    assert complete(wf_cli, "wf list --queue cli_") == ["cli_other"]
    assert set(complete(wf_cli, "wf worker -q ")) >= {"cli_other", "batch"}
    # an unreachable database: silence, not an error
    bad = {"WF_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    assert complete(wf_cli, "wf list --queue ", env=bad) == []
    other = tmp_path / "elsewhere.sqlite"
    assert complete(wf_cli, f"wf list --db sqlite:///{other} --queue ") == []
    assert not other.exists()


def test_show_and_install_completion(sqlite_cli: Wf, tmp_path: Path) -> None:
    script = sqlite_cli("--show-completion", env={"SHELL": "/bin/bash"}).ok().out
    assert "_WF_COMPLETE" in script
    home = tmp_path / "home"
    home.mkdir()
    res = sqlite_cli("--install-completion", env={"SHELL": "/bin/bash", "HOME": str(home)}).ok()
    assert "completion installed" in res.out
    installed = [p for p in home.rglob("*") if p.is_file()]
    assert any("_WF_COMPLETE" in p.read_text() for p in installed), installed
    help_text = sqlite_cli("--help").ok().out
    assert "--install-completion" in help_text and "--show-completion" in help_text


def test_help_lists_count(sqlite_cli: Wf) -> None:
    assert "  count " in sqlite_cli("--help").ok().out
