"""Drive the checkout from Python (the README shows the same with the ``wf`` CLI).

    python -m sample_apps.shop demo paid|cancelled|timeout [ORDER_ID] [ITEMS_JSON]
    python -m sample_apps.shop url WORKFLOW_ID      # the payment URL it published
    python -m sample_apps.shop pay WORKFLOW_ID [paid|cancelled]
    python -m sample_apps.shop stock                # stock levels and orders

``demo`` starts a checkout in the background, reads the payment URL with
``wf.get_event``, plays the payment provider (``wf.send``: paid, cancelled, or
nothing, so the wait times out after SHOP_PAYMENT_TIMEOUT seconds) and awaits
the result.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid

import wf

from .app import PAYMENT_TOPIC, checkout, inventory, payment_timeout


def _print(label: str, value: object) -> None:
    print(
        f"{label:<10} {json.dumps(value, sort_keys=True) if not isinstance(value, str) else value}"
    )


def _payment_url(handle: wf.WorkflowHandle) -> str | None:
    """The payment URL the checkout publishes, or None once it ended without one."""
    while True:
        url = wf.get_event(handle.workflow_id, "payment_url", timeout=1)
        if url is not None:
            return str(url)
        if handle.status().status in wf.Status.ENDED:
            return None


def demo(outcome: str, order_id: str | None, items: dict[str, int]) -> int:
    order_id = order_id or f"order-{uuid.uuid4().hex[:8]}"
    _print("stock", inventory()["stock"])
    handle = wf.start(checkout, order_id, items)
    _print("workflow", handle.workflow_id)
    url = _payment_url(handle)
    if url is None:  # rejected: it ended without asking for payment
        _print("result", handle.result())
        return 1
    _print("pay at", url)
    if outcome in ("paid", "cancelled"):
        wf.send(handle.workflow_id, outcome, topic=PAYMENT_TOPIC)
        _print("sent", outcome)
    else:
        print(f"(sending nothing: the checkout gives up after {payment_timeout():g}s)")
    _print("result", handle.result())
    _print("stock", inventory()["stock"])
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m sample_apps.shop")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="run a whole checkout in this process")
    d.add_argument("outcome", choices=["paid", "cancelled", "timeout"])
    d.add_argument("order_id", nargs="?")
    d.add_argument("items", nargs="?", default='{"pen": 2, "mug": 1}', type=json.loads)
    u = sub.add_parser("url", help="print the payment URL a checkout published")
    u.add_argument("workflow_id")
    p = sub.add_parser("pay", help="confirm (or cancel) a checkout's payment")
    p.add_argument("workflow_id")
    p.add_argument("outcome", nargs="?", default="paid", choices=["paid", "cancelled"])
    sub.add_parser("stock", help="print stock levels and orders")
    args = parser.parse_args(argv)
    try:
        if args.command == "demo":
            return demo(args.outcome, args.order_id, args.items)
        if args.command == "url":
            url = wf.get_event(args.workflow_id, "payment_url", timeout=30)
            print(url if url is not None else "(no payment URL published yet)")
            return 0 if url is not None else 1
        if args.command == "pay":
            wf.send(args.workflow_id, args.outcome, topic=PAYMENT_TOPIC)
            return 0
        print(json.dumps(inventory(), indent=2, sort_keys=True))
        return 0
    finally:
        wf.shutdown()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
