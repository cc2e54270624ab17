"""Removing and moving whole workflows: the SQL of ``wf.delete``, ``wf.gc``
(and a worker's retention loop), ``wf.export_workflows`` and
``wf.import_workflows``.

A workflow is its ``workflows`` row plus the rows keyed by its ID: steps,
logs, events, messages sent to it, delivered idempotency keys, streams
(deleted with their workflow by their foreign key), and (when the
application database is another one) its transactions' recorded outputs;
its children are workflows whose ``parent_workflow_id`` names it,
recursively. Everything of a tree goes in one transaction of the system
database, so a reused ID can never meet a stale step of its predecessor
(DBOS #769: an interrupted GC left steps that a new workflow replayed).

Locks: on Postgres a delete locks the rows it removes (FOR UPDATE; a
collection skips rows someone else holds) and re-checks under the lock that
every one has ended, so a concurrent resume either wins (the tree stays) or
waits for the delete. Collections also take one transaction-scoped advisory
lock so two collectors (a worker's loop, a ``wf gc``) take turns batch by
batch instead of contending for the same rows. Nothing the hot path writes
is locked: in-flight rows are never selected, and ended rows are touched
only by a resume. On SQLite each transaction holds the file's one write
lock: batches are smaller there so writers wait for a short time only."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .._records import Status
from .engine import is_serialization_failure
from .queries import STEP_COLUMNS, WORKFLOW_COLUMNS

if TYPE_CHECKING:
    from .database import AppDatabase, SystemDatabase
    from .driver import RawConnection

# a collection's workflows per transaction (top-level ones; their children
# come along). Postgres: short enough that a batch is a few tens of ms;
# SQLite: its write lock is held for the whole batch
GC_BATCH = {"postgresql": 1000, "sqlite": 200}
# at most this many IDs per statement
_CHUNK = 5000

WORKFLOW_FIELDS = tuple(c.strip() for c in WORKFLOW_COLUMNS.split(","))
STEP_FIELDS = tuple(c.strip() for c in STEP_COLUMNS.split(","))
EVENT_FIELDS = ("key", "value", "updated_at")
LOG_FIELDS = ("position", "seq", "time", "level", "step", "message")
MESSAGE_FIELDS = ("topic", "message", "idempotency_key", "created_at")
# a stream's rows (streams.py): a value per writing call's position, the close a row too
STREAM_FIELDS = ("key", "position", "value", "closed", "created_at")

_ENDED = tuple(Status.ENDED)

# ``{in_ids}``: the IDs come as one JSON array bind (one statement text
# whatever the count: planned once, prepared once, no bind limit), unpacked
# by the database
_FRAGMENTS = {
    "postgresql": {
        "for_update": "FOR UPDATE",
        "for_update_skip": "FOR UPDATE SKIP LOCKED",
        "in_ids": "= ANY(ARRAY(SELECT jsonb_array_elements_text(CAST(:ids AS jsonb))))",
    },
    "sqlite": {
        "for_update": "",
        "for_update_skip": "",
        "in_ids": "IN (SELECT value FROM json_each(:ids))",
    },
}

SQL: dict[str, str] = {
    # collectors take turns, batch by batch (Postgres; the single-key form,
    # a key space apart from the wake-up buckets' two-key locks)
    "gc_lock": "SELECT pg_advisory_xact_lock(hashtext('wf.gc'))",
    # the N-th newest ended top-level workflow of the statuses: it and newer ones stay
    "gc_keep_boundary": """
        SELECT created_at, workflow_id FROM {s}workflows
        WHERE parent_workflow_id IS NULL AND status IN :statuses
        ORDER BY created_at DESC, workflow_id DESC LIMIT 1 OFFSET :offset""",
    # the next batch of roots, oldest first, after the keyset cursor. Walks the
    # (created_at, workflow_id) index: updated_at >= created_at, so a row past
    # the age also has created_at < cutoff, which bounds the walk
    "gc_candidates": """
        SELECT created_at, workflow_id FROM {s}workflows
        WHERE (created_at, workflow_id) > (:c_at, :c_id) AND created_at <= :cutoff
            AND updated_at <= :cutoff AND parent_workflow_id IS NULL AND status IN :statuses
            {keep}
        ORDER BY created_at, workflow_id LIMIT :n {for_update_skip}""",
    # the roots and, recursively, their children, locked
    "tree": """
        WITH RECURSIVE tree(workflow_id) AS (
            SELECT workflow_id FROM {s}workflows WHERE workflow_id {in_ids}
            UNION
            SELECT w.workflow_id FROM {s}workflows w JOIN tree t ON w.parent_workflow_id = t.workflow_id
            WHERE w.parent_workflow_id IS NOT NULL)
        SELECT workflow_id, status, parent_workflow_id FROM {s}workflows
        WHERE workflow_id IN (SELECT workflow_id FROM tree) {for_update}""",
    "descendants": """
        WITH RECURSIVE tree(workflow_id) AS (
            SELECT workflow_id FROM {s}workflows
            WHERE parent_workflow_id {in_ids} AND parent_workflow_id IS NOT NULL
            UNION
            SELECT w.workflow_id FROM {s}workflows w JOIN tree t ON w.parent_workflow_id = t.workflow_id
            WHERE w.parent_workflow_id IS NOT NULL)
        SELECT workflow_id FROM tree""",
    "lock_rows": """
        SELECT workflow_id, status, parent_workflow_id FROM {s}workflows
        WHERE workflow_id {in_ids} {for_update}""",
    "delete_steps": "DELETE FROM {s}steps WHERE workflow_id {in_ids}",
    "delete_logs": "DELETE FROM {s}logs WHERE workflow_id {in_ids}",
    "delete_events": "DELETE FROM {s}events WHERE workflow_id {in_ids}",
    "delete_messages": "DELETE FROM {s}messages WHERE destination_id {in_ids}",
    "delete_message_keys": "DELETE FROM {s}message_keys WHERE destination_id {in_ids}",
    # ended ones only: the rows are locked and were checked, this is the belt
    "delete_workflows": "DELETE FROM {s}workflows WHERE workflow_id {in_ids} AND status IN :ended",
    # the application database (when it is another one)
    "delete_tx_outputs": "DELETE FROM {s}transaction_outputs WHERE workflow_id {in_ids}",
    # -- export ------------------------------------------------------------------------
    "export_workflows": "SELECT "
    + WORKFLOW_COLUMNS
    + " FROM {s}workflows WHERE workflow_id {in_ids}",
    "export_steps": "SELECT workflow_id, "
    + STEP_COLUMNS
    + " FROM {s}steps WHERE workflow_id {in_ids} ORDER BY workflow_id, position",
    "export_events": "SELECT workflow_id, "
    + ", ".join(EVENT_FIELDS)
    + " FROM {s}events WHERE workflow_id {in_ids} ORDER BY workflow_id, key",
    "export_logs": "SELECT workflow_id, "
    + ", ".join(LOG_FIELDS)
    + " FROM {s}logs WHERE workflow_id {in_ids} ORDER BY log_id",
    "export_messages": "SELECT destination_id, "
    + ", ".join(MESSAGE_FIELDS)
    + " FROM {s}messages WHERE destination_id {in_ids} ORDER BY message_id",
    "export_streams": "SELECT workflow_id, "
    + ", ".join(STREAM_FIELDS)
    + " FROM {s}streams WHERE workflow_id {in_ids} ORDER BY workflow_id, key, position",
    "export_message_keys": """
        SELECT destination_id, idempotency_key FROM {s}message_keys WHERE destination_id {in_ids}
        ORDER BY destination_id, idempotency_key""",
    # -- import ------------------------------------------------------------------------
    "existing": "SELECT workflow_id FROM {s}workflows WHERE workflow_id {in_ids}",
    "import_workflow": "INSERT INTO {s}workflows ("
    + WORKFLOW_COLUMNS
    + ") VALUES ("
    + ", ".join(":" + f for f in WORKFLOW_FIELDS)
    + ")",
    "import_step": "INSERT INTO {s}steps (workflow_id, "
    + STEP_COLUMNS
    + ") VALUES (:workflow_id, "
    + ", ".join(":" + f for f in STEP_FIELDS)
    + ")",
    "import_event": "INSERT INTO {s}events (workflow_id, key, value, updated_at) "
    "VALUES (:workflow_id, :key, :value, :updated_at)",
    "import_log": "INSERT INTO {s}logs (workflow_id, position, seq, time, level, step, message) "
    "VALUES (:workflow_id, :position, :seq, :time, :level, :step, :message) "
    "ON CONFLICT (workflow_id, position, seq) DO NOTHING",
    "import_message": "INSERT INTO {s}messages (destination_id, topic, message, idempotency_key, "
    "created_at) VALUES (:workflow_id, :topic, :message, :idempotency_key, :created_at)",
    "import_stream": "INSERT INTO {s}streams (workflow_id, "
    + ", ".join(STREAM_FIELDS)
    + ") VALUES (:workflow_id, "
    + ", ".join(":" + f for f in STREAM_FIELDS)
    + ")",
    "import_message_key": "INSERT INTO {s}message_keys (destination_id, idempotency_key) "
    "VALUES (:workflow_id, :idempotency_key) ON CONFLICT (destination_id, idempotency_key) DO NOTHING",
}

_rendered: dict[tuple[str, str, str], str] = {}


def sql(db: Any, name: str, **extra: str) -> str:
    """The named statement for ``db``'s dialect."""
    key = (db.backend.name, name, repr(sorted(extra.items())))
    text = _rendered.get(key)
    if text is None:
        values = {"s": db.backend.schema_prefix, **_FRAGMENTS[db.backend.name], **extra}
        text = SQL[name]
        for k, v in values.items():
            text = text.replace("{" + k + "}", v)
        _rendered[key] = text
    return text


