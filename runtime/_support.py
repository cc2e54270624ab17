"""The one door from tools (the ``wf`` CLI, a future UI) into wf's internals.

``wf.cli`` may import ``wf`` and this module, nothing else of wf (the import-linter
contract "the CLI imports only wf and wf._support" in pyproject.toml enforces it).
Everything public — errors, records, ``wf.configure``/``wf.shutdown`` — is imported
from ``wf``; this module only names what a tool needs but workflow code should not
see, each with why:

- ``load_target``, ``import_module``: import the user's ``MODULE:FUNCTION`` or
  ``MODULE`` (or ``path/to/file.py``) exactly as recovery does, so the CLI finds
  the same code that wf will later re-import by the recorded module name.
- ``check_recorded_name``: the check wf.Client.enqueue makes of a
  ``module:function`` name given by hand, so ``wf start --no-import``
  refuses exactly the names the client does (one source).
- ``dumps``: serialize a value as wf records it, so a command can reject
  arguments or a message wf cannot store (exit 2) before anything is written.
- ``LOG_LEVELS``: the levels a durable log line can carry (``wf logs --level``).
- ``mask_text``: remove database passwords from a message or traceback before
  the CLI prints it.
- ``is_connection_error``: tell "the database cannot be reached yet" (a worker
  waits for it) from a bad URL or bad credentials (the command fails).
- ``executor_identity``: the launched executor's id and database, for the
  worker's start-up line.
- ``database_url_source``: where the configured system database URL came
  from (``wf db status`` says it: a flag, the environment, pyproject.toml or
  the default).
- ``send_message``: ``wf.send`` from a tool, saying whether it was sent or
  its idempotency key had been used already (``wf send`` reports which).
- ``shutdown_if_started``: ``wf.shutdown()`` for a command on its way out,
  without loading the runtime when the command never touched it.
- ``list_workflows_page``, ``count_workflows_matching``: ``wf.list_workflows`` /
  ``wf.count_workflows`` with what the dashboard (``wf ui``) adds: a keyset
  cursor (``before``: the last row shown, so a page deep in a million rows
  costs what the first does, where OFFSET reads every row it skips) and a text
  search on workflow IDs (``id_contains``).

It stays cheap to import: only leaf modules at the top; the executor and
SQLAlchemy are imported inside the functions that need them.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from ._config import display_url, mask_text
from ._loader import import_module, load_target
from ._records import LOG_LEVELS
from ._registry import check_recorded_name
from ._serialization import dumps

if TYPE_CHECKING:
    from ._records import WorkflowInfo

__all__ = [
    "LOG_LEVELS",
    "check_recorded_name",
    "count_workflows_matching",
    "database_url_source",
    "dumps",
    "executor_identity",
    "import_module",
    "is_connection_error",
    "list_workflows_page",
    "load_target",
    "mask_text",
    "send_message",
    "shutdown_if_started",
]


def is_connection_error(exc: BaseException) -> bool:
    """Is ``exc`` the database being unreachable (worth waiting for), rather
    than an error in the statement, the URL or the credentials?"""
    from ._sysdb.engine import is_connection_error as check  # SQLAlchemy: only when asked

    return check(exc)


def executor_identity() -> tuple[str, str] | None:
    """``(executor id, database URL for humans)`` of this process's launched
    executor, or None when wf is not launched."""
    from ._root import current_or_none

    ex = current_or_none()
    if ex is None:
        return None
    return ex.executor_id, display_url(ex.config.database_url)


def send_message(
    destination_id: str, message: Any, topic: str | None = None, idempotency_key: str | None = None
) -> bool:
    """Send from outside a workflow; False when ``idempotency_key`` was already
    sent to that workflow (nothing is sent twice)."""
    from ._comm import send_from_outside

    return send_from_outside(destination_id, message, topic, idempotency_key)


def database_url_source() -> str:
    """Where the configured system database URL came from: ``argument``,
    ``environment``, ``pyproject`` or ``default`` (``_config.SOURCE_*``)."""
    from ._root import _config_now

    return _config_now().database_url_source


def shutdown_if_started() -> None:
    """``wf.shutdown()``, skipped when wf cannot have started anything here.

    Everything ``wf.shutdown()`` releases (the executor's threads, pooled and
    LISTEN connections, the management client) sits on SQLAlchemy or psycopg,
    so when neither is imported there is nothing to stop, and importing the
    runtime only to find that out would cost a command that failed early (bad
    usage, bad input) the SQLAlchemy import. Keyed on the drivers rather than
    on a wf module name, so it stays true however the runtime is laid out."""
    if "sqlalchemy" not in sys.modules and "psycopg" not in sys.modules:
        return
    from ._root import shutdown

    shutdown()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def list_workflows_page(
    *,
    status: str | list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    parent: str | None = None,
    top_level: bool = False,
    app_version: str | None = None,
    partition_key: str | None = None,
    id_contains: str | None = None,
    before: tuple[datetime, str] | None = None,
    limit: int = 50,
) -> list[WorkflowInfo]:
    """One page of ``wf.list_workflows`` (newest first, each with its
    ``child_count``): the workflows after ``before`` = (created_at,
    workflow_id) of the previous page's last row, whose ID contains
    ``id_contains``."""
    from . import _root
    from ._errors import ConfigurationError
    from ._inspect import _filters, workflow_info

    if limit < 1:
        raise ConfigurationError("limit must be >= 1")
    filters = _filters(
        status, name, queue, since, until, parent, top_level, app_version, partition_key
    )
    db = _root.client()
    cursor = None
    if before is not None:
        # exact milliseconds (float timestamps can land one below the stored value)
        t = before[0] if before[0].tzinfo is not None else before[0].astimezone()
        cursor = ((t - _EPOCH) // timedelta(milliseconds=1), before[1])
    rows = db.list_workflows(limit=limit, before=cursor, id_contains=id_contains, **filters)
    counts = db.child_counts([r.workflow_id for r in rows])
    return [workflow_info(r, counts.get(r.workflow_id, 0)) for r in rows]


def count_workflows_matching(
    *,
    status: str | list[str] | None = None,
    name: str | None = None,
    queue: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    parent: str | None = None,
    top_level: bool = False,
    app_version: str | None = None,
    partition_key: str | None = None,
    id_contains: str | None = None,
) -> int:
    """How many workflows ``list_workflows_page`` pages through."""
    from . import _root
    from ._inspect import _filters

    filters = _filters(
        status, name, queue, since, until, parent, top_level, app_version, partition_key
    )
    return _root.client().count_workflows(id_contains=id_contains, **filters)
