"""wf db migrate / status, the unreachable database (exit 5), passwords,
usage errors and help."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.conftest import APPS, Wf, database_untouched

UNREACHABLE = "postgresql://wfuser:s3cret-pw@127.0.0.1:1/nowhere"


def test_db_migrate_and_status(wf_cli: Wf, db_url: str) -> None:
    assert database_untouched(db_url)
    res = wf_cli("db", "migrate").ok()
    assert "migrated" in res.out
    doc = wf_cli("db", "status", "--json").ok().json()
    assert set(doc) == {"url", "current_version", "latest_version", "up_to_date", "url_source"}
    assert doc["current_version"] == doc["latest_version"] >= 1
    assert doc["up_to_date"] is True
    again = wf_cli("db", "migrate", "--json").ok().json()
    assert again["current_version"] == doc["current_version"]
    assert again["previous_version"] == doc["current_version"]
    assert "already at version" in wf_cli("db", "migrate").ok().out
    human = wf_cli("db", "status").ok().out
    assert "up to date" in human


def test_db_status_before_migrate(wf_cli: Wf, db_url: str) -> None:
    if db_url.startswith("sqlite"):  # no file yet, and db status makes none (issue 13)
        wf_cli("db", "status", "--json").expect(5).one_line_error("no wf database")
        return
    doc = wf_cli("db", "status", "--json").ok().json()
    assert doc["current_version"] == 0
    assert doc["up_to_date"] is False


@pytest.mark.parametrize(
    "command",
    [
        ["list"],
        ["status", "x"],
        ["steps", "x"],
        ["logs"],
        ["await", "x"],
        ["cancel", "x"],
        ["resume", "x"],
        ["restart", "x"],
        ["send", "x", "1"],
        ["recover"],
        ["queue", "list"],
        ["db", "migrate"],
        ["db", "status"],
        ["start", f"{APPS}:greet", "bob"],
        # not `wf worker`: a long-running process waits for the database
        # (tests/reliability/test_worker_faults.py)
    ],
)
def test_unreachable_database_exits_5_without_the_password(
    sqlite_cli: Wf, command: list[str]
) -> None:
    res = sqlite_cli(*command, "--db", UNREACHABLE, timeout=60).expect(5).one_line_error()
    assert "s3cret-pw" not in res.err + res.out
    assert "***" in res.err


def test_password_never_printed(sqlite_cli: Wf) -> None:
    res = sqlite_cli("db", "status", "--db", UNREACHABLE, "--debug").expect(5)
    assert "s3cret-pw" not in res.err + res.out


def test_password_masked_in_db_output(wf_cli: Wf, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("a password needs a server URL")
    # trust authentication ignores the password; it must still never be shown
    url = db_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    res = wf_cli("db", "migrate", "--db", url).ok()
    assert "hunter2" not in res.out + res.err
    assert "***" in res.out
    res = wf_cli("db", "status", "--db", url).ok()
    assert "hunter2" not in res.out + res.err
    assert "***" in res.out
    assert wf_cli("db", "status", "--json", "--db", url).ok().json()["url"].count("***") == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["frobnicate"], "frobnicate"),
        (["status"], "ID"),
        (["start"], "MODULE:FUNCTION"),
        (["list", "--bogus"], "--bogus"),
        (["send", "x"], "MESSAGE"),
        (["db", "explode"], "explode"),
    ],
)
def test_usage_errors_are_one_line_exit_2(sqlite_cli: Wf, args: list[str], needle: str) -> None:
    sqlite_cli(*args).expect(2).one_line_error(needle)


def test_help(sqlite_cli: Wf) -> None:
    res = sqlite_cli("--help").ok()
    for command in (
        "start",
        "status",
        "list",
        "steps",
        "logs",
        "await",
        "cancel",
        "resume",
        "restart",
        "recover",
        "worker",
        "queue",
        "send",
        "db",
    ):
        assert f"  {command} " in res.out, command
    assert sqlite_cli().ok().out == res.out  # bare `wf` shows the help
    assert "migrate" in sqlite_cli("db").ok().out
    for sub in (["start"], ["list"], ["logs"], ["worker"], ["queue", "list"], ["db", "status"]):
        out = sqlite_cli(*sub, "--help").ok().out
        assert "--db" in out and "WF_DATABASE_URL" in out, sub
        assert "--json" in out
    assert "WF_WORKER_CONCURRENCY" in sqlite_cli("worker", "--help").ok().out
    assert sqlite_cli("--version").ok().out.startswith("wf ")


def test_default_database_is_wf_sqlite_in_the_cwd(sqlite_cli: Wf, cwd: object) -> None:
    from pathlib import Path

    assert isinstance(cwd, Path)
    sqlite_cli("start", f"{APPS}:add", "1", "2", db=False).ok()
    assert (cwd / "wf.sqlite").exists()
    assert len(sqlite_cli("list", "--json", db=False).ok().json()) == 1


def test_pyproject_tool_wf_database_url(sqlite_cli: Wf, cwd: object, tmp_path: object) -> None:
    from pathlib import Path

    assert isinstance(cwd, Path) and isinstance(tmp_path, Path)
    target = tmp_path / "from-pyproject.sqlite"
    (cwd / "pyproject.toml").write_text(f'[tool.wf]\ndatabase_url = "sqlite:///{target}"\n')
    sqlite_cli("start", f"{APPS}:add", "1", "2", db=False).ok()
    assert target.exists()
    assert not (cwd / "wf.sqlite").exists()


def _new_modules_for_help() -> set[str]:
    code = (
        "import sys, wf\n"
        "before = set(sys.modules)\n"
        "from wf.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print(' '.join(sorted(set(sys.modules) - before)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(out.strip().splitlines()[-1].split())


def test_help_imports_no_heavy_modules_of_its_own() -> None:
    heavy = {"sqlalchemy", "psycopg", "rich", "pydantic"}
    loaded = {m.split(".")[0] for m in _new_modules_for_help()}
    assert not (loaded & heavy), loaded & heavy
