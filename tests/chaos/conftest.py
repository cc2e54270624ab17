"""Shows the chaos test's figures in pytest's terminal summary (whatever the
capture mode), e.g. ``chaos figures: {"kills": 7, ...}``."""

from __future__ import annotations

from typing import Any

FIGURES: list[str] = []


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: Any) -> None:
    if FIGURES:
        terminalreporter.section("chaos figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