def _chunks(items: Sequence[str], n: int = _CHUNK) -> Iterable[str]:
    """``items`` as JSON arrays of at most ``n`` (the ``:ids`` bind)."""
    for i in range(0, len(items), n):
        yield json.dumps(list(items[i : i + n]))


@dataclass(frozen=True)
class TreeRow:
    workflow_id: str
    status: str
    parent_workflow_id: str | None


@dataclass
class Deleted:
    """What one delete did: the IDs it removed (roots first, then their
    descendants), or, when it removed nothing, the members of the trees
    that have not ended (ID, status)."""

    workflow_ids: list[str] = field(default_factory=list)
    active: list[tuple[str, str]] = field(default_factory=list)


def _tree(conn: RawConnection, db: Any, roots: list[str]) -> list[TreeRow]:
    """The roots and their descendants, locked."""
    out: list[TreeRow] = []
    for chunk in _chunks(roots):
        out.extend(TreeRow(*r) for r in conn.execute(sql(db, "tree"), {"ids": chunk}))
    return out


def _descendants(conn: RawConnection, db: Any, roots: list[str]) -> list[TreeRow]:
    """The descendants of roots whose rows the caller has locked, locked too
    (rare: most workflows have no children, and the look-up is one probe
    per root into the small index of children)."""
    found: list[str] = []
    for chunk in _chunks(roots):
        found.extend(r[0] for r in conn.execute(sql(db, "descendants"), {"ids": chunk}))
    out: list[TreeRow] = []
    for chunk in _chunks(found):
        out.extend(TreeRow(*r) for r in conn.execute(sql(db, "lock_rows"), {"ids": chunk}))
    return out


