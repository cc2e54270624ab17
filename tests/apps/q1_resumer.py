"""``python -m tests.apps.q1_resumer ID``: ``wf.resume(ID)`` from a process
that has not imported the workflow's module (resume imports it), then wait
and print ``RESULT <wf-json>`` or ``ERROR <type>: <message>``."""

from __future__ import annotations

import sys

import wf
from wf._serialization import dumps


def main(argv: list[str]) -> int:
    (wid,) = argv
    try:
        print(f"RESULT {dumps(wf.resume(wid).result(timeout=90))}", flush=True)
    except Exception as e:  # noqa: BLE001 - report every outcome
        print(f"ERROR {type(e).__name__}: {e}", flush=True)
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
