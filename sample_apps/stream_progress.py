"""A long job that streams its progress to a reader in another process.

``report`` processes ``chunks`` pieces of work, one step each, and after each
one writes a progress record to its stream ``progress`` (``wf.write_stream``);
at the end it closes the stream. Anyone can follow it, from any process, with
``wf.read_stream`` (or ``wf stream ID progress --follow``): the values arrive
in order, each once, and the reader stops at the close.

Kill the job mid-way (Ctrl-C, or SIGKILL) and recover it (``wf recover``, or
start it again with the same ID): the reader that kept waiting sees the rest
continue where it stopped, no value lost or repeated. Chunks that finished are
not processed again (their steps are recorded), and the writes that committed
are not written twice (each write is recorded with its value, in one commit).

Run it (two terminals, one database; SQLite works too, Postgres wakes the
reader at once by NOTIFY, SQLite readers in another process poll)::

    export WF_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
    wf start --id job-1 sample_apps.stream_progress:report 20     # terminal 1
    python -m sample_apps.stream_progress follow job-1           # terminal 2
    wf stream job-1 progress --follow -o jsonl                   # or this

Or both in one command: ``python -m sample_apps.stream_progress demo 10``
starts the job in a child process and follows it from this one.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from typing import Any

import wf

CHUNK_SECONDS = float(os.environ.get("STREAM_PROGRESS_CHUNK_SECONDS", "0.2"))


@wf.step()
def process_chunk(i: int) -> int:
    """One piece of the long job (here: sleep, then a made-up item count)."""
    time.sleep(CHUNK_SECONDS)
    return 100 + i


@wf.workflow()
def report(chunks: int) -> dict[str, Any]:
    """Process ``chunks`` pieces, streaming a progress record after each."""
    done_items = 0
    for i in range(chunks):
        done_items += process_chunk(i)
        wf.write_stream(
            "progress",
            {
                "chunk": i + 1,
                "of": chunks,
                "percent": round(100 * (i + 1) / chunks),
                "items": done_items,
            },
        )
    wf.close_stream("progress")
    return {"chunks": chunks, "items": done_items}


def follow(workflow_id: str) -> list[Any]:
    """Print the job's progress as it comes (blocks until the stream is closed)."""
    seen = []
    for p in wf.read_stream(workflow_id, "progress"):
        print(f"{p['percent']:3d}%  chunk {p['chunk']}/{p['of']}  ({p['items']} items)", flush=True)
        seen.append(p)
    print(f"{workflow_id}: {wf.retrieve(workflow_id).result()}", flush=True)
    return seen


def demo(chunks: int) -> None:
    """Start the job in another process and follow it from this one."""
    workflow_id = f"progress-{uuid.uuid4().hex[:8]}"
    cmd = [sys.executable, "-m", "wf.cli.main", "start", "--id", workflow_id]
    job = subprocess.Popen(
        [*cmd, "sample_apps.stream_progress:report", str(chunks)], stdout=subprocess.DEVNULL
    )
    while True:  # until the other process has recorded the workflow
        try:
            wf.get_workflow(workflow_id)
            break
        except wf.WorkflowNotFoundError:
            if job.poll() is not None:
                raise SystemExit(f"the job's process ended early (exit {job.returncode})") from None
            time.sleep(0.05)
    follow(workflow_id)
    job.wait()


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else "demo"
    if command == "follow" and len(sys.argv) == 3:
        follow(sys.argv[2])
    elif command == "demo":
        demo(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
    else:
        raise SystemExit("usage: python -m sample_apps.stream_progress demo [CHUNKS] | follow ID")
