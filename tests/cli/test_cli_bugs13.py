"""Issue 13's CLI bugs, each through the real ``wf`` executable: piped tables
never wrap (2), read commands create nothing (3), a broken pyproject.toml is
bad input (4), empty queue names (6), the small wrong messages (7), queue
time is not run time (9), why a workflow was cancelled (10); and `wf list`'s
children, `wf count`, lineage."""

from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests.cli.conftest import APPS, Wf, database_untouched, wf_executable

FAMILY = """
import wf


@wf.step()
def square(i: int) -> int:
    return i * i


@wf.workflow()
def child(i: int) -> int:
    return square(i)


@wf.workflow()
def parent(n: int) -> int:
    handles = [wf.start(child, i) for i in range(n)]
    return sum(h.result() for h in handles)


@wf.workflow()
def napper(seconds: float) -> str:
    wf.sleep(seconds)
    return "rested"


@wf.workflow()
def nothing() -> int:
    return 7


@wf.workflow()
def listener() -> object:
    wf.logger.info("listening")
    return wf.recv(topic="orders", timeout=0.2)


_tries = {"n": 0}


@wf.step(retries=3, interval=0.01)
def flaky() -> int:
    _tries["n"] += 1
    if _tries["n"] < 3:
        raise RuntimeError("not yet")
    return _tries["n"]


@wf.workflow()
def persevere() -> int:
    return flaky()
"""


def write_family_app(cwd: Path) -> str:
    """A module with parents and children in the test's directory; its target prefix."""
    (cwd / "fam13.py").write_text(FAMILY)
    return "fam13.py"


