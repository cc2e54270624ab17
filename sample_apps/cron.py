"""A scheduled job: every minute, write a heartbeat row.

``@wf.scheduled`` goes above ``@wf.workflow``; the workflow takes the tick's
time and the time it actually started. Each tick's workflow ID is derived from
the function and the tick, so with several workers up every tick still runs
exactly once -- the ``cron_heartbeats`` table gets one row per minute, whoever
wrote it. Ticks missed while nothing was running are not replayed.

Run it::

    wf worker sample_apps.cron               # one or more, on one database
    python -m sample_apps.cron 2             # or: serve it here for 2 ticks, then print the rows
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import wf
from sqlalchemy import Connection, text


def _ensure_table(db: Connection) -> None:
    db.execute(
        text(
            "CREATE TABLE IF NOT EXISTS cron_heartbeats ("
            " scheduled_at TEXT PRIMARY KEY,"
            " started_at TEXT NOT NULL,"
            " workflow_id TEXT NOT NULL,"
            " pid INTEGER NOT NULL)"
        )
    )


@wf.transaction()
def record_heartbeat(scheduled_at: datetime, started_at: datetime) -> int:
    """Insert this tick's row; return how many heartbeats there are now."""
    db = wf.db()
    _ensure_table(db)
    db.execute(
        text(
            "INSERT INTO cron_heartbeats (scheduled_at, started_at, workflow_id, pid)"
            " VALUES (:s, :t, :w, :p) ON CONFLICT (scheduled_at) DO NOTHING"
        ),
        {
            "s": scheduled_at.isoformat(),
            "t": started_at.isoformat(),
            "w": wf.workflow_id(),
            "p": os.getpid(),
        },
    )
    return int(db.execute(text("SELECT COUNT(*) FROM cron_heartbeats")).scalar_one())


@wf.scheduled("* * * * *")
@wf.workflow()
def heartbeat(scheduled_at: datetime, started_at: datetime) -> int:
    count = record_heartbeat(scheduled_at, started_at)
    lag = (started_at - scheduled_at).total_seconds()
    wf.logger.info("heartbeat for %s (started %.3fs late): %d so far", scheduled_at, lag, count)
    return count


@wf.transaction()
def heartbeats() -> list[dict[str, Any]]:
    """All heartbeat rows, oldest first (empty before the first tick)."""
    db = wf.db()
    _ensure_table(db)
    rows = db.execute(
        text(
            "SELECT scheduled_at, started_at, workflow_id, pid"
            " FROM cron_heartbeats ORDER BY scheduled_at"
        )
    ).all()
    return [dict(r._mapping) for r in rows]


def main(argv: list[str]) -> int:
    ticks = int(argv[0]) if argv else 1
    wf.launch()
    try:
        start = datetime.now(UTC)
        print(
            f"serving the schedule for {ticks} tick(s) (each minute, on the minute) ...", flush=True
        )
        ours: list[wf.WorkflowInfo] = []
        while len(ours) < ticks:
            time.sleep(1)
            ours = [
                w
                for w in wf.list_workflows(
                    name="sample_apps.cron:heartbeat", since=start, limit=None
                )
                if w.status in wf.Status.ENDED
            ]
        for row in heartbeats():
            print(
                f"tick {row['scheduled_at']}  started {row['started_at']}"
                f"  pid {row['pid']}  {row['workflow_id']}"
            )
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
