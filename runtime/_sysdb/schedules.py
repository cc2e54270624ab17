"""The SQL of schedules: the rows of ``schedules`` the worker's cron loop and
the management calls (wf.create_schedule, pause, resume, delete, trigger,
backfill, list) read and write.

A row is either declared by the code (``source = 'code'``, written by each
worker that imports a ``@wf.scheduled`` workflow: queueing.py's
record_schedules, named after its workflow, ``module:function``) or stored
at run time (``source = 'db'``: ``insert_schedule``; its name never holds a
``:``, so the two kinds never share a name nor a tick ID). ``paused`` holds
for both; only stored rows are deleted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import BaseDatabase
from .rows import now_ms

# Statements by name, ``{s}`` the schema prefix (as in queries.py).
SQL: dict[str, str] = {
    # a new stored schedule; 0 rows: the name is taken (by either source)
    "schedule_insert": """
        INSERT INTO {s}schedules (name, workflow_name, cron, source, paused, updated_at,
            inputs, queue, created_at)
        VALUES (:name, :workflow_name, :cron, 'db', 0, :now, :inputs, :queue, :now)
        ON CONFLICT (name) DO NOTHING""",
    "schedule_set_paused": """
        UPDATE {s}schedules SET paused = :paused, updated_at = :now WHERE name = :name""",
    "schedule_delete": "DELETE FROM {s}schedules WHERE name = :name AND source = 'db'",
    "schedule_get": """
        SELECT name, workflow_name, cron, source, paused, last_tick, updated_at,
            inputs, queue, created_at
        FROM {s}schedules WHERE name = :name""",
    "schedule_all": """
        SELECT name, workflow_name, cron, source, paused, last_tick, updated_at,
            inputs, queue, created_at
        FROM {s}schedules ORDER BY name""",
    # which of these workflow IDs are recorded (a backfill skips those ticks)
    "schedule_recorded_ids": "SELECT workflow_id FROM {s}workflows WHERE workflow_id IN :ids",
}

_rendered: dict[tuple[str, str], str] = {}


def sql(db: Any, name: str) -> str:
    """The named statement for ``db``'s dialect."""
    key = (db.backend.name, name)
    text = _rendered.get(key)
    if text is None:
        text = _rendered[key] = SQL[name].replace("{s}", db.backend.schema_prefix)
    return text


@dataclass(frozen=True)
class ScheduleDef:
    """One row of ``schedules``, every column."""

    name: str
    workflow_name: str  # the target, "module:function"
    cron: str
    source: str  # "code": a worker's @wf.scheduled; "db": wf.create_schedule
    paused: bool
    last_tick: int | None  # epoch ms of the latest tick started
    updated_at: int
    inputs: str | None  # {"args": [...], "kwargs": {...}} (wf's JSON); None: none
    queue: str | None  # ticks go on this queue; None: the ticking worker starts them
    created_at: int | None


def _row(r: Any) -> ScheduleDef:
    return ScheduleDef(
        name=r[0],
        workflow_name=r[1],
        cron=r[2],
        source=r[3],
        paused=bool(r[4]),
        last_tick=None if r[5] is None else int(r[5]),
        updated_at=int(r[6]),
        inputs=r[7],
        queue=r[8],
        created_at=None if r[9] is None else int(r[9]),
    )


class SchedulesMixin(BaseDatabase):
    def insert_schedule(
        self, *, name: str, workflow_name: str, cron: str, inputs: str, queue: str | None
    ) -> bool:
        """Store a schedule; False when the name is taken (nothing written)."""
        params = dict(
            name=name,
            workflow_name=workflow_name,
            cron=cron,
            inputs=inputs,
            queue=queue,
            now=now_ms(),
        )
        return bool(self.execute(sql(self, "schedule_insert"), params).rowcount)

    def set_schedule_paused(self, name: str, paused: bool) -> bool:
        """Pause or resume; False when there is no such schedule."""
        params = dict(name=name, paused=1 if paused else 0, now=now_ms())
        return bool(self.execute(sql(self, "schedule_set_paused"), params).rowcount)

    def delete_schedule(self, name: str) -> bool:
        """Delete a stored schedule; False when there is no stored one by that name."""
        return bool(self.execute(sql(self, "schedule_delete"), dict(name=name)).rowcount)

    def get_schedule(self, name: str) -> ScheduleDef | None:
        row = self.execute(sql(self, "schedule_get"), dict(name=name)).first()
        return None if row is None else _row(row)

    def all_schedules(self) -> list[ScheduleDef]:
        return [_row(r) for r in self.execute(sql(self, "schedule_all"), {})]

    def recorded_ids(self, workflow_ids: list[str], chunk: int = 500) -> set[str]:
        """Those of ``workflow_ids`` that are recorded workflows."""
        out: set[str] = set()
        for i in range(0, len(workflow_ids), chunk):
            part = workflow_ids[i : i + chunk]
            out.update(
                r[0] for r in self.execute(sql(self, "schedule_recorded_ids"), {"ids": part})
            )
        return out