def run_in_terminal(
    wf_cli: Wf, *args: str, columns: int = 100, env: dict[str, str] | None = None
) -> tuple[int, str]:
    """Run ``wf`` with its output on a pseudo-terminal of ``columns``
    columns; returns the exit code and the text without colours."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    e = wf_cli.env({"COLUMNS": str(columns), **(env or {})})
    proc = subprocess.Popen(
        [*wf_executable(), *args],
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
        env=e,
        cwd=str(wf_cli.cwd),
    )
    os.close(slave)
    chunks: list[bytes] = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the other side closed
            break
        if not data:
            break
        chunks.append(data)
    code = proc.wait(timeout=60)
    os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return code, re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", text)


# -- bug 2: piped output never wraps or pads ---------------------------------------


def test_piped_list_is_one_row_per_line(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    parent_id = wf_cli.start(f"{app}:parent", "12")
    res = wf_cli("list", "--children", env={"COLUMNS": "80"}).ok()
    lines = res.out.splitlines()
    assert len(lines) == 1 + 13, res.out  # the header, the parent and its 12 children
    first = [line.split()[0] for line in lines[1:]]
    assert set(first) == {parent_id} | {f"{parent_id}-{i}" for i in range(1, 13)}, res.out
    assert all(line == line.rstrip() for line in lines), res.out
    # what the README promises: awk gets whole IDs
    awk = subprocess.run(
        f"{' '.join(wf_executable())} list --children | awk '{{print $1}}'",
        shell=True,
        capture_output=True,
        text=True,
        env=wf_cli.env({"COLUMNS": "80"}),
        cwd=str(cwd),
        check=True,
    )
    assert f"{parent_id}-12" in awk.stdout.split(), awk.stdout


def test_piped_status_never_wraps_and_has_no_trailing_blanks(wf_cli: Wf) -> None:
    long_arg = "x" * 300
    wid = wf_cli.start(f"{APPS}:greet", long_arg)
    res = wf_cli("status", wid, env={"COLUMNS": "80"}).ok()
    lines = res.out.splitlines()
    assert all(line == line.rstrip() for line in lines), res.out
    (inputs,) = [line for line in lines if line.startswith("inputs")]
    assert long_arg in inputs  # the whole value on its own line, not folded at 80
    (output_line,) = [line for line in lines if line.startswith("output")]
    assert long_arg.upper() in output_line


def test_piped_steps_are_one_row_per_line(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    parent_id = wf_cli.start(f"{app}:parent", "11")
    res = wf_cli("steps", parent_id, env={"COLUMNS": "80"}).ok()
    rows = res.out.splitlines()[1:]
    assert len(rows) == 11, res.out
    assert all(f"{parent_id}-{n}" in row for n, row in enumerate(rows, 1)), res.out


# -- bug 3: read commands create nothing -------------------------------------------

READ_COMMANDS = [
    ["list"],
    ["count"],
    ["status", "x"],
    ["steps", "x"],
    ["logs"],
    ["queue", "list"],
    ["db", "status"],
]


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_read_commands_create_no_sqlite_file(
    sqlite_cli: Wf, tmp_path: Path, command: list[str]
) -> None:
    missing_dir = tmp_path / "typo" / "wf.sqlite"
    res = sqlite_cli(*command, "--db", f"sqlite:///{missing_dir}").expect(5)
    res.one_line_error("no wf database at", "wf db migrate")
    assert not missing_dir.parent.exists()
    missing_file = tmp_path / "typo.sqlite"
    sqlite_cli(*command, "--db", f"sqlite:///{missing_file}").expect(5).one_line_error(
        "no wf database at"
    )
    assert not missing_file.exists()


@pytest.mark.parametrize("command", READ_COMMANDS, ids=" ".join)
def test_read_commands_create_no_postgres_database(
    cwd: Path, pg_database: str, pg_admin_url: str, command: list[str]
) -> None:
    import psycopg

    wf_cli = Wf(pg_database, cwd)
    name = f"wf_missing_{uuid.uuid4().hex[:12]}"
    url = pg_database.rsplit("/", 1)[0] + "/" + name
    try:
        res = wf_cli(*command, "--db", url).expect(5)
        res.one_line_error("no wf database at", name)
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_database WHERE datname = %s", (name,))
            assert row.fetchone() == (0,), f"wf {' '.join(command)} created database {name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.parametrize("command", [c for c in READ_COMMANDS if c != ["db", "status"]])
def test_read_commands_create_no_schema(wf_cli: Wf, db_url: str, command: list[str]) -> None:
    """A Postgres database without the wf schema (and a SQLite path with no
    file) is "no wf database", and stays as it was."""
    wf_cli(*command).expect(5).one_line_error("no wf database at")
    assert database_untouched(db_url)


def test_db_status_of_a_database_without_the_schema(wf_cli: Wf, db_url: str) -> None:
    if db_url.startswith("sqlite"):
        wf_cli("db", "status").expect(5).one_line_error("no wf database at")
    else:  # the database is there: its schema version is 0
        assert wf_cli("db", "status", "--json").ok().json()["current_version"] == 0
    assert database_untouched(db_url)


def test_write_commands_still_create_the_database(sqlite_cli: Wf, tmp_path: Path) -> None:
    target = tmp_path / "new.sqlite"
    sqlite_cli("start", "--db", f"sqlite:///{target}", f"{APPS}:add", "1", "2").ok()
    assert target.exists()
    assert sqlite_cli("count", "--db", f"sqlite:///{target}").ok().out.strip() == "1"


# -- bug 4: a broken pyproject.toml ------------------------------------------------

BROKEN_PYPROJECT = (
    '[project]\nname = "x"\n\n[tool.wf\ndatabase_url = "sqlite:///elsewhere.sqlite"\n'
)


@pytest.mark.parametrize(
    "command", [["list"], ["status", "x"], ["db", "status"], ["start", f"{APPS}:add", "1", "2"]]
)
def test_broken_pyproject_is_bad_input(sqlite_cli: Wf, cwd: Path, command: list[str]) -> None:
    (cwd / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    res = sqlite_cli(*command, db=False).expect(2)
    res.one_line_error(str(cwd / "pyproject.toml"), "line 4")
    assert not (cwd / "wf.sqlite").exists() and not (cwd / "elsewhere.sqlite").exists()


def test_db_status_says_where_the_url_came_from(sqlite_cli: Wf, cwd: Path, tmp_path: Path) -> None:
    flagged, envd, projected = (tmp_path / f"{n}.sqlite" for n in ("flag", "env", "pyproject"))
    for path in (flagged, envd, projected, cwd / "wf.sqlite"):
        sqlite_cli("db", "migrate", "--db", f"sqlite:///{path}").ok()

    def source(*args: str, env: dict[str, str] | None = None) -> tuple[str, str]:
        # db=False drops the fixture's WF_DATABASE_URL; one in ``env`` replaces it
        keep = env is not None
        doc = sqlite_cli("db", "status", "--json", *args, env=env, db=keep).ok().json()
        human = sqlite_cli("db", "status", *args, env=env, db=keep).ok().out
        return doc["url_source"], human

    assert source()[0] == "default"
    assert "the default" in source()[1]
    (cwd / "pyproject.toml").write_text(f'[tool.wf]\ndatabase_url = "sqlite:///{projected}"\n')
    where, human = source()
    assert where == "pyproject.toml" and "[tool.wf]" in human and str(projected) in human
    where, human = source(env={"WF_DATABASE_URL": f"sqlite:///{envd}"})
    assert where == "WF_DATABASE_URL" and "WF_DATABASE_URL" in human and str(envd) in human
    where, human = source(
        "--db", f"sqlite:///{flagged}", env={"WF_DATABASE_URL": f"sqlite:///{envd}"}
    )
    assert where == "--db" and "--db" in human and str(flagged) in human


# -- bug 6: empty queue names ------------------------------------------------------


@pytest.mark.parametrize("name", ["", "  "])
@pytest.mark.parametrize(
    "command",
    [
        ["list", "-q"],
        ["count", "--queue"],
        ["worker", APPS, "--queue"],
        ["start", f"{APPS}:add", "1", "2", "-q"],
        ["start", "--detach", f"{APPS}:add", "1", "2", "--queue"],
    ],
    ids=lambda c: c[0],
)
def test_empty_queue_name_is_bad_input(
    wf_cli: Wf, db_url: str, command: list[str], name: str
) -> None:
    wf_cli(*command, name, timeout=30).expect(2).one_line_error("--queue", "empty")
    assert database_untouched(db_url)


def test_empty_queue_name_in_python_is_a_configuration_error() -> None:
    import wf

    for name in ("", "   "):
        with pytest.raises(wf.ConfigurationError, match="queue needs a name"):
            wf.Queue(name)


# -- bug 7: the wrong messages -----------------------------------------------------


def test_missing_role_is_not_called_a_missing_database(cwd: Path, pg_database: str) -> None:
    wf_cli = Wf(pg_database, cwd)
    role = f"nouser_{uuid.uuid4().hex[:8]}"
    url = pg_database.replace("postgresql://postgres@", f"postgresql://{role}@", 1)
    assert role in url
    for command in (["list"], ["start", f"{APPS}:add", "1", "2"]):
        res = wf_cli(*command, "--db", url).expect(5).one_line_error()
        assert "cannot be created" not in res.err and "does not exist and" not in res.err
        assert f'role "{role}" does not exist' in res.err or "authentication failed" in res.err


def test_masking_keeps_the_separator(sqlite_cli: Wf) -> None:
    url = "postgresql://wfuser@127.0.0.1:1/x?password=s3cret-pw"
    res = sqlite_cli("list", "--db", url, timeout=60).expect(5).one_line_error()
    assert "s3cret-pw" not in res.err
    assert "x?password=***: " in res.err, res.err


@pytest.mark.parametrize("command", [["await", "some-id"], ["start", f"{APPS}:add", "1", "2"]])
def test_zero_and_negative_timeouts_say_the_same(wf_cli: Wf, command: list[str]) -> None:
    messages = []
    for value in ("0", "-5", "0s"):
        res = wf_cli(*command, "--timeout", value).expect(2).one_line_error("--timeout", value)
        messages.append(res.err.replace(repr(value), "V"))
    assert len(set(messages)) == 1, messages
    assert "positive" in messages[0]


def test_unknown_option_suggests_only_a_close_match(sqlite_cli: Wf) -> None:
    res = sqlite_cli("list", "--frob").expect(2).one_line_error("--frob")
    assert "--db" not in res.err and "Possible options" not in res.err
    sqlite_cli("list", "--limt", "3").expect(2).one_line_error("--limt", "did you mean --limit")


def test_sqlite_mode_ro_reads_without_a_warning(sqlite_cli: Wf, sqlite_database: str) -> None:
    wid = sqlite_cli.start(f"{APPS}:add", "1", "2")
    ro = sqlite_database + "?mode=ro"
    path = Path(sqlite_database.split(":///", 1)[1])
    before = path.stat().st_mtime_ns
    res = sqlite_cli("list", "--json", "--db", ro).ok()
    assert [r["workflow_id"] for r in res.json()] == [wid]
    assert "Warning" not in res.err and res.err == "", res.err
    assert sqlite_cli("status", wid, "--db", ro).ok().err == ""
    doc = sqlite_cli("db", "status", "--json", "--db", ro).ok().json()
    assert doc["url"].endswith("?mode=ro")
    # a write is refused in one line
    res = sqlite_cli("start", "--db", ro, f"{APPS}:add", "3", "4").expect(1).one_line_error()
    assert "readonly" in res.err and "[SQL" not in res.err
    assert path.stat().st_mtime_ns == before
    sqlite_cli("list", "--db", sqlite_database + "?frob=1").expect(2).one_line_error("frob")


def test_no_recorded_steps_yet_only_while_it_runs(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    wid = wf_cli.start(f"{app}:nothing")
    res = wf_cli("steps", wid).ok()
    assert "has no recorded steps" in res.err and "yet" not in res.err
    queued = wf_cli("start", "--detach", "--queue", "nobody_serves", f"{app}:nothing").ok()
    res = wf_cli("steps", queued.out.strip()).ok()
    assert "has no recorded steps yet" in res.err


# -- bug 9: queue time is not run time ----------------------------------------------


def test_duration_does_not_count_queue_time(wf_cli: Wf) -> None:
    wid = wf_cli("start", "--detach", "--queue", "later", f"{APPS}:add", "1", "2").ok().out.strip()
    time.sleep(2.0)
    wf_cli("resume", wid).ok()  # runs it here, at once
    doc = wf_cli.status(wid)
    created, started, updated = (_parse(doc[k]) for k in ("created_at", "started_at", "updated_at"))
    assert started - created >= 1.9 and updated - started < 1.5
    human = wf_cli("status", wid).ok().out
    queued = _field(human, "queued")
    ran = _field(human, "ran")
    assert _seconds(queued) >= 1.9 and _seconds(ran) < 1.5, human
    (row,) = [line for line in wf_cli("list").ok().out.splitlines() if line.startswith(wid)]
    assert _seconds(row.split()[-1]) < 1.5, row  # DURATION: the running time


def _parse(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


def _field(text: str, label: str) -> str:
    (line,) = [ln for ln in text.splitlines() if ln.split()[:1] == [label]]
    return line.split(None, 1)[1]


def _seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s)…?", text.strip())
    assert m, text
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


# -- bug 10: why it was cancelled; lineage -----------------------------------------


def test_status_says_why_a_timeout_cancelled_it(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    res = wf_cli("start", "--json", "--timeout", "1", f"{app}:napper", "30").expect(3)
    wid = res.json()["workflow_id"]
    doc = wf_cli.status(wid)
    assert doc["status"] == "CANCELLED"
    assert doc["cancel_reason"] and "timeout" in doc["cancel_reason"]
    assert doc["deadline"] is not None
    assert _parse(doc["deadline"]) - _parse(doc["started_at"]) == pytest.approx(1, abs=0.2)
    human = wf_cli("status", wid).ok().out
    assert "timeout" in _field(human, "cancelled")
    assert _field(human, "deadline") != "-"


def test_status_shows_lineage_of_a_restart(wf_cli: Wf) -> None:
    wid = wf_cli.start(f"{APPS}:counted", "z")
    doc = wf_cli("restart", "--json", "--from-step", "2", wid).ok().json()
    new = doc["workflow_id"]
    got = wf_cli.status(new)
    assert got["forked_from"] == wid and got["forked_from_step"] == 2
    human = wf_cli("status", new).ok().out
    assert _field(human, "lineage") == f"restarted from {wid} at step 2"
    steps = wf_cli("steps", new).ok().out.splitlines()
    assert "copied" in steps[1] and "copied" not in steps[2], steps


# -- `wf list`: top-level by default, children, counts, the footer -----------------


def test_list_shows_top_level_workflows_with_their_child_count(wf_cli: Wf, cwd: Path) -> None:
    app = write_family_app(cwd)
    parent_id = wf_cli.start(f"{app}:parent", "3")
    lone = wf_cli.start(f"{APPS}:add", "1", "2")
    rows = wf_cli("list", "--json").ok().json()
    assert [r["workflow_id"] for r in rows] == [lone, parent_id]
    assert [r["child_count"] for r in rows] == [0, 3]
    assert [r["parent_workflow_id"] for r in rows] == [None, None]
    everything = wf_cli("list", "--json", "--children").ok().json()
    assert len(everything) == 5
    kids = wf_cli("list", "--json", "--parent", parent_id).ok().json()
    assert sorted(r["workflow_id"] for r in kids) == [f"{parent_id}-{i}" for i in (1, 2, 3)]
    assert all(r["parent_workflow_id"] == parent_id for r in kids)
    header, *lines = wf_cli("list").ok().out.splitlines()
    assert header.split() == ["ID", "STATUS", "NAME", "CHILDREN", "AGE", "DURATION"]
    assert lines[1].split()[:4] == [parent_id, "SUCCESS", "parent", "3"]
    assert wf_cli("count").ok().out == "2\n"
    assert wf_cli("count", "--children").ok().out == "5\n"
    assert wf_cli("count", "--parent", parent_id, "-o", "json").ok().json() == {"count": 3}
    assert wf_cli("count", "--json", "--name", "child", "--children").ok().json() == {"count": 3}
    wf_cli("list", "--parent", "").expect(2).one_line_error("--parent")


def test_list_on_a_terminal_ends_with_how_many_are_shown(wf_cli: Wf) -> None:
    for i in range(4):
        wf_cli.start(f"{APPS}:add", str(i), "0")
    code, text = run_in_terminal(wf_cli, "list", "--limit", "3")
    assert code == 0, text
    assert text.rstrip().splitlines()[-1].strip() == "3 of 4 shown (--limit / --offset)", text
    code, text = run_in_terminal(wf_cli, "list", "--limit", "2", "--offset", "1")
    last = text.rstrip().splitlines()[-1].strip()
    assert last == "2 of 4 shown, from #2 (--limit / --offset)", text
    code, text = run_in_terminal(wf_cli, "list")
    assert text.rstrip().splitlines()[-1].strip() == "4 of 4 shown", text
    # piped: no footer
    assert "shown" not in wf_cli("list", "--limit", "3").ok().out


def test_count_takes_lists_filters_and_rejects_what_list_rejects(wf_cli: Wf) -> None:
    wf_cli.start(f"{APPS}:greet", "a")
    wf_cli("start", f"{APPS}:fail").expect(1)
    assert wf_cli("count", "-s", "ERROR").ok().out == "1\n"
    assert wf_cli("count", "--status", "SUCCESS,ERROR", "--since", "1h").ok().out == "2\n"
    assert wf_cli("count", "--until", "1h").ok().out == "0\n"
    wf_cli("count", "--status", "DONE").expect(2).one_line_error("DONE")
    wf_cli("count", "--since", "soonish").expect(2).one_line_error("--since")
    wf_cli("count", "-o", "ids").expect(2).one_line_error("-o ids")
