"""What a bulk action by filter (`wf cancel`, `wf resume`) needs besides
the workflows it chose (cli/filters.py): the question before it acts, and
who acted."""

from __future__ import annotations

import sys

from . import errors
from .output import plural


def confirm(verb: str, n: int, yes: bool) -> bool:
    """Ask "VERB N workflows? [y/N]" on a terminal; without one, --yes is
    required (bad input otherwise). True to go ahead."""
    if yes:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        match, them = ("matches", "it") if n == 1 else ("match", "them")
        raise errors.BadInput(
            f"{plural(n)} {match}: pass --yes to {verb} {them} (there is no terminal to ask on)"
        )
    sys.stderr.write(f"{verb} {plural(n)}? [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def who() -> str:
    """``user@host`` for the record of who cancelled."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no user name in the environment or the password database
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
