"""wf._support, the CLI's one door into wf's internals: the command wrapper
shuts wf down through it, and the worker names its executor through it."""

from __future__ import annotations

import signal
import subprocess
import sys
from urllib.parse import urlsplit, urlunsplit

import pytest
import typer

from tests.cli.conftest import APPS, Wf


def test_a_command_shuts_wf_down_on_its_way_out(db_url: str) -> None:
    import wf
    from wf import _support
    from wf.cli.errors import command

    @command
    def launches() -> int:
        wf.launch(database_url=db_url)
        assert _support.executor_identity() is not None
        return 0

    with pytest.raises(typer.Exit) as exited:
        launches()
    assert exited.value.exit_code == 0
    # stopped (threads joined, executor row deleted), not left to exit with the process
    assert _support.executor_identity() is None


def test_a_command_that_fails_early_loads_no_database_driver() -> None:
    code = (
        "import sys\n"
        "import typer\n"
        "from wf.cli.errors import BadInput, command\n"
        "@command\n"
        "def bad() -> int:\n"
        "    raise BadInput('no')\n"
        "try:\n"
        "    bad()\n"
        "except typer.Exit as e:\n"
        "    print(e.exit_code, 'sqlalchemy' in sys.modules, 'psycopg' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["2", "False", "False"]


def _with_password(url: str, password: str) -> str:
    """``url`` with a password (the test Postgres trusts any password)."""
    parts = urlsplit(url)
    netloc = parts.netloc.replace("@", f":{password}@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_worker_start_line_names_its_executor_and_masks_the_password(
    wf_cli: Wf, backend: str
) -> None:
    password = "s3cret-pw"
    if backend == "postgres":
        wf_cli.db_url = _with_password(str(wf_cli.db_url), password)
    wid = wf_cli("start", "--detach", f"{APPS}:add", "2", "3").ok().out.strip()
    proc = wf_cli.spawn("worker", APPS, "--executor-id", "cli-ident-1")
    try:  # the worker is up once it has run the workflow
        assert wf_cli("await", "--json", "--timeout", "60", wid).ok().json()["output"] == 5
    finally:
        proc.send_signal(signal.SIGTERM)
    res = wf_cli.finish(proc, ["worker"], timeout=30)
    assert res.code == 0, res.describe()
    start = [ln for ln in res.err.splitlines() if ln.startswith("wf worker ")]
    assert len(start) == 1, res.describe()
    assert start[0].startswith("wf worker cli-ident-1 on "), res.describe()
    assert " ? " not in start[0] and password not in res.err, res.describe()
    if backend == "postgres":
        assert ":***@" in start[0], res.describe()
