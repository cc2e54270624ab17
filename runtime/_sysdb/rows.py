"""Typed rows read from the system database."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class WorkflowRow:
    workflow_id: str
    status: str
    name: str
    inputs: str
    output: str | None
    error: str | None
    executor_id: str | None
    queue: str | None
    priority: int
    dedup_id: str | None
    parent_workflow_id: str | None
    recovery_attempts: int
    max_recovery_attempts: int
    created_at: int
    updated_at: int
    started_at: int | None
    deadline: int | None
    timeout_ms: int | None
    not_before: int | None
    # 1 while a run of it may be going (from its start or claim until the run
    # stops), also after it was cancelled: a resume waits for that run
    slot_held: int = 0
    cancel_reason: str | None = None
    forked_from: str | None = None
    forked_from_step: int | None = None  # 0-based: calls before it were copied
    app_version: str | None = None
    partition_key: str | None = None  # its partition of its queue (limits per partition)
    debounce_key: str | None = None  # enqueues with this key collapse into it while it waits
    debounce_until: int | None = None  # the latest its debounced start may move to


@dataclass(frozen=True)
class StepRow:
    position: int  # 0-based internally; shown from 1
    name: str
    kind: str
    output: str | None
    error: str | None
    child_workflow_id: str | None
    started_at: int | None
    ended_at: int | None
    attempts: int = 1
    detail: str | None = None  # recv's topic, an event's key, a send's destination


@dataclass(frozen=True)
class ClaimedRow:
    workflow_id: str
    name: str
    inputs: str
    recovery_attempts: int
    max_recovery_attempts: int
    deadline: int | None
    # has it recorded calls? (a dequeue knows: a fresh run then loads none)
    has_calls: bool = True
    # the row's created_at: the run's token (WorkflowContext.run_token)
    created_at: int | None = None

    @staticmethod
    def of(row: Any, has_calls: bool, created_at: int) -> ClaimedRow:
        """From a claim's first six columns (workflow_id ... deadline)."""
        return ClaimedRow(row[0], row[1], row[2], row[3], row[4], row[5], has_calls, created_at)


_NEVER = 2**62  # an updated_at bound that excludes nothing


@dataclass(frozen=True)
class ExecutorRow:
    executor_id: str
    host: str
    pid: int
    started_at: int
    heartbeat_at: int
    queues: str | None = None  # JSON array of the queues it serves; None: every queue
    workflows: str | None = None  # JSON array of the names it has registered; None: not said


@dataclass(frozen=True)
class EventRow:
    key: str
    value: str
    updated_at: int


def event_record(key: str, payload: str) -> str:
    """The recorded output of a set_event call: the key and the value it set
    (JSON), so a restart that copies the call can copy the event too."""
    return '{"key": ' + json.dumps(key) + ', "value": ' + payload + "}"


def event_of_record(output: str | None) -> tuple[str | None, str]:
    """(key, value as stored) from a set_event record; (None, "") for a record
    written before events were kept in it."""
    try:
        raw = json.loads(output or "null")
    except ValueError:
        return None, ""
    if not isinstance(raw, dict) or not isinstance(raw.get("key"), str) or "value" not in raw:
        return None, ""
    return raw["key"], json.dumps(raw["value"], ensure_ascii=False, separators=(",", ":"))
