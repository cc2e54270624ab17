"""The connection handed to a @wf.transaction body cannot end its transaction.

wf commits the body's writes together with the call's record; a body that
committed on its own (``wf.db().commit()``, ``execute(text("COMMIT"))``)
would leave writes behind that wf then records as failed, or rolls back.

Every engine wf makes hands out ``GuardedConnection``s (a Connection that
checks a flag in the few methods that could end a transaction), not
SQLAlchemy event listeners: with any listener registered, SQLAlchemy runs its
event machinery around every statement, which measurably slowed every
transaction and (on SQLite) every recorded call."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Engine

from .._errors import WfError

_ENDS_TX = re.compile(
    r"\s*(COMMIT|ROLLBACK(?!\s+TO\b)|END|ABORT|BEGIN|START\s+TRANSACTION)\b", re.I
)


def _refuse(what: str) -> WfError:
    return WfError(
        f"{what} inside a @wf.transaction is not allowed: wf commits the transaction "
        "with its recorded output (raise an exception to roll it back)"
    )


class GuardedConnection(Connection):
    # set while a @wf.transaction body runs on this connection; a refusal is
    # kept so a body that catches it and returns still fails
    _wf_user = False
    _wf_refused: WfError | None = None

    def _wf_refuse(self, what: str) -> WfError:
        err = self._wf_refused = _refuse(what)
        return err

    def commit(self) -> None:
        if self._wf_user:
            raise self._wf_refuse("commit()")
        super().commit()

    def rollback(self) -> None:
        if self._wf_user:
            raise self._wf_refuse("rollback()")
        super().rollback()

    def exec_driver_sql(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if self._wf_user and isinstance(statement, str) and _ENDS_TX.match(statement):
            raise self._wf_refuse(statement.strip().split()[0].upper())
        return super().exec_driver_sql(statement, *args, **kwargs)

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        if self._wf_user:
            sql = getattr(statement, "text", None)  # a text() clause
            if isinstance(sql, str) and _ENDS_TX.match(sql):
                raise self._wf_refuse(sql.strip().split()[0].upper())
        return super().execute(statement, *args, **kwargs)


def guard(engine: Engine) -> Engine:
    """Make ``engine`` hand out GuardedConnections (at its creation, before
    any connection exists)."""
    engine._connection_cls = GuardedConnection
    return engine


@contextmanager
def user_transaction(conn: Connection) -> Iterator[None]:
    """While the user's body runs on ``conn``, refuse what would end its transaction."""
    if not isinstance(conn, GuardedConnection):  # an engine wf did not make
        yield
        return
    conn._wf_user = True
    conn._wf_refused = None
    try:
        yield
    finally:
        conn._wf_user = False
    refused, conn._wf_refused = conn._wf_refused, None
    if refused is not None:
        raise refused
