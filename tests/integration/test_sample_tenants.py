"""sample_apps/tenants.py run for real, as its docstring says: a `wf worker`
process serves its queues and `python -m sample_apps.tenants --enqueue-only`
enqueues (partition keys, a debounce key, a dedup_id with
on_duplicate="return"), waits and prints; then `wf queue list`."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import wf

from tests.helpers import REPO, child_env, wait_for


def test_the_tenants_sample_runs_on_a_worker(db_url: str, tmp_path: Path) -> None:
    env = child_env(db_url, {"TENANTS_SEND_SECONDS": "0.05"})
    wf_exe = str(Path(sys.executable).parent / "wf")
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115
    worker = subprocess.Popen(
        [wf_exe, "worker", "sample_apps.tenants"], env=env, cwd=str(REPO), stdout=log, stderr=log
    )
    try:
        wf.configure(database_url=db_url)
        wait_for(
            lambda: worker.pid in {e.pid for e in wf.list_executors() if e.alive},
            timeout=60,
            what="the worker",
        )
        demo = subprocess.run(
            [sys.executable, "-m", "sample_apps.tenants", "--enqueue-only"],
            env=env,
            cwd=str(REPO),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert demo.returncode == 0, demo.stderr
        lines = demo.stdout.splitlines()
        assert lines[:3] == [
            "digests: acme 8, tiny 2; at most 1 per tenant at once; tiny done before acme: True",
            "doc-7: 5 enqueues, 1 workflow: doc-7@v5",
            "order-1: 2 enqueues, 1 workflow: charged order-1 19.99",
        ], demo.stdout
        m = re.fullmatch(r"ran in processes \[(\d+)\] \(this one: (\d+)\)", lines[3])
        assert m is not None and int(m[1]) == worker.pid, lines[3]  # the worker ran them
        assert len(wf.list_workflows(name="rebuild_index", limit=None)) == 1
        listed = subprocess.run(
            [wf_exe, "queue", "list"], env=env, cwd=str(REPO), capture_output=True, text=True
        )
        assert listed.returncode == 0, listed.stderr
        assert "digests: per partition concurrency 1" in listed.stdout.splitlines(), listed.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
        log.close()
    assert code == 0, (tmp_path / "worker.log").read_text()
