"""A queue-driven batch job: a parent workflow enqueues one child workflow per
item on the ``thumbnails`` queue and gathers their results through handles.

The queue runs at most 4 children at once across *all* processes serving it
(``concurrency=4``), so adding workers adds throughput without ever exceeding
the limit. Each child is a workflow of its own: if a process dies mid-batch,
finished thumbnails are not redone and the rest are picked up by a live
process; the parent, recovered too, gets the same child handles back (their
IDs derive from its own ID and the call's position) and finishes gathering.

Run it::

    python -m sample_apps.batch 12            # in this process
    wf worker sample_apps.batch &             # a worker serves the queue, then:
    wf start sample_apps.batch:make_thumbnails 12
    wf start --detach sample_apps.batch:make_thumbnails 40 && wf worker sample_apps.batch

Without a worker, ``wf start`` waits: a one-shot command serves no queue, so
the children it enqueues need a worker. After ~2 s it says so on stderr
("hint: 12 workflows are ENQUEUED on queue 'thumbnails', which no live
executor serves: run `wf worker sample_apps.batch` ...") and keeps waiting:
start a worker then, and it finishes.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from typing import Any

import wf

thumbnails = wf.Queue("thumbnails", concurrency=4)

WORK_SECONDS = 0.25


@wf.step()
def render_thumbnail(item: str) -> dict[str, Any]:
    """Process one item (hash it, slowly); record when and where it ran."""
    started = time.time()
    time.sleep(WORK_SECONDS)
    digest = hashlib.sha256(item.encode()).hexdigest()[:16]
    return {
        "item": item,
        "thumbnail": f"thumb-{digest}.png",
        "pid": os.getpid(),
        "started": started,
        "ended": time.time(),
    }


@wf.workflow()
def thumbnail(item: str) -> dict[str, Any]:
    """One child: a workflow, so it has its own ID, status and recovery."""
    return render_thumbnail(item)


def max_overlap(results: list[dict[str, Any]]) -> int:
    """The most children that were running at one moment (from their timestamps)."""
    edges = sorted(
        [(r["started"], 1) for r in results] + [(r["ended"], -1) for r in results],
        key=lambda e: (e[0], e[1]),
    )
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


@wf.workflow()
def make_thumbnails(count: int) -> dict[str, Any]:
    """Enqueue ``count`` children on the thumbnails queue, then gather them."""
    items = [f"image-{i:04d}.jpg" for i in range(1, count + 1)]
    handles = [thumbnails.enqueue(thumbnail, item) for item in items]
    wf.logger.info("enqueued %d thumbnails", len(handles))
    results = [h.result() for h in handles]
    wf.logger.info("gathered %d thumbnails", len(results))
    return {
        "count": len(results),
        "thumbnails": {r["item"]: r["thumbnail"] for r in results},
        "max_parallel": max_overlap(results),
        "processes": sorted({r["pid"] for r in results}),
        "seconds": round(max(r["ended"] for r in results) - min(r["started"] for r in results), 2),
    }


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 12
    try:
        result = make_thumbnails(count)
    finally:
        wf.shutdown()
    for item, thumb in list(result["thumbnails"].items())[:3]:
        print(f"{item} -> {thumb}")
    if count > 3:
        print(f"... ({count - 3} more)")
    print(
        f"{result['count']} thumbnails in {result['seconds']}s, at most "
        f"{result['max_parallel']} at once (queue concurrency 4), processes {result['processes']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
