"""The trivial workflow ``wf start`` is timed with (bench/cli_bench.py): no
imports beyond wf, so the figure is wf's own start-up, not the app's."""

from __future__ import annotations

import wf


@wf.workflow()
def hello(name: str) -> str:
    return f"hello {name}"
