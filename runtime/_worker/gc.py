"""The retention loop: a worker (``wf worker``, or ``wf.launch(worker=True)``)
with ``retention`` set (``WF_RETENTION`` / ``[tool.wf] retention``) deletes
ended workflows older than that, every WF_GC_INTERVAL seconds (default 300),
the first pass a few seconds after launch, paced (see PACE).

Several workers may run it at once: each batch takes one transaction-scoped
advisory lock on Postgres (collectors take turns, batch by batch; SQLite's
write lock does the same) and deletes are idempotent, so a second collector
finds the rows gone and moves on. A stop is noticed between batches."""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from .._config import mask_text
from .._sysdb import AppDatabase, now_ms
from .._sysdb.retention import collect

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger("wf")

GC_INTERVAL = float(os.environ.get("WF_GC_INTERVAL", "300"))
FIRST_PASS_AFTER = 5.0
# a background pass pauses after each batch as long as the batch took: it
# takes at most half of one connection's time, and its batches never queue
# up behind each other in front of the workload (an operator's `wf gc`
# runs at full speed)
PACE = 1.0


def start_gc(ex: Executor) -> None:
    """Start the loop when this executor is a worker and retention is set."""
    if not ex.worker or not ex.config.retention:
        return
    t = threading.Thread(target=_loop, args=(ex,), name="wf-retention", daemon=True)
    t.start()
    ex._threads.append(t)


def collect_once(ex: Executor) -> int:
    """One pass: delete what the retention setting says has expired."""
    retention = ex.config.retention
    assert retention is not None
    app = ex.appdb if not ex.same_db and isinstance(ex.appdb, AppDatabase) else None
    return collect(
        ex.sysdb,
        app,
        cutoff_ms=now_ms() - int(retention * 1000),
        stop=ex.stopping.is_set,
        pace=PACE,
        wait=ex.stopping.wait,
    )


def _loop(ex: Executor) -> None:
    wait = min(GC_INTERVAL, FIRST_PASS_AFTER)
    while not ex.stopping.wait(wait):
        wait = GC_INTERVAL
        try:
            n = collect_once(ex)
            if n:
                log.info("wf retention: deleted %d ended workflow(s)", n)
        except Exception as e:  # the next pass tries again
            log.warning("wf retention: %s", mask_text(str(e), ex.config.database_url))
