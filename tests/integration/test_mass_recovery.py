"""Recovering thousands of workflows of a killed process at once: adopted in
batches (several claim statements), run a bounded number at a time (the rest wait their
turn, they do not each take a thread and a connection), every one finished
exactly once with its one step recorded once."""

from __future__ import annotations

import json
import subprocess
import sys

import wf
from wf._sysdb.dialects import dialect_for
from wf._worker.recovery import CLAIM_FIRST

from tests.helpers import REPO, AppResult, child_env

# more than two claim batches
N = 4 * CLAIM_FIRST + 100


def herd(command: str, db_url: str, **env: str) -> AppResult:
    proc = subprocess.run(
        [sys.executable, "-m", "tests.apps.herd", command, str(N)],
        env=child_env(db_url, env),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=300,
    )
    return AppResult(proc.returncode, proc.stdout, proc.stderr)


def test_thousands_adopted_at_once_run_a_bounded_number_at_a_time(
    db_url: str, backend: str
) -> None:
    first = herd("start", db_url, WF_TEST_HERD_HOLD="1")
    assert first.killed, first.describe()
    wf.configure(database_url=db_url)
    pending = wf.list_workflows(status="PENDING", limit=None)
    assert len(pending) == N  # every one was recorded, none finished

    res = herd("recover", db_url)
    assert res.returncode == 0, res.describe()
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("HERD ")]
    report = json.loads(line[len("HERD ") :])
    assert report["results"] == [2 * i for i in range(N)]
    limit = dialect_for(db_url).useful_writers
    assert 1 <= report["max_inside"] <= limit, report["max_inside"]

    done = wf.list_workflows(status="SUCCESS", limit=None)
    assert len(done) == N
    assert {w.recovery_attempts for w in done} == {1}
    assert not wf.list_workflows(status="PENDING", limit=None)
    for i in (0, N // 2, N - 1):
        steps = wf.list_steps(f"herd-{i:05d}")
        assert [(s.name, s.output) for s in steps] == [("herd_step", 2 * i)], steps
