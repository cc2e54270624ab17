"""What the core needs from the executor that runs a workflow.

The core (recording, runs, calls, control) is handed an object with this
shape and never imports the worker that implements it
(``wf._worker.executor.Executor``): objects are passed down, nothing reaches
up. Temporal's SDK does the same with its ``_Runtime``."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .._registry import WorkflowSpec
    from .._sysdb import AppDatabase, SystemDatabase
    from .runs import Outcome


class Runtime(Protocol):
    executor_id: str
    sysdb: SystemDatabase
    # where @wf.transaction bodies run: the system database itself by default
    appdb: SystemDatabase | AppDatabase
    same_db: bool
    # set when the executor stops: runs stop at their next call, left to recovery
    stopping: threading.Event

    def waiting(self, boundary: bool = True) -> AbstractContextManager[None]:
        """Wrap a blocking wait: the waiting thread's pool slot is free meanwhile."""
        ...

    def notify_ended(self) -> None:
        """A workflow run here has ended."""
        ...

    def runs_here(self, workflow_id: str) -> bool:
        """Is this process running that workflow now (so its end will be
        announced in-process)?"""
        ...

    def submit(
        self,
        spec: WorkflowSpec,
        workflow_id: str,
        args: list[Any],
        kwargs: dict[str, Any],
        deadline_ms: int | None = None,
        run_token: int | None = None,
    ) -> Future[Outcome | None]:
        """Run a fresh workflow (nothing recorded yet) in the background;
        ``run_token``: its row's created_at (WorkflowContext.run_token). The
        future's outcome: how the run ended, when its own write ended it."""
        ...