def _delete_rows(
    conn: RawConnection, db: SystemDatabase, app: AppDatabase | None, ids: list[str]
) -> None:
    """Delete every row of ``ids`` (checked: all ended, locked)."""
    for chunk in _chunks(ids):
        if app is not None:
            # first, and in its own database: an ended workflow never needs
            # them again (its steps hold every transaction's output)
            app.execute(sql(app, "delete_tx_outputs"), {"ids": chunk})
        for name in (
            "delete_steps",
            "delete_logs",
            "delete_events",
            "delete_messages",
            "delete_message_keys",
        ):
            conn.execute(sql(db, name), {"ids": chunk})
        conn.execute(sql(db, "delete_workflows"), {"ids": chunk, "ended": list(_ENDED)})


def _ordered(roots: list[str], rows: list[TreeRow]) -> list[str]:
    """The tree's IDs, roots first, then each level of children."""
    ids = list(roots)
    seen = set(ids)
    by_parent: dict[str, list[str]] = {}
    for r in rows:
        if r.parent_workflow_id is not None:
            by_parent.setdefault(r.parent_workflow_id, []).append(r.workflow_id)
    i = 0
    while i < len(ids):
        for child in sorted(by_parent.get(ids[i], ())):
            if child not in seen:
                seen.add(child)
                ids.append(child)
        i += 1
    return ids


def tree_of(db: SystemDatabase, roots: list[str]) -> list[TreeRow]:
    """The roots and their descendants as they are now (no lock)."""
    out: list[TreeRow] = []
    for chunk in _chunks(roots):
        out.extend(TreeRow(*r) for r in db.execute(sql(db, "tree", for_update=""), {"ids": chunk}))
    return out


