"""The connection handed to a @wf.transaction body cannot end its transaction.

wf commits the body's writes together with the call's record; a body that
committed on its own (``wf.db().commit()``, ``execute(text("COMMIT"))``)
would leave writes behind that wf then records as failed, or rolls back."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from .._errors import WfError

_FLAG = "wf_user_transaction"
_REFUSED = "wf_refused_end"
_ENDS_TX = re.compile(
    r"\s*(COMMIT|ROLLBACK(?!\s+TO\b)|END|ABORT|BEGIN|START\s+TRANSACTION)\b", re.I
)
_lock = threading.Lock()


def _refuse(what: str) -> WfError:
    return WfError(
        f"{what} inside a @wf.transaction is not allowed: wf commits the transaction "
        "with its recorded output (raise an exception to roll it back)"
    )


def _refused(conn: Connection, what: str) -> WfError:
    # kept: a body that catches the refusal and returns still fails (the
    # connection's transaction cannot be committed after it)
    err = conn.info[_REFUSED] = _refuse(what)
    return err


def _in_user_code(conn: Connection) -> bool:
    try:
        return bool(conn.info.get(_FLAG))
    except Exception:  # an invalidated connection (lost with its server)
        return False


def _on_commit(conn: Connection) -> None:
    if _in_user_code(conn):
        raise _refused(conn, "commit()")


def _on_rollback(conn: Connection) -> None:
    if _in_user_code(conn):
        raise _refused(conn, "rollback()")


def _on_execute(
    conn: Connection, cursor: Any, statement: str, params: Any, context: Any, many: bool
) -> None:
    if _in_user_code(conn) and _ENDS_TX.match(statement):
        raise _refused(conn, statement.strip().split()[0].upper())


def _install(engine: Engine) -> None:
    if event.contains(engine, "commit", _on_commit):
        return
    with _lock:
        if not event.contains(engine, "commit", _on_commit):
            event.listen(engine, "rollback", _on_rollback)
            event.listen(engine, "before_cursor_execute", _on_execute)
            event.listen(engine, "commit", _on_commit)


@contextlib.contextmanager
def user_transaction(conn: Connection) -> Iterator[None]:
    """While the user's body runs on ``conn``, refuse what would end its transaction."""
    _install(conn.engine)
    conn.info[_FLAG] = True
    refused = None
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # invalidated with its server: nothing to clear
            conn.info.pop(_FLAG, None)
            refused = conn.info.pop(_REFUSED, None)
    if refused is not None:
        raise refused
