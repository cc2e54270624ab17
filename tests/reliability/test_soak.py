"""The soak (issue 18), opt-in: ``bash scripts/test.sh -m soak tests/reliability/test_soak.py``
(not in the default run: it takes minutes). bench/soak.py runs one
``wf worker`` through a mixed workload (steps, transactions, messages,
sleeps, queues, child workflows) while sampling its RSS, open fds, threads
and Postgres connections every 5 s. What must hold: every workflow SUCCESS,
each transaction's row written once, and every figure flat after warm-up:
at most 10 % growth from 10 % of the workflows done to the end (for the
small counts, fds, threads and connections, one more is within noise: a
lazily started thread or a pooled connection opened at a peak).

WF_SOAK_WORKFLOWS sets the size (default 20,000; the README's figure is
``python -m bench.soak`` with 100,000)."""

from __future__ import annotations

import os
import uuid

import pytest

pytestmark = [pytest.mark.soak, pytest.mark.timeout(3600)]


def test_one_worker_stays_flat_over_a_long_mixed_workload(
    pg_admin_url: str, request: pytest.FixtureRequest
) -> None:
    expr = request.config.getoption("markexpr") or ""
    if "soak" not in expr or "not soak" in expr:
        pytest.skip("the soak is opt-in: run it with -m soak")
    from bench import soak

    n = int(os.environ.get("WF_SOAK_WORKFLOWS", "20000"))
    result = soak.run(pg_admin_url, n, every=5.0, dbname=f"wf_soak_{uuid.uuid4().hex[:8]}")
    print(soak.report(result))
    assert result["success"] == n, result["worker_log_tail"]
    stepped = sum(1 for i in range(n) if i % 10 < 5)
    assert result["ledger_rows"] == result["ledger_distinct"] == stepped
    bad = soak.problems(result)
    assert not bad, "\n".join(bad) + "\n" + soak.report(result)
