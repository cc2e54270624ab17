"""WorkflowHandle: a reference to a recorded workflow, to await or inspect."""

from __future__ import annotations

import asyncio
from typing import Any

from . import _executor
from ._records import WorkflowInfo


class WorkflowHandle:
    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to end and return its result (or raise its
        error). ``timeout`` seconds: raises AwaitTimeoutError; the workflow goes on."""
        from ._runner import wait_outcome

        ex = _executor.current_or_none()
        outcome = wait_outcome(_executor.client(), self.workflow_id, timeout, ex)
        return outcome.result(self.workflow_id)

    get_result = result

    async def result_async(self, timeout: float | None = None) -> Any:
        return await asyncio.to_thread(self.result, timeout)

    def status(self) -> WorkflowInfo:
        from ._inspect import get_workflow

        return get_workflow(self.workflow_id)

    get_status = status
