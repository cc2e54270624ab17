"""Application versions (SPEC §3.1): a process with WF_APP_VERSION stamps the
workflows it starts or enqueues, and adopts and dequeues only those of its
version (or unversioned ones, which it stamps). Old and new releases run side
by side on one database; each workflow ends on code that matches its record.

The new release here ("bad") changed the workflow without a patch: had it
replayed an old run, that run would fail with NonDeterminismError, and the
marker lines would show b2 run for an old workflow."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import wf

from tests.apps import upgrades
from tests.helpers import REPO, child_env, count, marker_lines, outcome, run_app, wait_for
from tests.reliability.procs import Procs

APP = "tests.apps.upgrades"
FAST = {"WF_RECOVERY_INTERVAL": "0.3", "WF_STALE_AFTER": "3", "WF_HEARTBEAT_INTERVAL": "0.3"}


@pytest.fixture
def procs(db_url: str, tmp_path: Path) -> Iterator[Procs]:
    p = Procs(db_url, tmp_path, {"WF_TEST_MARKERS": str(tmp_path / "markers.txt"), **FAST})
    try:
        yield p
    finally:
        p.close()


def _release(version: str | None, code: str, **extra: str) -> dict[str, str]:
    env = {"WF_TEST_CODE": code, **extra}
    if version is not None:
        env["WF_APP_VERSION"] = version
    return env


def _enqueue(db_url: str, env: dict[str, str], *ids: str) -> None:
    res = subprocess.run(
        [sys.executable, "-m", APP, "enqueue", *ids],
        env=child_env(db_url, env),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr


def _status(wid: str) -> wf.WorkflowInfo:
    return wf.get_workflow(wid)


def test_old_and_new_releases_side_by_side_each_workflow_on_its_own_code(
    db_url: str, tmp_path: Path, procs: Procs
) -> None:
    gate = tmp_path / "gate"
    markers = tmp_path / "markers.txt"
    v1 = _release("v1", "v1", WF_TEST_GATE=str(gate))
    v2 = _release("v2", "bad")
    wf.configure(database_url=db_url)

    old_worker = procs.worker(APP, "old-1", env=v1)
    old = [f"v1-{i}" for i in range(4)]
    _enqueue(db_url, v1, *old)
    wait_for(
        lambda: all(_status(w).executor_id == "old-1" for w in old),
        timeout=60,
        what="the old release to take its workflows",
    )

    procs.worker(APP, "new-1", env=v2)
    new = [f"v2-{i}" for i in range(3)]
    _enqueue(db_url, v2, *new)
    _enqueue(db_url, _release(None, "v1"), "unversioned")  # anyone's: stamped by its taker
    for w in new:
        assert wf.retrieve(w).result(timeout=60).startswith("bad:"), procs.logs()

    # the old release dies with its runs in flight: the new one must not adopt them
    old_worker.kill()
    old_worker.wait(timeout=30)
    res = run_app(APP, "recover", db_url=db_url, env=v2)  # `wf recover` of the new release
    assert res.returncode == 0, res.describe()
    # left to the old release: in flight under the dead worker, or (queued
    # work) put back on the queue, where only the old release dequeues it
    for w in old:
        info = _status(w)
        assert (info.status, info.executor_id) in (("PENDING", "old-1"), ("ENQUEUED", None)), info

    # an old-release worker comes back and finishes them on the old code
    gate.touch()
    procs.worker(APP, "old-2", env=v1)
    for i, w in enumerate(old):
        assert wf.retrieve(w).result(timeout=60) == f"v1:{(i + 1) * 10}", procs.logs()
    # either release may have taken it (the old one waited at the gate)
    assert wf.retrieve("unversioned").result(timeout=60).split(":")[0] in ("v1", "bad")

    lines = marker_lines(markers)
    for w in old:
        assert count(lines, f"b {w}") == 1 and count(lines, f"b2 {w}") == 0, lines
        assert count(lines, f"a {w}") == 1
    for w in new:
        assert count(lines, f"b2 {w}") == 1 and count(lines, f"b {w}") == 0
    v1_ids = {w.workflow_id for w in wf.list_workflows(app_version="v1", limit=None)}
    assert v1_ids - {"unversioned"} == set(old)
    stamped = {w.workflow_id: w.app_version for w in wf.list_workflows(limit=None)}
    assert all(stamped[w] == "v2" for w in new)
    assert stamped["unversioned"] in ("v1", "v2")  # stamped by whichever release took it
    assert not wf.list_workflows(status="ERROR")


def test_resume_and_restart_move_a_workflow_to_another_version(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    markers = tmp_path / "markers.txt"
    monkeypatch.setenv("WF_TEST_MARKERS", str(markers))
    env = _release("v1", "v1", WF_TEST_MARKERS=str(markers), WF_TEST_KILL_AT="after_b")
    res = run_app(APP, "start", "moving", "flow", "[1]", db_url=db_url, env=env)
    assert res.killed, res.describe()

    monkeypatch.setattr(upgrades, "CODE", "v2")
    wf.launch(database_url=db_url, app_version="v2")
    assert wf.recover().handles == []  # a v1 workflow is not this release's to adopt
    assert _status("moving").status == "PENDING"

    h = wf.resume("moving", app_version="v2")  # on purpose: v2 has wf.patched for it
    assert h.result(timeout=30) == "v2:20"
    info = _status("moving")
    assert info.app_version == "v2"
    assert count(marker_lines(markers), "b moving") == 1  # replayed, not run again

    # a restart as of a version no process here runs: left to that version's workers
    h = wf.restart("moving", app_version="v3")
    again = _status(h.workflow_id)
    assert (again.status, again.app_version) == ("ENQUEUED", "v3")


def test_the_version_comes_from_the_environment_pyproject_or_launch(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WF_APP_VERSION", "2026.12.1")
    wf.launch(database_url=db_url)
    with wf.set_workflow_id("from-env"):
        upgrades.flow(1)
    assert _status("from-env").app_version == "2026.12.1"
    wf.shutdown()
    monkeypatch.delenv("WF_APP_VERSION")
    Path("pyproject.toml").write_text('[tool.wf]\napp_version = "from-toml"\n')
    wf.launch(database_url=db_url)
    with wf.set_workflow_id("from-toml"):
        upgrades.flow(1)
    assert _status("from-toml").app_version == "from-toml"
    wf.shutdown()
    os.remove("pyproject.toml")
    wf.launch(database_url=db_url)
    with wf.set_workflow_id("none"):
        upgrades.flow(1)
    assert _status("none").app_version is None


def test_a_malformed_version_is_refused_before_anything_runs(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(wf.ConfigurationError, match="app_version"):
        wf.launch(database_url=db_url, app_version="has blanks")
    monkeypatch.setenv("WF_APP_VERSION", "x" * 101)
    with pytest.raises(wf.ConfigurationError, match="app_version"):
        wf.launch(database_url=db_url)


def test_cli_list_version_filter_and_resume_version(db_url: str, tmp_path: Path) -> None:
    env = _release("v7", "v1")
    res = run_app(APP, "start", "cli-v7", "flow", "[1]", db_url=db_url, env=env)
    assert outcome(res) == "v1:20", res.describe()
    base = [sys.executable, "-m", "wf.cli.main"]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *args, "--db", db_url],
            env=child_env(None),
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert cli("list", "--version", "v7", "-o", "ids").stdout.split() == ["cli-v7"]
    assert cli("list", "--version", "v8", "-o", "ids").stdout.split() == []
    assert cli("count", "--version", "v7").stdout.strip() == "1"
    bad = cli("list", "--version", " ")
    assert bad.returncode == 2 and "--version" in bad.stderr
    status = cli("status", "cli-v7", "--json")
    assert '"app_version": "v7"' in status.stdout
