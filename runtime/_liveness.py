"""Is an executor alive? A stale heartbeat says no; on the same machine, so
does a process that no longer exists (or is a zombie, or is a newer process
that reused the pid), which lets recovery start at once after a crash.

"The same machine" is more than the same hostname: containers can share one
(host networking, a fixed ``hostname:``) while their pids mean different
processes. An executor row's ``host`` is therefore ``HOSTNAME#MACHINE``, where
MACHINE names the kernel's boot and this pid namespace: pids are compared
only between rows with equal ``host``; any other row is judged by its
heartbeat alone."""

from __future__ import annotations

import hashlib
import os
import socket

HOSTNAME = socket.gethostname()
# seconds without a heartbeat after which an executor counts as dead
STALE_AFTER = float(os.environ.get("WF_STALE_AFTER", "30"))


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return ""


def _pid_namespace() -> str:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return ""


def machine_identity(boot_id: str, pid_namespace: str) -> str:
    """A short digest of where pids mean the same processes: one boot of one
    kernel (a reboot reuses pids too) and one pid namespace."""
    if not boot_id and not pid_namespace:
        return ""
    return hashlib.sha256(f"{boot_id}|{pid_namespace}".encode()).hexdigest()[:16]


_MACHINE = machine_identity(_read("/proc/sys/kernel/random/boot_id"), _pid_namespace())
# what executor rows record as their host (see the module docstring)
HOST = f"{HOSTNAME}#{_MACHINE}" if _MACHINE else HOSTNAME


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
