"""Checkout: reserve inventory, open a payment session, publish its URL, wait
for the payment confirmation, then fulfil the order or undo the reservation.

The workflow waits durably: if the process dies while the customer is on the
payment page, another process (a ``wf worker``, or this one restarted) picks
the checkout up where it was and the reservation is still undone or fulfilled
exactly once.

- ``wf.set_event("payment_url", url)`` publishes the payment page; anyone can
  read it with ``wf.get_event(workflow_id, "payment_url")``.
- The payment provider (here: you, with ``wf send ID '"paid"' --topic payment``)
  confirms with a message on topic ``payment``: ``"paid"`` or ``"cancelled"``.
  No message within ``SHOP_PAYMENT_TIMEOUT`` seconds (default 60) cancels.
- ``wf.set_event("order_status", ...)`` publishes the outcome as well.

Tables (application database): ``shop_products``, seeded on first use, and
``shop_orders``.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import wf
from sqlalchemy import Connection, text

CATALOG: dict[str, tuple[int, int]] = {
    # product: (initial stock, price in cents)
    "pen": (100, 150),
    "notebook": (50, 499),
    "mug": (10, 1200),
}

PAYMENT_TOPIC = "payment"


def payment_timeout() -> float:
    """Seconds to wait for the payment confirmation (SHOP_PAYMENT_TIMEOUT, default 60)."""
    return float(os.environ.get("SHOP_PAYMENT_TIMEOUT", "60"))


def _ensure_schema(db: Connection) -> None:
    db.execute(
        text(
            "CREATE TABLE IF NOT EXISTS shop_products ("
            " product TEXT PRIMARY KEY,"
            " stock INTEGER NOT NULL,"
            " price_cents INTEGER NOT NULL)"
        )
    )
    db.execute(
        text(
            "CREATE TABLE IF NOT EXISTS shop_orders ("
            " order_id TEXT PRIMARY KEY,"
            " status TEXT NOT NULL,"
            " items TEXT NOT NULL,"
            " total_cents INTEGER NOT NULL)"
        )
    )
    for product, (stock, price) in CATALOG.items():
        db.execute(
            text(
                "INSERT INTO shop_products (product, stock, price_cents) VALUES (:p, :s, :c)"
                " ON CONFLICT (product) DO NOTHING"
            ),
            {"p": product, "s": stock, "c": price},
        )


# -- transactions (exactly once) -------------------------------------------------------------


@wf.transaction()
def reserve_inventory(order_id: str, items: dict[str, int]) -> dict[str, Any]:
    """Take the items out of stock and record the order as reserved.

    Returns ``{"ok": True, "total_cents": N}`` or ``{"ok": False, "reason": ...}``
    (nothing written) when the order cannot be served."""
    db = wf.db()
    _ensure_schema(db)
    if not items:
        return {"ok": False, "reason": "the order has no items"}
    if db.execute(text("SELECT 1 FROM shop_orders WHERE order_id = :o"), {"o": order_id}).first():
        return {"ok": False, "reason": f"order {order_id} already exists"}
    total = 0
    for product, qty in sorted(items.items()):
        row = db.execute(
            text("SELECT stock, price_cents FROM shop_products WHERE product = :p"), {"p": product}
        ).first()
        if row is None:
            return {"ok": False, "reason": f"unknown product {product!r}"}
        if not isinstance(qty, int) or qty <= 0:
            return {"ok": False, "reason": f"bad quantity {qty!r} for {product}"}
        if row.stock < qty:
            return {"ok": False, "reason": f"only {row.stock} {product} left, {qty} ordered"}
        total += qty * row.price_cents
    for product, qty in sorted(items.items()):
        db.execute(
            text("UPDATE shop_products SET stock = stock - :q WHERE product = :p"),
            {"q": qty, "p": product},
        )
    db.execute(
        text(
            "INSERT INTO shop_orders (order_id, status, items, total_cents)"
            " VALUES (:o, 'reserved', :i, :t)"
        ),
        {"o": order_id, "i": json.dumps(items, sort_keys=True), "t": total},
    )
    return {"ok": True, "total_cents": total}


@wf.transaction()
def fulfil_order(order_id: str) -> str:
    """Mark a reserved order paid (the stock stays taken)."""
    db = wf.db()
    db.execute(
        text("UPDATE shop_orders SET status = 'paid' WHERE order_id = :o AND status = 'reserved'"),
        {"o": order_id},
    )
    status = db.execute(
        text("SELECT status FROM shop_orders WHERE order_id = :o"), {"o": order_id}
    ).scalar_one()
    return str(status)


@wf.transaction()
def undo_reservation(order_id: str, status: str) -> str:
    """Put a reserved order's items back in stock and mark it ``status``."""
    db = wf.db()
    row = db.execute(
        text("SELECT status, items FROM shop_orders WHERE order_id = :o"), {"o": order_id}
    ).one()
    if row.status != "reserved":
        return str(row.status)
    for product, qty in json.loads(row.items).items():
        db.execute(
            text("UPDATE shop_products SET stock = stock + :q WHERE product = :p"),
            {"q": qty, "p": product},
        )
    db.execute(
        text("UPDATE shop_orders SET status = :s WHERE order_id = :o"),
        {"s": status, "o": order_id},
    )
    return status


@wf.transaction()
def inventory() -> dict[str, Any]:
    """Stock levels and orders (for the demo's output; usable outside workflows)."""
    db = wf.db()
    _ensure_schema(db)
    stock = {
        r.product: r.stock
        for r in db.execute(text("SELECT product, stock FROM shop_products ORDER BY product"))
    }
    orders = {
        r.order_id: r.status
        for r in db.execute(text("SELECT order_id, status FROM shop_orders ORDER BY order_id"))
    }
    return {"stock": stock, "orders": orders}


# -- the payment provider (a step: at least once, never again once done) -----------------------


@wf.step(retries=3, interval=0.5)
def create_payment_session(order_id: str, total_cents: int) -> dict[str, str]:
    """Open a session with the (fake) payment provider."""
    session_id = str(uuid.uuid4())
    wf.logger.info("payment session %s for order %s: %d cents", session_id, order_id, total_cents)
    return {"session_id": session_id, "url": f"https://pay.example/session/{session_id}"}


# -- the workflow ----------------------------------------------------------------------------


@wf.workflow()
def checkout(order_id: str, items: dict[str, int]) -> dict[str, Any]:
    """Reserve, ask for payment, wait for it, then fulfil or undo."""
    reserved = reserve_inventory(order_id, items)
    if not reserved["ok"]:
        wf.logger.warning("order %s rejected: %s", order_id, reserved["reason"])
        wf.set_event("order_status", "rejected")
        return {"order_id": order_id, "status": "rejected", "reason": reserved["reason"]}
    total = reserved["total_cents"]

    session = create_payment_session(order_id, total)
    wf.set_event("payment_url", session["url"])
    wf.logger.info("order %s waiting for payment at %s", order_id, session["url"])

    confirmation = wf.recv(topic=PAYMENT_TOPIC, timeout=payment_timeout())
    if confirmation == "paid":
        status = fulfil_order(order_id)
    else:
        if confirmation is None:
            wf.logger.warning("order %s: no payment confirmation in time", order_id)
        else:
            wf.logger.warning("order %s: payment %r", order_id, confirmation)
        status = undo_reservation(order_id, "expired" if confirmation is None else "cancelled")
    wf.set_event("order_status", status)
    return {
        "order_id": order_id,
        "status": status,
        "total_cents": total,
        "payment_url": session["url"],
    }
