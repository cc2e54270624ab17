"""The system database layer: schema, migrations and the wake-up key format
(schema.py), every SQL statement by name (queries.py), what differs per
database (dialects.py), pools and outage retries (engine.py), typed
operations (database.py with messaging.py and queueing.py), typed rows
(rows.py), the LISTEN connection (listener.py). Nothing above this package
writes SQL or knows a driver."""

from .database import AppDatabase, SystemDatabase
from .engine import is_connection_error, is_database_error, is_serialization_failure
from .listener import Listener, start_listener
from .rows import (
    ClaimedRow,
    EventRow,
    ExecutorRow,
    StepRow,
    WorkflowRow,
    now_ms,
)
from .schema import wake_key

__all__ = [
    "AppDatabase",
    "ClaimedRow",
    "EventRow",
    "ExecutorRow",
    "Listener",
    "StepRow",
    "SystemDatabase",
    "WorkflowRow",
    "is_connection_error",
    "is_database_error",
    "is_serialization_failure",
    "now_ms",
    "start_listener",
    "wake_key",
]
