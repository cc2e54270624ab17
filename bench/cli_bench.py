"""Wall time of ``wf`` commands, as a user runs them: a fresh process each
time (interpreter start, imports, connecting, the query, printing), stdout
not a terminal. Median of several runs after one warm-up run (so the file
system cache is warm, as it is for a user's second command)."""

from __future__ import annotations

import subprocess
import time
from typing import Any

from bench.common import REPO, child_env, summary


def time_command(
    cmd: list[str], reps: int, ok_codes: tuple[int, ...] = (0,), **env: str
) -> dict[str, Any]:
    def once() -> float:
        t = time.perf_counter()
        p = subprocess.run(
            cmd, cwd=REPO, env=child_env(**env), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        elapsed = time.perf_counter() - t
        if p.returncode not in ok_codes:
            raise RuntimeError(
                f"{' '.join(cmd)} exited {p.returncode}: {p.stderr.decode(errors='replace')[-2000:]}"
            )
        return elapsed

    once()
    return {"ms": summary([once() * 1000 for _ in range(reps)]), "command": cmd}
