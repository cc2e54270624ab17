"""Read commands stay light: a CLI read (status, list, steps, logs, await of
a finished workflow) never imports SQLAlchemy, the heaviest import wf has.
wf's own statements run on the raw drivers; SQLAlchemy is loaded only when a
@wf.transaction body needs a Connection. (The wall time itself is measured in
bench/, not asserted here.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.conftest import Wf

LIGHT = "tests.cli.apps.light"


_MAIN = "import sys; from wf.cli.main import main; sys.argv = ['wf', *sys.argv[1:]]; main()"


def _probe(wf_cli: Wf, *args: str) -> dict[str, object]:
    """Run ``wf ARGS`` in this interpreter with ``-X importtime`` (which
    reports each import as it happens, however the command exits)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _MAIN, *args],
        env=wf_cli.env(),
        cwd=str(wf_cli.cwd),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    imported = {line.rpartition("|")[2].strip() for line in proc.stderr.splitlines()}
    assert "wf._sysdb.engine" in imported, proc.stderr[-3000:]  # it did reach the database
    return {"sqlalchemy": "sqlalchemy" in imported}


@pytest.mark.parametrize(
    "command", [["status"], ["list"], ["steps"], ["logs"], ["await"], ["count"]]
)
def test_a_read_command_does_not_import_sqlalchemy(wf_cli: Wf, command: list[str]) -> None:
    wid = wf_cli.start(f"{LIGHT}:hello", "ada")
    args = [*command, wid] if command[0] not in ("list", "count") else command
    assert _probe(wf_cli, *args)["sqlalchemy"] is False


def test_starting_a_workflow_without_transactions_does_not_import_sqlalchemy(
    wf_cli: Wf,
) -> None:
    assert _probe(wf_cli, "start", f"{LIGHT}:hello", "ada")["sqlalchemy"] is False
