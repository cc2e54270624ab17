"""The workflow of tests/reliability/test_lost_answers.py, whose start INSERT
loses its answer: run by the real ``wf start``, by tests/apps/driver.py (a
direct call), or here through the API:

    python -m tests.apps.t2_lost api ID X

launches from WF_DATABASE_URL, ``wf.start(t2_once, X, workflow_id=ID)`` and
prints ``RESULT <wf-json>`` of ``.result(timeout=30)`` (or ``ERROR type: message``).
The body appends ``t2_once body`` to WF_TEST_MARKERS each time it runs.
"""

from __future__ import annotations

import sys

import wf
from wf._serialization import dumps

from tests.apps.comm_common import mark


@wf.workflow()
def t2_once(x: int) -> int:
    mark("t2_once body")
    return x * 2


def main(argv: list[str]) -> int:
    command, wid, x = argv
    if command != "api":
        print(f"unknown command {command!r}", file=sys.stderr)
        return 2
    wf.launch()
    try:
        result = wf.start(t2_once, int(x), workflow_id=wid).result(timeout=30)
    except Exception as e:  # noqa: BLE001 - report every outcome
        print(f"ERROR {type(e).__name__}: {e}", flush=True)
    else:
        print(f"RESULT {dumps(result)}", flush=True)
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
