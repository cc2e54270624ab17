"""What each page shows, gathered through the public ``wf`` API (and
``wf._support`` for the list's keyset page and ID search) — the same calls
the CLI makes — and its JSON form. No SQL here."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .. import errors, filters, output
from . import timeline

if TYPE_CHECKING:
    from wf import EventInfo, ExecutorInfo, LogRecord, QueueInfo, StepInfo, WorkflowInfo

    from ..render import Node

PAGE_SIZES = (20, 50, 100, 200)
DEFAULT_PAGE = 50
LOG_LINES = 500  # a workflow page shows its first this many log lines
THROUGHPUT_BUCKETS = 10  # the queues page's chart: this many minutes back
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- the workflows list ------------------------------------------------------------------


@dataclass(frozen=True)
class ListQuery:
    """The list page's filters, as given (blank fields dropped)."""

    statuses: tuple[str, ...] = ()
    name: str | None = None
    queue: str | None = None
    since: str | None = None
    until: str | None = None
    parent: str | None = None
    children: bool = False
    version: str | None = None  # the app version it was recorded as of
    partition: str | None = None  # its queue partition key
    q: str | None = None  # text search in workflow IDs
    before: str | None = None  # keyset cursor: "CREATED_MS:WORKFLOW_ID"
    limit: int = DEFAULT_PAGE

    def params(self, **change: Any) -> list[tuple[str, str]]:
        """The query string of this view (with ``change`` applied)."""
        values = {**asdict(self), **change}
        out: list[tuple[str, str]] = [("status", s) for s in values["statuses"]]
        for key in (
            "name",
            "queue",
            "since",
            "until",
            "parent",
            "version",
            "partition",
            "q",
            "before",
        ):
            if values[key]:
                out.append((key, str(values[key])))
        if values["children"]:
            out.append(("children", "1"))
        if values["limit"] != DEFAULT_PAGE:
            out.append(("limit", str(values["limit"])))
        return out


def _one(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    values = [v for v in params.get(key, ()) if v.strip()]
    return values[-1].strip() if values else None


def parse_list_query(params: Mapping[str, Sequence[str]]) -> ListQuery:
    """The filters from a query string; a bad one is BadInput (HTTP 400)."""
    statuses = tuple(
        s for v in params.get("status", ()) for s in (filters.parse_statuses([v]) or [])
    )
    limit_text = _one(params, "limit")
    limit = DEFAULT_PAGE
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= max(PAGE_SIZES):
            raise errors.BadInput(
                f"limit: {limit_text!r} is not a number from 1 to {max(PAGE_SIZES)}"
            )
        limit = int(limit_text)
    before = _one(params, "before")
    if before is not None:
        _cursor(before)
    query = ListQuery(
        statuses=tuple(dict.fromkeys(statuses)),
        name=_one(params, "name"),
        queue=_one(params, "queue"),
        since=_one(params, "since"),
        until=_one(params, "until"),
        parent=_one(params, "parent"),
        children=_one(params, "children") in ("1", "on", "true", "yes"),
        version=_one(params, "version"),
        partition=_one(params, "partition"),
        q=_one(params, "q"),
        before=before,
        limit=limit,
    )
    _kwargs(query)  # times and the rest checked now: bad input before any read
    return query


def _cursor(text: str) -> tuple[datetime, str]:
    ms, sep, wid = text.partition(":")
    if not sep or not ms.isdigit() or not wid:
        raise errors.BadInput(f"before: {text!r} is not a page cursor (CREATED_MS:WORKFLOW_ID)")
    return _EPOCH + timedelta(milliseconds=int(ms)), wid


def cursor_of(w: WorkflowInfo) -> str:
    created = output.aware(w.created_at)
    return f"{(created - _EPOCH) // timedelta(milliseconds=1)}:{w.workflow_id}"


def _kwargs(query: ListQuery) -> dict[str, Any]:
    chosen = filters.workflow_filters(
        list(query.statuses) or None,
        query.name,
        query.queue,
        query.since,
        query.until,
        query.children,
        query.parent,
        query.version,
        query.partition,
    )
    chosen["id_contains"] = query.q
    return chosen


class CountsCache:
    """The list's counts per status, kept a while per filter set.

    Exact counts cost a scan of what they count (a third of a second for six
    of them at a million rows on Postgres), while the rows of a page cost
    milliseconds; every open list polls every 2 s. So a set of counts is
    reused until it is ``LOAD`` times as old as it took to compute (and at
    least ``FRESH`` seconds): on a small database every poll counts afresh,
    on a big one the counts refresh every few seconds and take at most about
    1/LOAD of the database's time. The rows are always read fresh."""

    FRESH = 1.5
    LOAD = 10
    SIZE = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Any, ...], tuple[float, dict[str, int]]] = {}

    def peek(self, key: tuple[Any, ...]) -> dict[str, int] | None:
        """The counts kept for ``key`` while fresh, else None (nothing computed)."""
        with self._lock:
            hit = self._entries.get(key)
        return hit[1] if hit is not None and hit[0] > time.monotonic() else None

    def get(self, key: tuple[Any, ...], compute: Callable[[], dict[str, int]]) -> dict[str, int]:
        now = time.monotonic()
        with self._lock:
            hit = self._entries.get(key)
        if hit is not None and hit[0] > now:
            return hit[1]
        counts = compute()
        took = time.monotonic() - now
        with self._lock:
            if len(self._entries) >= self.SIZE:
                self._entries.clear()
            self._entries[key] = (time.monotonic() + max(self.FRESH, self.LOAD * took), counts)
        return counts


