"""The system database layer: schema and migrations (schema.py), every SQL
statement by name (queries.py), pools and outage retries (engine.py), typed
operations (database.py with messaging.py and queueing.py), typed rows
(rows.py). Nothing above this package writes SQL."""

from .database import AppDatabase, SystemDatabase
from .rows import ClaimedRow, ExecutorRow, StepRow, WorkflowRow, now_ms

__all__ = [
    "AppDatabase",
    "ClaimedRow",
    "ExecutorRow",
    "StepRow",
    "SystemDatabase",
    "WorkflowRow",
    "now_ms",
]
