"""Recorded by tests/reliability/test_security.py's crash, so `wf recover`
must import it; says so in WF_TEST_MARKERS when imported."""

from __future__ import annotations

import os

import wf

from tests.apps.comm_common import kill_point, mark

mark(f"imported chaos_recover_a {os.getpid()}")


@wf.step()
def first(n: int) -> int:
    kill_point("in_first")
    return n + 1


@wf.workflow()
def job(n: int) -> int:
    return first(n) * 2
