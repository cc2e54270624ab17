"""WorkflowHandle: a reference to a recorded workflow, to await or inspect."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from . import _root
from ._records import WorkflowInfo

if TYPE_CHECKING:
    from ._core import Outcome


class WorkflowHandle:
    def __init__(self, workflow_id: str, run: Future[Outcome | None] | None = None) -> None:
        self.workflow_id = workflow_id
        # the run wf.start began in this process: its SUCCESS needs no read
        self._run = run

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.workflow_id!r})"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to end and return its result (or raise its
        error). ``timeout`` seconds: raises AwaitTimeoutError; the workflow goes on."""
        from ._core import wait_outcome

        ex = _waiting_executor()
        sysdb = _root.client()
        if ex is None:
            outcome = wait_outcome(sysdb, self.workflow_id, timeout, None, self._run)
        else:
            # a workflow thread waiting here gives its pool slot back, so the
            # workflow it waits for (say a background child) can run
            with ex.waiting():
                outcome = wait_outcome(sysdb, self.workflow_id, timeout, ex, self._run)
        return outcome.result(self.workflow_id)

    get_result = result

    async def result_async(self, timeout: float | None = None) -> Any:
        ex = _waiting_executor()
        if ex is None:
            return await asyncio.to_thread(self.result, timeout)
        # the event loop's thread (an async workflow's pool thread) waits;
        # other tasks of its loop may still run, so this is no call boundary
        with ex.waiting(boundary=False):
            return await asyncio.to_thread(self.result, timeout)

    def status(self) -> WorkflowInfo:
        from ._inspect import get_workflow

        return get_workflow(self.workflow_id)

    get_status = status


def _waiting_executor() -> _root.Executor | None:
    """The executor whose workflow thread would wait: the one running the
    calling workflow, else the process's."""
    from ._context import current

    ctx = current.get()
    if ctx is not None and ctx.executor is not None:
        ex: _root.Executor = ctx.executor
        return ex
    return _root.current_or_none()
