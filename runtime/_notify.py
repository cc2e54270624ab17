"""Waking waiters (result(), recv, get_event) when what they wait for happens.

In-process events wake at once. Across processes the waiter re-checks the
database with a short backoff (capped at 1 s)."""

from __future__ import annotations

import threading
from collections.abc import Hashable

_cond = threading.Condition()
_versions: dict[Hashable, int] = {}


def notify_local(key: Hashable) -> None:
    with _cond:
        _versions[key] = _versions.get(key, 0) + 1
        _cond.notify_all()


class Waiter:
    """Arm before checking the database, then wait: a wake-up that lands in
    between is not lost."""

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.version = 0

    def arm(self) -> None:
        with _cond:
            self.version = _versions.get(self.key, 0)

    def wait(self, timeout: float) -> None:
        with _cond:
            _cond.wait_for(lambda: _versions.get(self.key, 0) != self.version, timeout)