def delete_workflows(db: SystemDatabase, app: AppDatabase | None, roots: list[str]) -> Deleted:
    """Delete the workflows ``roots`` and their descendants in one
    transaction; nothing at all when a member has not ended."""

    def attempt() -> Deleted:
        try:
            with db.transaction() as conn:
                rows = _tree(conn, db, roots)
                active = [(r.workflow_id, r.status) for r in rows if r.status not in _ENDED]
                if active:
                    raise _Refused(Deleted(active=active))  # rolls the transaction back
                found = {r.workflow_id for r in rows}
                ids = _ordered([r for r in roots if r in found], rows)
                _delete_rows(conn, db, app, ids)
                return Deleted(workflow_ids=ids)
        except _Refused as refused:
            return refused.result

    return _again(db, attempt)


T = TypeVar("T")


def _again(db: SystemDatabase, fn: Callable[[], T], tries: int = 5) -> T:
    """``fn`` retried through outages, and again when Postgres broke a
    deadlock by aborting it (two deletes locking overlapping trees)."""
    for _ in range(tries - 1):
        try:
            return db.retrying(fn)
        except Exception as e:
            if not is_serialization_failure(e):
                raise
            time.sleep(random.uniform(0.01, 0.1))
    return db.retrying(fn)


class _Refused(Exception):
    def __init__(self, result: Deleted) -> None:
        super().__init__("refused")
        self.result = result


def collect(
    db: SystemDatabase,
    app: AppDatabase | None,
    *,
    cutoff_ms: int,
    statuses: Sequence[str] = _ENDED,
    keep: int | None = None,
    batch: int | None = None,
    stop: Callable[[], bool] | None = None,
    pace: float = 0.0,
    wait: Callable[[float], object] | None = None,
) -> int:
    """Delete the ended top-level workflows whose last change is older than
    ``cutoff_ms`` (and the trees under them) in batches of short
    transactions; returns how many workflows went (children included). A
    tree with a member still in flight stays whole. ``keep``: the newest
    ``keep`` top-level workflows of ``statuses`` stay whatever their age.
    ``stop``: asked between batches (a worker's shutdown). ``pace``: after
    each batch, pause ``pace`` times as long as it took (``wait(seconds)``,
    default time.sleep), so a background collection uses at most
    1 / (1 + pace) of a connection's time and of the database's attention."""
    statuses = [s for s in statuses if s in _ENDED]
    if not statuses:
        return 0
    n = batch or GC_BATCH.get(db.backend.name, 500)
    keep_terms = ""
    keep_params: dict[str, Any] = {}
    if keep:
        row = db.execute(
            sql(db, "gc_keep_boundary"), {"statuses": statuses, "offset": keep - 1}
        ).first()
        if row is None:
            return 0  # no more than `keep` of them at all
        keep_terms = "AND (created_at, workflow_id) < (:k_at, :k_id)"
        keep_params = {"k_at": row[0], "k_id": row[1]}
    candidates = sql(db, "gc_candidates", keep=keep_terms)
    cursor: tuple[int, str] = (-(2**62), "")
    total = 0
    while stop is None or not stop():

        def one_batch(cursor: tuple[int, str] = cursor) -> tuple[int, tuple[int, str] | None]:
            with db.transaction() as conn:
                if db.backend.advisory_locks:
                    conn.execute(sql(db, "gc_lock"))
                found = conn.execute(
                    candidates,
                    {
                        "c_at": cursor[0],
                        "c_id": cursor[1],
                        "cutoff": cutoff_ms,
                        "statuses": statuses,
                        "n": n,
                        **keep_params,
                    },
                ).fetchall()
                if not found:
                    return 0, None
                roots = [r[1] for r in found]
                # the roots are locked and ended (the candidates' terms)
                rows = [TreeRow(r, Status.SUCCESS, None) for r in roots]
                rows += _descendants(conn, db, roots)
                # a tree with a member in flight stays (its root too)
                parent = {r.workflow_id: r.parent_workflow_id for r in rows}
                blocked: set[str] = set()
                for r in rows:
                    if r.status not in _ENDED:
                        w: str | None = r.workflow_id
                        while w is not None and w not in blocked:
                            blocked.add(w)
                            w = parent.get(w)
                ids = _ordered([r for r in roots if r not in blocked], rows)
                ids = [w for w in ids if w not in blocked]
                if ids:
                    _delete_rows(conn, db, app, ids)
                nxt = (int(found[-1][0]), str(found[-1][1]))
                return len(ids), (nxt if len(found) == n else None)

        started = time.monotonic()
        deleted, after = _again(db, one_batch)
        total += deleted
        if after is None:
            break
        cursor = after
        if pace > 0:
            (wait or time.sleep)(pace * (time.monotonic() - started))
    return total


