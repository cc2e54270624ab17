"""A workflow module that imports nothing but wf (tests/cli/test_light_reads.py)."""

from __future__ import annotations

import wf


@wf.step()
def shout(name: str) -> str:
    return name.upper()


@wf.workflow()
def hello(name: str) -> str:
    return f"hello {shout(name)}"
