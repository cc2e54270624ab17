"""Is an executor alive? A stale heartbeat says no; on the same host, so does
a process that no longer exists (or is a zombie, or is a newer process that
reused the pid), which lets recovery start at once after a crash."""

from __future__ import annotations

import os
import socket

HOST = socket.gethostname()


def _boot_time() -> float | None:
    try:
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except OSError:
        pass
    return None


_BOOT = _boot_time()
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def pid_alive(pid: int, started_at_ms: int | None = None) -> bool:
    if pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except FileNotFoundError:
        return False
    except OSError:
        stat = ""
    if stat:
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] in ("Z", "X"):
            return False
        if started_at_ms is not None and _BOOT is not None and len(fields) > 19:
            proc_start = _BOOT + int(fields[19]) / _TICKS
            # the executor row was written after its process started; a
            # process that started later is another one with a reused pid
            if proc_start > started_at_ms / 1000 + 2:
                return False
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
