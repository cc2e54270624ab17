"""Queues per tenant, debouncing, and dedup that returns the live workflow.

- ``digests``: each tenant's digests go out one at a time
  (``partition_concurrency=1`` per ``partition_key``, across all processes),
  at most 4 at once in all, so a tenant with many never holds up one with few.
- ``reindex``: a burst of edits to one document collapses into one rebuild
  (``debounce_key``), run once the edits pause for ``debounce`` seconds, with
  the last edit's arguments; every caller gets the same handle.
- ``payments``: a charge retried while the first is still live returns that
  one's handle (``dedup_id`` with ``on_duplicate="return"``): charged once.

Run it (one database, e.g. ``export WF_DATABASE_URL=sqlite:///wf.sqlite``)::

    wf worker sample_apps.tenants &                 # serves the three queues
    python -m sample_apps.tenants --enqueue-only    # enqueues, waits, prints
    wf queue list                                   # meanwhile: the busiest tenants

``python -m sample_apps.tenants`` alone serves the queues in its own process.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

import wf

digests = wf.Queue("digests", concurrency=4, partition_concurrency=1)
reindex = wf.Queue("reindex")
payments = wf.Queue("payments")

SEND_SECONDS = float(os.environ.get("TENANTS_SEND_SECONDS", "0.2"))


@wf.step()
def deliver(tenant: str, user: str) -> dict[str, Any]:
    """Send one digest (here: sleep); record when and where it ran."""
    started = time.time()
    time.sleep(SEND_SECONDS)
    return {
        "tenant": tenant,
        "user": user,
        "pid": os.getpid(),
        "started": started,
        "ended": time.time(),
    }


@wf.workflow()
def send_digest(tenant: str, user: str) -> dict[str, Any]:
    return deliver(tenant, user)


@wf.step()
def build_index(doc: str, version: int) -> str:
    return f"{doc}@v{version}"


@wf.workflow()
def rebuild_index(doc: str, version: int) -> str:
    return build_index(doc, version)


@wf.step()
def take_payment(order: str, cents: int) -> str:
    time.sleep(SEND_SECONDS)  # the payment provider's call
    return f"charged {order} {cents / 100:.2f}"


@wf.workflow()
def charge(order: str, cents: int) -> str:
    return take_payment(order, cents)


def most_at_once(runs: list[dict[str, Any]]) -> int:
    """How many of ``runs`` were running at one moment, at most."""
    edges = sorted([(r["started"], 1) for r in runs] + [(r["ended"], -1) for r in runs])
    running = peak = 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    return peak


def demo() -> list[str]:
    """Enqueue on the three queues, wait for the results; the lines to print."""
    # a big tenant and a small one, the big one's first
    sends = [digests.enqueue(send_digest, "acme", f"u{i}", partition_key="acme") for i in range(8)]
    sends += [digests.enqueue(send_digest, "tiny", f"u{i}", partition_key="tiny") for i in range(2)]
    # five quick edits of one document: one rebuild, with the last version
    edits = [
        reindex.enqueue(rebuild_index, "doc-7", v, debounce_key="doc-7", debounce=1.0)
        for v in range(1, 6)
    ]
    # a charge and its retry (say, a client that timed out): one workflow
    tries = [
        payments.enqueue(charge, "order-1", 1999, dedup_id="order-1", on_duplicate="return")
        for _ in range(2)
    ]
    runs = [h.result() for h in sends]
    by_tenant = {t: [r for r in runs if r["tenant"] == t] for t in ("acme", "tiny")}
    last_end = {t: max(r["ended"] for r in rs) for t, rs in by_tenant.items()}
    return [
        f"digests: acme {len(by_tenant['acme'])}, tiny {len(by_tenant['tiny'])}; "
        f"at most {max(most_at_once(rs) for rs in by_tenant.values())} per tenant at once; "
        f"tiny done before acme: {last_end['tiny'] < last_end['acme']}",
        f"doc-7: {len(edits)} enqueues, {len({h.workflow_id for h in edits})} workflow: "
        f"{edits[0].result()}",
        f"order-1: {len(tries)} enqueues, {len({h.workflow_id for h in tries})} workflow: "
        f"{tries[-1].result()}",
        f"ran in processes {sorted({r['pid'] for r in runs})} (this one: {os.getpid()})",
    ]


def main(argv: list[str]) -> int:
    if argv not in ([], ["--enqueue-only"]):
        print("usage: python -m sample_apps.tenants [--enqueue-only]", file=sys.stderr)
        return 2
    # --enqueue-only: this process serves no queue (a `wf worker` runs the work)
    wf.launch(queues=[] if argv else None, recovery=not argv)
    try:
        for line in demo():
            print(line, flush=True)
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
