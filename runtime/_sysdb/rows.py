"""Typed rows read from the system database."""

from __future__ import annotations

import time
from dataclasses import dataclass


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


@dataclass(frozen=True)
class ClaimedRow:
    workflow_id: str
    name: str
    inputs: str
    recovery_attempts: int
    max_recovery_attempts: int
    deadline: int | None


_NEVER = 2**62  # an updated_at bound that excludes nothing


@dataclass(frozen=True)
class ExecutorRow:
    executor_id: str
    host: str
    pid: int
    started_at: int
    heartbeat_at: int