@dataclass
class ListPage:
    query: ListQuery
    rows: list[WorkflowInfo]
    counts: dict[str, int] | None  # per status, with the other filters; None: not counted
    total: int | None  # all statuses chosen
    next_cursor: str | None


def list_page(
    query: ListQuery, counts_cache: CountsCache | None = None, counts: bool | None = True
) -> ListPage:
    """A page of rows, and the counts per status: computed (``counts=True``;
    through ``counts_cache`` when given), only if cached (None: the page's
    first view, which then loads them in their own fragment), or not at all
    (False: the rows' fragment)."""
    import wf
    from wf._support import count_workflows_matching, list_workflows_page

    kwargs = _kwargs(query)
    before = _cursor(query.before) if query.before else None
    rows = list_workflows_page(**kwargs, before=before, limit=query.limit + 1)
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    others = {k: v for k, v in kwargs.items() if k != "status"}

    def count() -> dict[str, int]:
        return {s: count_workflows_matching(**others, status=s) for s in wf.Status.ALL}

    # keyed on the filters as given ("since=1h" stays one key as time passes)
    key = (
        query.name,
        query.queue,
        query.since,
        query.until,
        query.parent,
        query.children,
        query.version,
        query.partition,
        query.q,
    )
    found: dict[str, int] | None = None
    if counts is None:
        found = counts_cache.peek(key) if counts_cache is not None else None
    elif counts:
        found = counts_cache.get(key, count) if counts_cache is not None else count()
    chosen = query.statuses or wf.Status.ALL
    return ListPage(
        query,
        rows,
        found,
        None if found is None else sum(found.get(s, 0) for s in chosen),
        cursor_of(rows[-1]) if more and rows else None,
    )


def list_json(page: ListPage) -> dict[str, Any]:
    return {
        "workflows": [output.workflow_json(w) for w in page.rows],
        "counts": page.counts,
        "total": page.total,
        "next": page.next_cursor,
    }


# -- one workflow ---------------------------------------------------------------------------


STREAM_VALUES = 100  # a workflow page shows the first this many values of each stream


@dataclass
class StreamView:
    key: str
    values: list[Any]  # the first STREAM_VALUES
    more: bool  # it has more than those
    closed: bool  # the workflow closed it


def streams_of(workflow_id: str, steps: list[StepInfo]) -> list[StreamView]:
    """The streams a workflow wrote: their keys from its recorded calls
    (kind ``stream``, named ``write_stream:KEY`` / ``close_stream:KEY``), their
    values through ``wf.read_stream`` without waiting."""
    import itertools

    import wf

    keys: dict[str, bool] = {}
    for s in steps:
        verb, sep, key = s.name.partition(":")
        if s.kind == "stream" and sep:
            keys[key] = keys.get(key, False) or verb == "close_stream"
    out = []
    for key, closed in keys.items():
        reader = wf.read_stream(workflow_id, key, follow=False)
        try:
            values = list(itertools.islice(reader, STREAM_VALUES + 1))
        finally:
            reader.close()
        out.append(StreamView(key, values[:STREAM_VALUES], len(values) > STREAM_VALUES, closed))
    return out


