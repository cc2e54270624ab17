"""A limited queue whose worker freezes itself (a real SIGSTOP of the whole
process) inside its dequeue transaction, right after taking the queue's lock,
once the file named by WF_TEST_FREEZE_FILE exists (it marks ``frozen PID``
first). Only in the process that has WF_TEST_FREEZE_FILE set."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import wf

from tests.apps.comm_common import mark

LIMITED = wf.Queue("q1_frozen", concurrency=2)


@wf.step()
def note(tag: str) -> int:
    mark(f"ran {tag} {os.getpid()} {time.time()!r}")
    return os.getpid()


@wf.workflow()
def quick(tag: str) -> int:
    return note(tag)


_freeze = os.environ.get("WF_TEST_FREEZE_FILE")
_frozen = False


def _freeze_after(statement: str) -> None:
    global _frozen
    if _frozen or _freeze is None or "pg_advisory_xact_lock" not in statement:
        return
    if Path(_freeze).exists():
        _frozen = True
        mark(f"frozen {os.getpid()}")
        os.kill(os.getpid(), signal.SIGSTOP)


if _freeze:
    # wf's own transactions run on the raw driver (wf._sysdb.driver)
    from wf._sysdb import driver

    _execute = driver.RawConnection.execute

    def _execute_then_freeze(self: Any, sql: str, params: Any = None) -> Any:
        out = _execute(self, sql, params)
        _freeze_after(sql)
        return out

    driver.RawConnection.execute = _execute_then_freeze  # type: ignore[method-assign]
