"""A module with an import-time side effect: decoding a stored value that
names a class of this module must not import it
(tests/reliability/test_security.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from tests.apps.comm_common import mark

mark(f"imported chaos_evil {os.getpid()}")


@dataclass
class Evil:
    x: int = 0


class EvilError(Exception):
    pass