@dataclass
class WorkflowPage:
    info: WorkflowInfo
    steps: list[StepInfo]
    tree: Node
    timeline: timeline.Timeline
    logs: list[LogRecord]
    events: list[EventInfo]
    streams: list[StreamView]

    @property
    def running_call(self) -> int | None:
        if self.info.status != "PENDING":
            return None
        return max((s.position for s in self.steps), default=0) + 1


def workflow_page(workflow_id: str, now: datetime | None = None) -> WorkflowPage:
    """WorkflowNotFoundError (HTTP 404) when it is not recorded."""
    import wf

    from ..commands.tree import build_tree

    tree = build_tree(workflow_id)
    steps = wf.list_steps(workflow_id)
    children = {c.info.workflow_id: c.info for c in tree.children}
    return WorkflowPage(
        tree.info,
        steps,
        tree,
        timeline.build(tree.info, steps, children, now=now),
        wf.list_logs(workflow_id, limit=LOG_LINES),
        wf.list_events(workflow_id),
        streams_of(workflow_id, steps),
    )


def workflow_doc(page: WorkflowPage) -> dict[str, Any]:
    from ..commands.events import event_json
    from ..render import tree_json

    doc = output.workflow_json(page.info)
    doc["running_call"] = page.running_call
    doc["steps"] = [output.step_json(s) for s in page.steps]
    doc["children"] = [tree_json(c) for c in page.tree.children]
    doc["logs"] = [output.log_json(r) for r in page.logs]
    doc["events"] = [event_json(page.info.workflow_id, e) for e in page.events]
    doc["streams"] = [
        {
            "key": st.key,
            "values": [output.to_jsonable(v) for v in st.values],
            "more": st.more,
            "closed": st.closed,
        }
        for st in page.streams
    ]
    tl = page.timeline
    doc["timeline"] = {
        "start": output.iso(tl.start),
        "seconds": tl.seconds,
        "rows": [asdict(r) for r in tl.rows],
    }
    return doc


# -- queues and executors ---------------------------------------------------------------------


@dataclass
class QueueRow:
    info: QueueInfo
    per_minute: list[int]  # workflows created on it, oldest minute first


def queues_page(now: datetime | None = None) -> list[QueueRow]:
    import wf

    now = now or datetime.now(UTC)
    edge = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    out = []
    for q in wf.list_queues():
        counts = []
        for i in range(THROUGHPUT_BUCKETS, 0, -1):
            lo = edge - timedelta(minutes=i)
            # until is inclusive: stop one millisecond short of the next minute
            hi = lo + timedelta(minutes=1) - timedelta(milliseconds=1)
            counts.append(wf.count_workflows(queue=q.name, since=lo, until=hi))
        out.append(QueueRow(q, counts))
    return out


def queues_json(rows: list[QueueRow]) -> list[dict[str, Any]]:
    """``wf queue list -o json``'s objects (limits, busiest partitions), with
    the chart's figures."""
    return [{**output.queue_json(r.info), "created_per_minute": r.per_minute} for r in rows]


@dataclass
class ExecutorRow:
    info: ExecutorInfo
    running: list[WorkflowInfo]


RUNNING_SHOWN = 1000  # the executors page reads at most this many PENDING workflows


def executors_page() -> list[ExecutorRow]:
    import wf

    pending = wf.list_workflows(status="PENDING", limit=RUNNING_SHOWN)
    by_executor: dict[str, list[WorkflowInfo]] = {}
    for w in pending:
        by_executor.setdefault(w.executor_id or "", []).append(w)
    return [ExecutorRow(e, by_executor.get(e.executor_id, [])) for e in wf.list_executors()]


def executors_json(rows: list[ExecutorRow]) -> list[dict[str, Any]]:
    return [
        {
            "executor_id": r.info.executor_id,
            "host": r.info.host,
            "pid": r.info.pid,
            "started_at": output.iso(r.info.started_at),
            "heartbeat_at": output.iso(r.info.heartbeat_at),
            "alive": r.info.alive,
            "queues": r.info.queues,
            "running": [w.workflow_id for w in r.running],
        }
        for r in rows
    ]
