"""Issue 16 in the CLI: `wf list --partition K`, `wf queue list`'s line per
partitioned queue (its limits, or that they are not published yet, and the
busiest partitions), and `wf status` of a DELAYED workflow (when it becomes
eligible; the hint when no live worker would run it). The work is enqueued
by a separate process (tests/apps/comm_partitions.py's queues), with delays
long enough that it waits through the test."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from tests.cli.conftest import Wf
from tests.helpers import REPO, child_env

MODULE = "tests.apps.comm_partitions"


def _enqueue(db_url: str, body: str) -> list[str]:
    """Run ``body`` (with ``wf`` launched to enqueue only and ``app`` the
    module) in another process; the IDs it prints, one per line."""
    code = (
        "import wf\n"
        "from tests.apps import comm_partitions as app\n"
        "wf.launch(queues=[], recovery=False)\n"
        f"{body}\n"
        "wf.shutdown()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        env=child_env(db_url),
        cwd=str(REPO),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def _status_rows(wf_cli: Wf, workflow_id: str) -> dict[str, str]:
    """`wf status ID`'s piped ``label  value`` lines (values lined up)."""
    lines = [ln for ln in wf_cli("status", workflow_id).ok().out.splitlines() if ln.strip()]
    col = len(lines[0]) - len(lines[0][len("workflow") :].lstrip())
    return {ln[:col].strip(): ln[col:] for ln in lines}


def _partition_line(out: str, queue: str) -> str:
    lines = [ln for ln in out.splitlines() if ln.startswith(f"{queue}: ")]
    assert len(lines) == 1, out
    return lines[0]


def test_list_by_partition_and_queue_list_busiest(wf_cli: Wf, db_url: str) -> None:
    ids = _enqueue(
        db_url,
        "for p in ['hot', 'hot', 'hot', 'cold']:\n"
        "    print(app.TENANTS.enqueue(app.other, p, partition_key=p, delay=600).workflow_id)",
    )
    hot, cold = set(ids[:3]), ids[3]

    # wf list --partition K
    assert set(wf_cli("list", "--partition", "hot", "-o", "ids").ok().out.split()) == hot
    listed = wf_cli("list", "--partition", "cold").ok().out
    assert cold in listed and not any(h in listed for h in hot)
    assert [
        w["partition_key"] for w in wf_cli("list", "--partition", "cold", "--json").ok().json()
    ] == ["cold"]
    assert wf_cli("list", "--partition", "nope", "-o", "ids").ok().out.strip() == ""
    wf_cli("list", "--partition", " ").expect(2).one_line_error("--partition")

    # no worker has published part_tenants' limits: unknown, not "no limit"
    line = _partition_line(wf_cli("queue", "list").ok().out, "part_tenants")
    assert line == (
        "part_tenants: per partition limits not published yet (no worker that declares the "
        "queue has served it); busiest: hot (0 running, 3 enqueued), cold (0 running, 1 enqueued)"
    ), line

    # a worker serving it publishes them
    worker = wf_cli.spawn("worker", MODULE, "--queue", "part_tenants")
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = {r["name"]: r for r in wf_cli("queue", "list", "--json").ok().json()}
            if rows["part_tenants"]["concurrency"] == 4:
                break
            assert time.monotonic() < deadline and worker.poll() is None, rows
            time.sleep(0.3)
    finally:
        worker.send_signal(signal.SIGTERM)
    assert wf_cli.finish(worker, ["worker"]).code == 0
    line = _partition_line(wf_cli("queue", "list").ok().out, "part_tenants")
    assert line == (
        "part_tenants: per partition concurrency 2; "
        "busiest: hot (0 running, 3 enqueued), cold (0 running, 1 enqueued)"
    ), line


def test_status_of_a_delayed_workflow_says_when_it_is_eligible_and_who_runs_it(
    wf_cli: Wf, db_url: str
) -> None:
    (delayed, queued) = _enqueue(
        db_url,
        "print(app.DEBOUNCED.enqueue(app.other, 'later', delay=600).workflow_id)\n"
        "print(app.DEBOUNCED.enqueue(app.other, 'now').workflow_id)",
    )
    rows = _status_rows(wf_cli, delayed)
    assert rows["status"] == "DELAYED"
    assert rows["queued"].endswith(")") and "… (eligible in 9m5" in rows["queued"], rows
    assert rows["not before"] != "-"
    # nothing live serves part_debounced: the same hint an ENQUEUED one gets
    worker_line = rows["worker"]
    assert worker_line.startswith(
        f"no live worker has registered workflow {MODULE}:other (none serves queue "
        "'part_debounced'); eligible at "
    ), worker_line
    assert worker_line.endswith(f"it stays on its queue until one does: run `wf worker {MODULE}`")
    assert rows["not before"] in worker_line
    # and the ENQUEUED one, for comparison
    enq = _status_rows(wf_cli, queued)
    assert enq["status"] == "ENQUEUED" and enq["queued"].endswith("…")
    assert "it stays ENQUEUED until one does" in enq["worker"]


def test_delayed_workflows_are_cancelled_by_status_like_enqueued_ones(
    wf_cli: Wf, db_url: str
) -> None:
    (delayed, queued) = _enqueue(
        db_url,
        "print(app.DEBOUNCED.enqueue(app.other, 'later', delay=600).workflow_id)\n"
        "print(app.DEBOUNCED.enqueue(app.other, 'now').workflow_id)",
    )
    # DELAYED is a status wf shows: a filter on it selects, and cancels, those only
    out = wf_cli("cancel", "--status", "DELAYED", "--yes", "-o", "ids").ok().out.split()
    assert out == [delayed]
    assert _status_rows(wf_cli, delayed)["status"] == "CANCELLED"
    assert _status_rows(wf_cli, queued)["status"] == "ENQUEUED"
