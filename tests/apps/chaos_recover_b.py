"""Never recorded by any workflow: `wf recover` must not import it (it says
so in WF_TEST_MARKERS if it is imported)."""

from __future__ import annotations

import os

import wf

from tests.apps.comm_common import mark

mark(f"imported chaos_recover_b {os.getpid()}")


@wf.workflow()
def other() -> str:
    return "b"
