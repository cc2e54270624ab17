"""The wf workloads, importable by name from every process (agents, queue
workers run as ``wf worker bench.workloads``, the recovery process), so their
recorded names (``bench.workloads:...``) are the same everywhere.

Trivial on purpose: the work is the library's own overhead."""

from __future__ import annotations

import sqlalchemy as sa
import wf

SELECT_1 = sa.text("SELECT 1")


@wf.step()
def noop_step(i: int) -> int:
    return i


@wf.transaction()
def noop_tx(i: int) -> int:
    """A trivial transaction: one ``SELECT 1`` in the transaction (serializable,
    wf's default, as DBOS's)."""
    wf.db().execute(SELECT_1)
    return i


@wf.workflow()
def steps_workflow(n: int) -> int:
    """``n`` trivial steps in sequence."""
    for i in range(n):
        noop_step(i)
    return n


@wf.workflow()
def tx_workflow(n: int) -> int:
    """``n`` trivial transactions in sequence."""
    for i in range(n):
        noop_tx(i)
    return n


@wf.workflow()
def one_step_workflow(i: int) -> int:
    """What the queue and recovery benchmarks run: one trivial step."""
    return noop_step(i)


WORKFLOWS = {"step": steps_workflow, "transaction": tx_workflow}
