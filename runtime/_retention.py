"""Retention and moving workflows: ``wf.delete``, ``wf.gc``,
``wf.export_workflows`` and ``wf.import_workflows`` (the SQL is in
_sysdb/retention.py; a worker's background collection in _worker/gc.py).

Decisions, each for a reason:

- A delete takes a workflow with everything keyed by its ID and its
  children, recursively, in one transaction: a reused ID then starts fresh
  (DBOS #769). It refuses a tree with a member still PENDING or ENQUEUED
  (nothing is deleted) unless ``force``, which cancels the tree first (the
  same path as ``wf.cancel``), waits a few seconds for runs to stop, then
  deletes. A run still inside a step then writes nothing more: every write
  of a run is conditional on the row it started on (its executor and its
  created_at, the run's token: queries.py ``_THIS_RUN``), so nothing of it
  lands in a workflow recorded later under the same ID.
- Collection deletes only ended top-level workflows (children go with their
  parent, a child of a kept parent stays) in batches of short transactions.
- Only ended workflows move between databases: a PENDING one copied while
  its executor still runs it would run twice, once per database. To move
  in-flight work, cancel it, export, import, and ``wf resume`` it there."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from typing import Any

from . import _config, _root
from ._core import cancel_tree
from ._errors import ConfigurationError, WfError, WorkflowConflictError, WorkflowNotFoundError
from ._records import Status
from ._sysdb import AppDatabase, SystemDatabase, now_ms
from ._sysdb import retention as sql

# how long a forced delete waits for cancelled runs to stop (then deletes anyway:
# a run still inside a step cannot record it once its row is gone)
FORCE_STOP_WAIT = 5.0


class WorkflowActiveError(WfError):
    """The workflow (or one of its children) is still PENDING or ENQUEUED.
    ``summary``: what was refused, without the advice on what to do instead
    (a tool gives its own); None when not given."""

    def __init__(self, message: str, summary: str | None = None) -> None:
        super().__init__(message)
        self.summary = summary


class InvalidExportError(WfError):
    """An import record is not one ``wf.export_workflows`` (``wf export``) wrote."""


@contextlib.contextmanager
def _databases() -> Iterator[tuple[SystemDatabase, AppDatabase | None]]:
    """The system database, and the application database when it is another
    one (None: the transactions' outputs live in the steps)."""
    ex = _root.current_or_none()
    if ex is not None:
        app = ex.appdb if not ex.same_db and isinstance(ex.appdb, AppDatabase) else None
        yield ex.sysdb, app
        return
    db = _root.client()
    cfg = _root._config_now()
    if cfg.app_database_url == cfg.database_url:
        yield db, None
        return
    app = AppDatabase(cfg.app_database_url, outage_timeout=0, pool_size=1)
    try:
        try:
            app.open_existing()
        except WfError:
            # no application database (or no wf table in it): nothing to delete there
            app.dispose()
            yield db, None
            return
        yield db, app
    finally:
        app.dispose()


def _ids(workflow_ids: str | Iterable[str]) -> list[str]:
    ids = [workflow_ids] if isinstance(workflow_ids, str) else list(workflow_ids)
    for w in ids:
        if not isinstance(w, str) or not w:
            raise ConfigurationError(f"a workflow ID must be a non-empty string, got {w!r}")
    return list(dict.fromkeys(ids))


def _check_known(db: SystemDatabase, ids: list[str]) -> None:
    missing = [w for w in ids if db.get_outcome(w) is None]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise WorkflowNotFoundError(f"no workflow with ID {missing[0]!r}{more}")


def _active_message(active: list[tuple[str, str]], verb: str, hint: str) -> str:
    wid, status = active[0]
    more = f" (and {len(active) - 1} more not ended)" if len(active) > 1 else ""
    return f"workflow {wid} is {status}{more}: {verb}; {hint}"


# -- delete ----------------------------------------------------------------------------------


def delete(workflow_ids: str | Iterable[str], force: bool = False) -> list[str]:
    """Delete workflows with their steps, logs, events, messages, message keys,
    transaction outputs and children (recursively), all in one transaction;
    returns the IDs deleted (the given ones first, then their descendants).

    An unknown ID is WorkflowNotFoundError and a tree with a member still
    PENDING or ENQUEUED is WorkflowActiveError; either way nothing is deleted.
    ``force=True`` cancels such trees first (as ``wf.cancel``), waits up to a
    few seconds for their runs to stop, then deletes."""
    ids = _ids(workflow_ids)
    if not ids:
        return []
    with _databases() as (db, app):
        _check_known(db, ids)
        for _ in range(5):
            done = sql.delete_workflows(db, app, ids)
            if not done.active:
                return done.workflow_ids
            if not force:
                raise WorkflowActiveError(
                    _active_message(
                        done.active,
                        "nothing deleted",
                        "cancel it first, or delete with force=True (wf delete --force)",
                    ),
                    summary=_active_message(done.active, "nothing deleted", "").rstrip("; "),
                )
            for w in ids:
                cancel_tree(db, w, "wf.delete --force")
            _wait_stopped(db, [w for w, _ in done.active])
        raise WfError(f"workflows {', '.join(ids)} kept starting again while being deleted")


def _wait_stopped(db: SystemDatabase, ids: list[str]) -> None:
    """Until no run of ``ids`` holds its slot (a cancelled run releases it
    when it stops), for at most FORCE_STOP_WAIT seconds."""
    deadline = time.monotonic() + FORCE_STOP_WAIT
    todo = list(ids)
    while todo and time.monotonic() < deadline:
        todo = [w for w in todo if (r := db.get_workflow(w)) is not None and r.slot_held]
        if todo:
            time.sleep(0.05)


# -- collection ------------------------------------------------------------------------------


def age_seconds(older_than: float | int | timedelta | str, what: str = "older_than") -> float:
    """Seconds from a number, a timedelta or a string like ``30d``."""
    if isinstance(older_than, timedelta):
        seconds = older_than.total_seconds()
    elif isinstance(older_than, str):
        parsed = _config.parse_age(older_than, what, allow_zero=True)
        assert parsed is not None  # ("off" is no age here: refused)
        seconds = parsed
    elif isinstance(older_than, int | float) and not isinstance(older_than, bool):
        seconds = float(older_than)
    else:
        raise ConfigurationError(
            f"{what} must be seconds, a timedelta or a string like '30d', got {older_than!r}"
        )
    if not 0 <= seconds < float("inf"):
        raise ConfigurationError(f"{what} must be a non-negative age, got {older_than!r}")
    return seconds


def gc(
    older_than: float | int | timedelta | str,
    statuses: str | Iterable[str] | None = None,
    keep: int | None = None,
) -> int:
    """Delete ended workflows (SUCCESS, ERROR, CANCELLED, RETRIES_EXCEEDED;
    never PENDING or ENQUEUED) whose last change is older than ``older_than``
    (seconds, a timedelta, or ``"30d"``; ``0`` or ``"0s"``: every ended
    workflow whatever its age, as ``wf gc --older-than 0``; negative, or
    ``"off"``, is a ConfigurationError), with their children; returns how
    many were deleted (children included). ``statuses``: only these;
    ``keep``: the newest ``keep`` top-level workflows of those statuses stay
    whatever their age. Top-level workflows are judged; a child goes with its
    parent (and stays while its parent does). Runs in batches of short
    transactions (1,000 top-level workflows each on Postgres, 200 on SQLite)."""
    seconds = age_seconds(older_than)
    chosen = _ended_statuses(statuses)
    if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
        raise ConfigurationError(f"keep must be a whole number >= 0, got {keep!r}")
    with _databases() as (db, app):
        return sql.collect(
            db, app, cutoff_ms=now_ms() - int(seconds * 1000), statuses=chosen, keep=keep
        )


def _ended_statuses(statuses: str | Iterable[str] | None) -> list[str]:
    if statuses is None:
        return list(Status.ENDED)
    given = [statuses] if isinstance(statuses, str) else list(statuses)
    out = []
    for s in given:
        up = str(s).upper()
        if up not in Status.ENDED:
            raise ConfigurationError(
                f"status {s!r}: gc deletes only ended workflows ({', '.join(Status.ENDED)})"
            )
        out.append(up)
    return list(dict.fromkeys(out)) or list(Status.ENDED)


# -- export and import -----------------------------------------------------------------------


def export_workflows(workflow_ids: str | Iterable[str]) -> list[dict[str, Any]]:
    """One JSON-ready record per workflow: its row, steps, events, logs,
    messages waiting for it, delivered message keys and streams (values and
    closes), with the same for
    each of its descendants in ``children``. Values are stored forms (JSON
    text, epoch milliseconds), so an import reproduces the record exactly.
    Only ended workflows (WorkflowActiveError otherwise)."""
    ids = _ids(workflow_ids)
    db = _root.client()
    _check_known(db, ids)
    active = [
        (r.workflow_id, r.status) for r in sql.tree_of(db, ids) if r.status not in Status.ENDED
    ]
    if active:
        raise WorkflowActiveError(
            _active_message(
                active,
                "only ended workflows move between databases",
                "let it finish, or cancel it, move it and wf resume it there",
            )
        )
    return sql.export_trees(db, ids)


_REQUIRED_TEXT = ("workflow_id", "status", "name", "inputs")
_INT_FIELDS = frozenset(
    (
        "priority",
        "recovery_attempts",
        "max_recovery_attempts",
        "created_at",
        "updated_at",
        "started_at",
        "deadline",
        "timeout_ms",
        "not_before",
        "slot_held",
        "forked_from_step",
        "position",
        "seq",
        "time",
        "ended_at",
        "attempts",
        "closed",
    )
)
_DEFAULTS = {"priority": 0, "recovery_attempts": 0, "max_recovery_attempts": 50, "attempts": 1}
_LISTS = {
    "steps": (sql.STEP_FIELDS, ("position", "name", "kind")),
    "events": (sql.EVENT_FIELDS, ("key", "value", "updated_at")),
    "logs": (sql.LOG_FIELDS, ("position", "seq", "time", "level", "message")),
    "messages": (sql.MESSAGE_FIELDS, ("topic", "message", "created_at")),
    "message_keys": (("idempotency_key",), ("idempotency_key",)),
    "streams": (sql.STREAM_FIELDS, ("key", "position", "closed", "created_at")),
}


def _bad(where: str, problem: str) -> InvalidExportError:
    return InvalidExportError(f"{where}: {problem} (not a record wf export wrote)")


def _fields(
    item: Any, fields: tuple[str, ...], required: tuple[str, ...], where: str
) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise _bad(where, "expected an object")
    unknown = sorted(set(item) - set(fields))
    if unknown:
        raise _bad(where, f"unknown field {unknown[0]!r} (written by a newer wf?)")
    out: dict[str, Any] = {}
    for f in fields:
        v = item.get(f)
        if v is None:
            if f in required:
                raise _bad(where, f"{f!r} is missing")
            v = _DEFAULTS.get(f)
        elif f in _INT_FIELDS:
            if isinstance(v, bool) or not isinstance(v, int):
                raise _bad(where, f"{f!r} must be an integer")
        elif not isinstance(v, str):
            raise _bad(where, f"{f!r} must be a string")
        out[f] = v
    return out


def _workflow_part(part: Any, where: str) -> dict[str, Any]:
    if not isinstance(part, dict):
        raise _bad(where, "expected an object")
    w = _fields(
        part.get("workflow"),
        sql.WORKFLOW_FIELDS,
        (*_REQUIRED_TEXT, "created_at", "updated_at"),
        where + " workflow",
    )
    wid = w["workflow_id"]
    where = f"{where} (workflow {wid})"
    if w["status"] not in Status.ENDED:
        raise WorkflowActiveError(
            f"workflow {wid} is {w['status']}: only ended workflows are imported (nothing imported)"
        )
    for text in ("inputs", "output", "error"):
        if w[text] is not None:
            try:
                json.loads(w[text])
            except ValueError:
                raise _bad(where, f"{text!r} is not JSON text") from None
    w["slot_held"] = 0  # no run of it exists here
    out: dict[str, Any] = {"workflow": w}
    for key, (fields, required) in _LISTS.items():
        items = part.get(key) or []
        if not isinstance(items, list):
            raise _bad(where, f"{key!r} must be a list")
        out[key] = [
            _fields(i, fields, required, f"{where} {key}[{n}]") for n, i in enumerate(items)
        ]
    for n, row in enumerate(out["streams"]):
        if row["closed"] not in (0, 1):
            raise _bad(f"{where} streams[{n}]", "'closed' must be 0 or 1")
    return out


def import_workflows(records: Iterable[dict[str, Any]]) -> list[str]:
    """Insert exported workflows (``export_workflows``' records) into this
    database in one transaction; returns the IDs imported, roots and
    children. Refuses, importing nothing: a record wf did not write
    (InvalidExportError), a workflow that has not ended (WorkflowActiveError),
    an ID this database has already (WorkflowConflictError)."""
    parts: list[dict[str, Any]] = []
    for n, record in enumerate(records, 1):
        where = f"record {n}"
        if not isinstance(record, dict):
            raise _bad(where, "expected a JSON object")
        if record.get("format") != sql.EXPORT_FORMAT:
            raise _bad(where, f"format {record.get('format')!r}, expected {sql.EXPORT_FORMAT!r}")
        parts.append(_workflow_part(record, where))
        children = record.get("children") or []
        if not isinstance(children, list):
            raise _bad(where, "'children' must be a list")
        parts.extend(_workflow_part(c, f"{where} child {i}") for i, c in enumerate(children, 1))
    seen: set[str] = set()
    for p in parts:
        wid = p["workflow"]["workflow_id"]
        if wid in seen:
            raise InvalidExportError(
                f"workflow {wid} appears twice in the import: nothing imported"
            )
        seen.add(wid)
    if not parts:
        return []
    db = _root.client()
    done = sql.import_trees(db, parts)
    if done and isinstance(done[0], tuple):
        raise WorkflowConflictError(
            f"workflow ID {done[0][0]!r} already exists in "
            f"{_config.display_url(db.url)}: nothing imported"
        )
    return [str(w) for w in done]