# -- export and import ---------------------------------------------------------------


def export_trees(db: SystemDatabase, roots: list[str]) -> list[dict[str, Any]]:
    """One record per root: its row, steps, events, logs, pending messages,
    delivered message keys and streams, and the same for each descendant (flat, in
    ``children``, parents before their children). Values are the stored
    text and epoch-millisecond integers, unchanged."""
    rows = tree_of(db, roots)
    found = {r.workflow_id for r in rows}
    ids = _ordered([r for r in roots if r in found], rows)
    parts: dict[str, dict[str, Any]] = {
        w: {
            "workflow": None,
            "steps": [],
            "events": [],
            "logs": [],
            "messages": [],
            "message_keys": [],
            "streams": [],
        }
        for w in ids
    }
    for chunk in _chunks(ids):
        for r in db.execute(sql(db, "export_workflows"), {"ids": chunk}):
            parts[r[0]]["workflow"] = dict(zip(WORKFLOW_FIELDS, tuple(r), strict=True))
        for name, key, fields in (
            ("export_steps", "steps", STEP_FIELDS),
            ("export_events", "events", EVENT_FIELDS),
            ("export_logs", "logs", LOG_FIELDS),
            ("export_messages", "messages", MESSAGE_FIELDS),
            ("export_message_keys", "message_keys", ("idempotency_key",)),
            ("export_streams", "streams", STREAM_FIELDS),
        ):
            for r in db.execute(sql(db, name), {"ids": chunk}):
                t = tuple(r)
                parts[t[0]][key].append(dict(zip(fields, t[1:], strict=True)))
    by_root: dict[str, list[str]] = {}
    root_of: dict[str, str] = {r: r for r in roots}
    for w in ids:
        wrow = parts[w]["workflow"]
        if w not in root_of and wrow is not None:
            root_of[w] = root_of.get(wrow["parent_workflow_id"], w)
        by_root.setdefault(root_of.get(w, w), []).append(w)
    out = []
    for r in roots:
        if r not in parts:
            continue
        record = {"format": EXPORT_FORMAT, **parts[r]}
        record["children"] = [parts[c] for c in by_root.get(r, []) if c != r]
        out.append(record)
    return out


EXPORT_FORMAT = "wf-export/1"


def existing_ids(db: SystemDatabase, ids: list[str]) -> list[str]:
    out: list[str] = []
    for chunk in _chunks(ids):
        out.extend(r[0] for r in db.execute(sql(db, "existing"), {"ids": chunk}))
    return out


def import_trees(db: SystemDatabase, parts: list[dict[str, Any]]) -> list[str] | list[tuple[str]]:
    """Insert checked workflow parts (``workflow``, ``steps``, ...) in one
    transaction. Returns the IDs inserted, or ``[(id,)]`` of the first ID
    that already exists (then nothing is written)."""

    def attempt() -> list[str] | list[tuple[str]]:
        with db.transaction() as conn:
            ids = [p["workflow"]["workflow_id"] for p in parts]
            taken: set[str] = set()
            for chunk in _chunks(ids):
                taken.update(r[0] for r in conn.execute(sql(db, "existing"), {"ids": chunk}))
            if taken:  # the first in the file's order; nothing written: the COMMIT is empty
                return [(next(w for w in ids if w in taken),)]
            for p in parts:
                w = p["workflow"]
                wid = w["workflow_id"]
                conn.execute(sql(db, "import_workflow"), {f: w.get(f) for f in WORKFLOW_FIELDS})
                for s in p["steps"]:
                    conn.execute(
                        sql(db, "import_step"),
                        {"workflow_id": wid, **{f: s.get(f) for f in STEP_FIELDS}},
                    )
                for name, key, fields in (
                    ("import_event", "events", EVENT_FIELDS),
                    ("import_log", "logs", LOG_FIELDS),
                    ("import_message", "messages", MESSAGE_FIELDS),
                    ("import_message_key", "message_keys", ("idempotency_key",)),
                    ("import_stream", "streams", STREAM_FIELDS),
                ):
                    for item in p.get(key, ()):
                        conn.execute(
                            sql(db, name), {"workflow_id": wid, **{f: item.get(f) for f in fields}}
                        )
            return ids

    return _again(db, attempt)


def dumps_record(record: dict[str, Any]) -> str:
    """One export record as one JSON line."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))
