"""A workflow for tests/reliability/test_queue_faults.py's resume race: its
module is slow to import where WF_TEST_IMPORT_DELAY is set (it marks
``importing PID`` first), which holds ``wf.resume`` open between reading the
row and taking it over, in a process that had not imported it yet."""

from __future__ import annotations

import os
import time

import wf

from tests.apps.comm_common import mark

if os.environ.get("WF_TEST_IMPORT_DELAY"):
    mark(f"importing {os.getpid()}")
    time.sleep(float(os.environ["WF_TEST_IMPORT_DELAY"]))


@wf.step()
def long_step() -> int:
    mark(f"start {os.getpid()} {time.time()!r}")
    time.sleep(float(os.environ.get("WF_TEST_HOLD", "10")))
    mark(f"end {os.getpid()} {time.time()!r}")
    return os.getpid()


@wf.workflow()
def adopted() -> int:
    return long_step()
