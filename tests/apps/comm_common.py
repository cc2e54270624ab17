"""Shared bits of the comm_* test apps (messages, queues, schedules).

- ``mark(line)`` appends one line to the file named by WF_TEST_MARKERS with a
  single O_APPEND write, so lines from several processes never interleave.
- ``kill_point(name)`` SIGKILLs this process when ``name`` is listed in
  WF_TEST_KILL_AT (after marking ``killed at NAME``).
"""

from __future__ import annotations

import os
import signal
import time


def mark(line: str) -> None:
    path = os.environ.get("WF_TEST_MARKERS")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def kill_point(name: str) -> None:
    if name in os.environ.get("WF_TEST_KILL_AT", "").split(","):
        mark(f"killed at {name}")
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)  # never reached
