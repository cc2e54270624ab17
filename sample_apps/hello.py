"""The seed's greeting workflow.

A transaction counts the greetings of a user, a step delivers the greeting,
and when delivery fails a second transaction rolls the count back, so the
count only ever includes greetings that were delivered -- even if the process
dies between the steps (wf finishes the workflow later, without redoing the
finished calls).

The step POSTs the greeting to ``HELLO_URL`` when it is set and otherwise
prints it. An unreachable ``HELLO_URL`` (e.g. ``http://127.0.0.1:9``) shows the
rollback path.

Run it::

    python -m sample_apps.hello alice
    wf start sample_apps.hello:greet alice
    HELLO_URL=http://127.0.0.1:9 wf start sample_apps.hello:greet alice

Both use the system database from ``WF_DATABASE_URL`` (default
``sqlite:///wf.sqlite``); the greeting table lives in the application
database, which defaults to the same one.
"""

from __future__ import annotations

import json
import os
import sys
import urllib.request

import wf
from sqlalchemy import text

_SCHEMA = text(
    "CREATE TABLE IF NOT EXISTS hello_greetings ("
    " name TEXT PRIMARY KEY,"
    " greet_count INTEGER NOT NULL)"
)


@wf.transaction()
def hello_transaction(user: str) -> str:
    """Count one more greeting for ``user``; return the greeting text."""
    db = wf.db()
    db.execute(_SCHEMA)
    count = db.execute(
        text(
            "INSERT INTO hello_greetings (name, greet_count) VALUES (:name, 1)"
            " ON CONFLICT (name) DO UPDATE SET greet_count = hello_greetings.greet_count + 1"
            " RETURNING greet_count"
        ),
        {"name": user},
    ).scalar_one()
    return f"Hello, {user}! You have been greeted {count} times."


@wf.transaction()
def rollback_hello_transaction(user: str) -> int:
    """Undo one greeting of ``user``; return the count left."""
    db = wf.db()
    db.execute(_SCHEMA)
    count = db.execute(
        text(
            "UPDATE hello_greetings SET greet_count = greet_count - 1"
            " WHERE name = :name AND greet_count > 0"
            " RETURNING greet_count"
        ),
        {"name": user},
    ).scalar_one_or_none()
    return int(count or 0)


@wf.step(retries=2, interval=0.5)
def deliver_greeting(greeting: str) -> None:
    """POST the greeting to HELLO_URL, or print it when HELLO_URL is unset."""
    url = os.environ.get("HELLO_URL")
    if not url:
        print(f"[deliver_greeting] {greeting}", flush=True)
        return
    request = urllib.request.Request(
        url,
        data=json.dumps({"greeting": greeting}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=2) as response:
        response.read()


@wf.workflow()
def greet(user: str) -> str:
    greeting = hello_transaction(user)
    try:
        deliver_greeting(greeting)
    except Exception as e:
        wf.logger.error("greeting for %s failed: %s", user, e)
        left = rollback_hello_transaction(user)
        return f"Greeting failed for {user} (count rolled back to {left})"
    return greeting


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m sample_apps.hello USER", file=sys.stderr)
        return 2
    try:
        print(greet(argv[0]))
    finally:
        wf.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
