"""Rendering: the JSON shapes of SPEC §5 and the human tables and panels.

rich is imported lazily (only when something is printed for a human), so
``wf --help`` never pays for the table machinery."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as _dt
import decimal
import json
import os
import sys
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.text import Text
    from wf import ErrorInfo, LogRecord, QueueInfo, SchemaStatus, StepInfo, WorkflowInfo

STATUS_STYLE = {
    "ENQUEUED": "cyan",
    "PENDING": "yellow",
    "SUCCESS": "green",
    "ERROR": "red",
    "CANCELLED": "magenta",
    "RETRIES_EXCEEDED": "bold red",
}
LEVEL_STYLE = {
    "DEBUG": "dim",
    "INFO": "blue",
    "WARNING": "yellow",
    "ERROR": "red",
    "CRITICAL": "bold red",
}

# -- JSON ---------------------------------------------------------------------------


def to_jsonable(value: Any) -> Any:
    """A deserialized wf value as plain JSON: datetimes as ISO 8601, UUIDs and
    Decimals as strings, bytes as base64, tuples and sets as arrays,
    dataclasses as objects."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return (
            value if value == value and value not in (float("inf"), float("-inf")) else repr(value)
        )
    if isinstance(value, dict):
        return {
            k if isinstance(k, str) else json.dumps(to_jsonable(k)): to_jsonable(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [to_jsonable(v) for v in value]
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, BaseException):
        return {"type": type(value).__name__, "message": str(value)}
    return repr(value)


def iso(dt: _dt.datetime | None) -> str | None:
    return None if dt is None else aware(dt).isoformat()


def aware(dt: _dt.datetime) -> _dt.datetime:
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=_dt.UTC)


def error_json(err: ErrorInfo | None) -> dict[str, Any] | None:
    """SPEC §5's error object: ``causes``, what it was raised from, outermost first."""
    if err is None:
        return None
    causes = [{"type": c.type, "message": c.message} for c in err.causes]
    return {"type": err.type, "message": err.message, "causes": causes}


def workflow_json(w: WorkflowInfo) -> dict[str, Any]:
    """SPEC §5's workflow object. ``child_count`` is null where it was not
    counted (only ``wf list`` counts)."""
    return {
        "workflow_id": w.workflow_id,
        "status": w.status,
        "name": w.name,
        "inputs": to_jsonable(w.inputs),
        "output": to_jsonable(w.output),
        "error": error_json(w.error),
        "created_at": iso(w.created_at),
        "updated_at": iso(w.updated_at),
        "executor_id": w.executor_id,
        "queue": w.queue,
        "recovery_attempts": w.recovery_attempts,
        "parent_workflow_id": w.parent_workflow_id,
        "app_version": w.app_version,
        "started_at": iso(w.started_at),
        "deadline": iso(w.deadline),
        "cancel_reason": w.cancel_reason,
        "forked_from": w.forked_from,
        "forked_from_step": w.forked_from_step,
        "child_count": w.child_count,
        "priority": w.priority,
        "dedup_id": w.dedup_id,
        "partition_key": w.partition_key,
        "delayed_until": iso(w.delayed_until),
    }


def step_json(s: StepInfo) -> dict[str, Any]:
    return {
        "position": s.position,
        "name": s.name,
        "kind": s.kind,
        "output": to_jsonable(s.output),
        "error": error_json(s.error),
        "started_at": iso(s.started_at),
        "ended_at": iso(s.ended_at),
        "child_workflow_id": s.child_workflow_id,
        "attempts": s.attempts,
        "detail": s.detail,
    }


def log_json(r: LogRecord) -> dict[str, Any]:
    return {
        "workflow_id": r.workflow_id,
        "time": iso(r.time),
        "level": r.level,
        "step": r.step,
        "message": r.message,
    }


def count_json(n: int) -> dict[str, Any]:
    return {"count": n}


def queue_json(q: QueueInfo) -> dict[str, Any]:
    return {
        "name": q.name,
        "enqueued": q.enqueued,
        "running": q.running,
        "concurrency": q.concurrency,
        "worker_concurrency": q.worker_concurrency,
        "rate_limit": None
        if q.rate_limit is None
        else {"limit": q.rate_limit[0], "period": q.rate_limit[1]},
        "priority": q.priority,
        "partition_concurrency": q.partition_concurrency,
        "partition_rate_limit": None
        if q.partition_rate_limit is None
        else {"limit": q.partition_rate_limit[0], "period": q.partition_rate_limit[1]},
        "busiest_partitions": [
            {"partition_key": k, "enqueued": e, "running": r} for k, e, r in q.partitions
        ],
    }


def schema_json(s: SchemaStatus, url_source: str | None = None) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "url": s.url,
        "current_version": s.current_version,
        "latest_version": s.latest_version,
        "up_to_date": s.current_version >= s.latest_version,
    }
    if url_source is not None:
        doc["url_source"] = url_source
    return doc


def emit(
    fmt: str,
    docs: list[dict[str, Any]],
    ids: Iterable[str],
    human: Callable[[], None],
    *,
    single: bool = False,
) -> None:
    """Print records in ``fmt``: ``human()`` draws the table; json is one
    document (the object itself when ``single``, else an array); jsonl one
    compact object per line; ids one workflow ID per line."""
    if fmt == "json":
        dump_json(docs[0] if single and docs else docs)
    elif fmt == "jsonl":
        sys.stdout.write("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
        sys.stdout.flush()
    elif fmt == "ids":
        sys.stdout.write("".join(i + "\n" for i in ids))
        sys.stdout.flush()
    else:
        human()


def dump_json(doc: Any, *, compact: bool = False) -> None:
    """Write one JSON document on stdout."""
    if compact:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(doc, ensure_ascii=False, indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- plain formatting -------------------------------------------------------------


def cut(text: str, limit: int | None) -> str:
    """``text`` cut to ``limit`` characters, the last one an ellipsis."""
    if limit is None or len(text) <= limit:
        return text
    return text[: max(1, limit - 1)] + "…"


def fmt_value(value: Any, limit: int | None = None) -> str:
    """A value as compact JSON (strings quoted), cut to ``limit`` characters."""
    return cut(json.dumps(to_jsonable(value), ensure_ascii=False, separators=(", ", ": ")), limit)


def fmt_inputs(inputs: Any, limit: int | None = None) -> str:
    """``{"args": [...], "kwargs": {...}}`` as a call's argument list: ``"bob", n=3``."""
    if isinstance(inputs, dict) and set(inputs) <= {"args", "kwargs"}:
        parts = [fmt_value(a) for a in inputs.get("args") or []]
        parts += [f"{k}={fmt_value(v)}" for k, v in (inputs.get("kwargs") or {}).items()]
        return cut(", ".join(parts), limit)
    return fmt_value(inputs, limit)


# --time-format (or WF_TIME_FORMAT): local, iso or relative; None: not given,
# each view's default (local times; `wf list` shows ages)
_time_format: str | None = None


def set_time_format(value: str | None) -> None:
    global _time_format
    _time_format = value


def time_format_given() -> bool:
    return _time_format is not None


def zone_name(t: _dt.datetime) -> str:
    """The zone's abbreviation (UTC, CET), else its offset (+0530)."""
    name = t.tzname()
    if name and not name.startswith(("+", "-")):
        return name
    return t.strftime("%z")


# the default (local) form of a time; its zone follows
_LOCAL = "%Y-%m-%d %H:%M:%S"


def fmt_time(dt: _dt.datetime | None) -> str:
    """A time to the second, as --time-format says: local with its zone
    (2026-12-01 12:03:59 UTC, the default), iso, or relative (5m ago)."""
    return "-" if dt is None else _fmt_at(dt, "seconds")


def fmt_time_ms(dt: _dt.datetime) -> str:
    """A log line's time: to the millisecond, as --time-format says."""
    return _fmt_at(dt, "milliseconds")


def _fmt_at(dt: _dt.datetime, timespec: str) -> str:
    t = aware(dt).astimezone()
    if _time_format == "iso":
        return t.isoformat(timespec=timespec)
    if _time_format == "relative":
        return fmt_relative(t)
    local = t.strftime(_LOCAL)
    if timespec == "milliseconds":
        local += f".{t.microsecond // 1000:03d}"
    return f"{local} {zone_name(t)}"


def fmt_relative(dt: _dt.datetime, now: _dt.datetime | None = None) -> str:
    """12s ago, 4m05s ago, in 3h12m (a deadline ahead)."""
    now = now or _dt.datetime.now(_dt.UTC)
    seconds = (now - aware(dt)).total_seconds()
    span = abs(seconds)
    text = f"{int(span)}s" if span < 60 else fmt_seconds(span)
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def fmt_seconds(seconds: float) -> str:
    """A short duration: 850ms, 12.3s, 4m05s, 3h12m, 2d04h."""
    if seconds < 0:
        seconds = 0.0
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{(s % 3600) // 60:02d}m"
    return f"{s // 86400}d{(s % 86400) // 3600:02d}h"


def plural(n: int, word: str = "workflow") -> str:
    """``1 workflow``, ``1,234 workflows``."""
    return f"{n:,} {word}" + ("" if n == 1 else "s")


def fmt_age(dt: _dt.datetime, now: _dt.datetime | None = None) -> str:
    """How long ago, coarsely: 5s, 12m, 3h, 2d."""
    now = now or _dt.datetime.now(_dt.UTC)
    s = max(0, int((now - aware(dt)).total_seconds()))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h"
    return f"{s // 86400}d"


def _ended(w: WorkflowInfo) -> bool:
    import wf  # already loaded: the record came from it

    return w.status in wf.Status.ENDED


def _span(a: _dt.datetime, b: _dt.datetime) -> str:
    return fmt_seconds((aware(b) - aware(a)).total_seconds())


def queued_time(w: WorkflowInfo, now: _dt.datetime | None = None) -> str:
    """How long it waited before it began running ("…": it still waits);
    "-" when that is not known."""
    if w.started_at is not None:
        return _span(w.created_at, w.started_at)
    if w.status in ("ENQUEUED", "DELAYED"):
        now = now or _dt.datetime.now(_dt.UTC)
        waited = _span(w.created_at, now) + "…"
        if w.status == "DELAYED" and w.delayed_until is not None:
            waited += f" (eligible in {_span(now, w.delayed_until)})"
        return waited
    if _ended(w) and w.queue is not None:
        return _span(w.created_at, w.updated_at)  # it ended (cancelled) before it ran
    return "-"


def running_time(w: WorkflowInfo, now: _dt.datetime | None = None) -> str:
    """How long it ran, not counting its time on a queue ("…": it still runs);
    "-" before it began."""
    began = w.started_at
    if began is None:
        return "-"
    if _ended(w):
        return _span(began, w.updated_at)
    if w.status == "PENDING":
        return _span(began, now or _dt.datetime.now(_dt.UTC)) + "…"
    return "-"  # back on its queue


def workflow_duration(w: WorkflowInfo, now: _dt.datetime | None = None) -> str:
    """The DURATION of `wf list` and the outcome lines: the running time."""
    return running_time(w, now)


def lineage(w: WorkflowInfo) -> str | None:
    """The "restarted from X at step N" of a workflow `wf restart` made."""
    source = w.forked_from
    if not source:
        return None
    step = w.forked_from_step
    return f"restarted from {source}" + (f" at step {step}" if step else "")


def step_duration(s: StepInfo) -> str:
    """How long the step took; "…" while it runs, "-" when not recorded."""
    if s.started_at is None or s.ended_at is None:
        return "-" if s.started_at is None else "…"
    return _span(s.started_at, s.ended_at)


# -- rich -------------------------------------------------------------------------

_consoles: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """A rich console: colour only on a terminal (and never with NO_COLOR)."""
    c = _consoles.get(stderr)
    if c is None:
        from rich.console import Console

        c = Console(stderr=stderr, highlight=False, emoji=False)
        _consoles[stderr] = c
    return c


# the environment variables with which rich treats a stream that is not a tty as a terminal
_FORCE_TERMINAL = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def is_terminal(stderr: bool = False) -> bool:
    """Whether output goes to a terminal, as rich's console decides it, without
    importing rich when it is plainly a pipe (piped output never needs rich)."""
    stream = sys.stderr if stderr else sys.stdout
    if not any(os.environ.get(k) for k in _FORCE_TERMINAL):
        try:
            if not stream.isatty():
                return False
        except (AttributeError, ValueError):
            return False
    return console(stderr).is_terminal


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=STATUS_STYLE.get(status, ""))


def table(*columns: tuple[str, dict[str, Any]], tty: bool | None = None) -> Any:
    """A table with a header rule on a terminal, bare columns when piped
    (``tty``: which of the two; by default, whether stdout is a terminal)."""
    from rich import box
    from rich.table import Table

    if tty is None:
        tty = is_terminal()
    t = Table(
        box=box.SIMPLE_HEAD if tty else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if tty else "",
        expand=False,
        collapse_padding=tty,  # two blanks between columns, not three
    )
    for header, kw in columns:
        t.add_column(header, **kw)
    return t


# piped output is one line per row whatever its length: tables render at
# this width (so nothing folds) and lose their padding
UNWRAPPED = 100_000


def one_line(text: str) -> str:
    """A cell's text on one line (a row is one line, on a terminal too)."""
    if "\n" not in text and "\r" not in text:
        return text
    return " ↵ ".join(part for part in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"))


def plain_lines(renderable: Any) -> list[str]:
    """A rich renderable as plain lines: no colour, no wrapping, no trailing blanks."""
    import io

    from rich.console import Console

    buf = io.StringIO()
    Console(file=buf, width=UNWRAPPED, color_system=None, highlight=False, emoji=False).print(
        renderable
    )
    return [line.rstrip() for line in buf.getvalue().splitlines()]


def write_lines(lines: Iterable[str]) -> None:
    sys.stdout.write("".join(line + "\n" for line in lines))
    sys.stdout.flush()


def print_table(table: Any) -> None:
    """Print a table: rich on a terminal; when piped, each row on one line
    however long (``wf list | awk '{print $1}'`` gives whole IDs), without
    the trailing blanks of cell padding."""
    if is_terminal():
        console().print(table)
    else:
        write_lines(plain_lines(table))


def print_each(items: Iterable[Any], print_one: Callable[[Any], None]) -> None:
    """``print_one`` for each item, a blank line between them."""
    for n, item in enumerate(items):
        if n:
            print_lines("")
        print_one(item)


def print_workflows(workflows: Iterable[WorkflowInfo], *, footer: str | None = None) -> None:
    """`wf list`'s table. CHILDREN appears when the counts were read; the
    time column is AGE (how long ago it was created) unless --time-format
    asks for times (CREATED). ``footer`` is printed under it on a terminal."""
    from rich.text import Text

    rows = list(workflows)
    now = _dt.datetime.now(_dt.UTC)
    counted = any(w.child_count is not None for w in rows)
    ages = not time_format_given() or _time_format == "relative"
    columns: list[tuple[str, dict[str, Any]]] = [
        ("ID", {"no_wrap": False, "overflow": "fold", "min_width": 8}),
        ("STATUS", {"no_wrap": True}),
        ("NAME", {"overflow": "ellipsis", "no_wrap": True, "min_width": 6}),
    ]
    if counted:
        columns.append(("CHILDREN", {"no_wrap": True, "justify": "right"}))
    created = [fmt_age(w.created_at, now) if ages else fmt_time(w.created_at) for w in rows]
    header = "AGE" if ages else "CREATED"
    zones = {t.rpartition(" ")[2] for t in created} if _time_format in (None, "local") else set()
    if not ages and len(zones) == 1:  # one zone for all: say it once, in the header
        zone = zones.pop()
        header = f"CREATED ({zone})"
        created = [t[: -len(zone) - 1] for t in created]
    columns.append((header, {"no_wrap": True, "justify": "right" if ages else "left"}))
    columns.append(("DURATION", {"no_wrap": True, "justify": "right"}))
    listing = table(*columns)
    for w, when in zip(rows, created, strict=True):
        cells: list[Any] = [
            Text(one_line(w.workflow_id)),
            status_text(w.status),
            Text(one_line(w.function or w.name)),
        ]
        if counted:
            cells.append(str(w.child_count or 0))
        cells.append(when)
        cells.append(workflow_duration(w, now))
        listing.add_row(*cells)
    print_table(listing)
    c = console()
    if footer and c.is_terminal:
        c.print(Text(footer, style="dim"))


# -- one workflow: `wf status`, the head of `wf show` -------------------------------

Rows = list[tuple[str, "Text | str"]]


def error_rows(err: ErrorInfo, tty: bool, limit: int | None) -> Rows:
    """An ``error`` row and a ``caused by`` row per cause, each cut to ``limit``."""
    lines = [("error", err), *(("caused by", c) for c in err.causes)]
    if not tty:
        return [(label, cut(f"{e.type}: {e.message}", limit)) for label, e in lines]
    from rich.text import Text

    return [(label, Text(cut(f"{e.type}: {e.message}", limit), style="red")) for label, e in lines]


def workflow_rows(
    w: WorkflowInfo, tty: bool, *, limit: int = 2000, running_call: int | None = None
) -> Rows:
    """The ``label  value`` rows of ``wf status`` and of `wf show`'s head:
    values cut to ``limit`` characters; ``running_call``, the call a PENDING
    workflow runs now (`wf show` says it)."""
    rows: Rows = [
        ("status", status_text(w.status) if tty else w.status),
        ("name", w.name),
        ("inputs", fmt_inputs(w.inputs, limit)),
    ]
    if w.error is not None:
        rows += error_rows(w.error, tty, limit)
    elif w.status == "SUCCESS":
        rows.append(("output", fmt_value(w.output, limit)))
    if w.status == "CANCELLED" and w.cancel_reason:
        rows.append(("cancelled", w.cancel_reason))
    if running_call is not None:
        rows.append(("running", f"call #{running_call}"))
    origin = lineage(w)
    if origin:
        rows.append(("lineage", origin))
    if w.parent_workflow_id:
        rows.append(("parent", w.parent_workflow_id))
    rows += [
        ("created", fmt_time(w.created_at)),
        ("started", fmt_time(w.started_at)),
        ("updated", fmt_time(w.updated_at)),
        ("queued", queued_time(w)),
        ("ran", running_time(w)),
    ]
    if w.deadline is not None:
        rows.append(("deadline", fmt_time(w.deadline)))
    rows += [
        ("executor", w.executor_id or "-"),
        ("queue", w.queue or "-"),
        ("recoveries", str(w.recovery_attempts)),
    ]
    if w.app_version:
        rows.append(("version", w.app_version))
    if w.partition_key is not None:
        rows.append(("partition", w.partition_key))
    if w.priority:
        rows.append(("priority", str(w.priority)))
    if w.dedup_id is not None:
        rows.append(("dedup id", w.dedup_id))
    if w.delayed_until is not None:
        rows.append(("not before", fmt_time(w.delayed_until)))
    return rows


def workflow_panel(workflow_id: str, rows: Rows) -> Any:
    """The rows in a panel titled with the workflow's ID (on a terminal)."""
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    return Panel(grid, title=Text(f"workflow {workflow_id}"), title_align="left", expand=False)


def kv_lines(rows: Rows) -> list[str]:
    """``label  value`` lines, the values lined up, each row on one line
    however long, without trailing blanks (for pipes)."""
    width = max(len(label) for label, _ in rows) + 2
    return [
        label.ljust(width) + one_line(v if isinstance(v, str) else v.plain).rstrip()
        for label, v in rows
    ]


def unregistered_note(w: WorkflowInfo) -> str | None:
    """For an ENQUEUED (or DELAYED) workflow that no live executor serving its queue has
    registered (work enqueued by name, e.g. by wf.Client, for code no worker
    runs): what to do. None otherwise, also when a serving executor does not
    say what it registered (an older wf) or the check itself fails."""
    if w.status not in ("ENQUEUED", "DELAYED"):
        return None
    import wf

    try:
        live = [e for e in wf.list_executors() if e.alive]
    except Exception:
        return None  # only a hint
    q = w.queue or "default"
    serving = [e for e in live if e.queues is None or q in e.queues]
    if any(e.workflows is None or w.name in e.workflows for e in serving):
        return None
    why = (
        f"{plural(len(serving), 'live executor')} serve{'s' if len(serving) == 1 else ''} queue {q!r}"
        if serving
        else f"none serves queue {q!r}"
    )
    stays = "it stays ENQUEUED"
    if w.status == "DELAYED" and w.delayed_until is not None:
        stays = f"eligible at {fmt_time(w.delayed_until)}, it stays on its queue"
    return (
        f"no live worker has registered workflow {w.name} ({why}); {stays} until "
        f"one does: run `wf worker {w.module or 'MODULE'}`"
    )


def print_workflow(w: WorkflowInfo) -> None:
    """``wf status``: a panel with everything recorded about the workflow
    (plain ``label  value`` lines when piped), and for ENQUEUED work that no
    live worker has registered, a ``worker`` line saying so."""
    tty = is_terminal()
    rows = workflow_rows(w, tty)
    note = unregistered_note(w)
    if note is not None:
        rows.append(("worker", note))
    if tty:
        console().print(workflow_panel(w.workflow_id, rows))
    else:
        write_lines(kv_lines([("workflow", w.workflow_id), *rows]))


def _print_kv(rows: Rows) -> None:
    """``label  value`` lines with no padding. On a terminal long values fold
    at its width; piped, each row is one line however long."""
    if not is_terminal():
        write_lines(kv_lines(rows))
        return
    from rich.text import Text

    c = console()
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        line = Text(label.ljust(width), style="bold")
        line.append_text(value if isinstance(value, Text) else Text(value))
        c.print(line, overflow="fold")


def print_outcome(w: WorkflowInfo) -> None:
    """What ``start``/``await``/``resume``/``restart`` print at the end."""
    rows: Rows = [
        ("workflow", w.workflow_id),
        ("status", status_text(w.status) if is_terminal() else w.status),
    ]
    if w.error is not None:
        rows += error_rows(w.error, False, None)
    elif w.status == "SUCCESS":
        rows.append(("output", fmt_value(w.output)))
    if _ended(w):
        rows.append(("duration", workflow_duration(w)))
    _print_kv(rows)


# -- steps: `wf steps`, the steps of `wf show` ------------------------------------------


def step_name(s: StepInfo) -> str:
    """The name, with what it addressed: a recv's topic, an event's key."""
    return f"{s.name} ({s.detail})" if s.detail else s.name


def step_result(s: StepInfo, tty: bool) -> Text:
    from rich.text import Text

    if s.error is not None:
        return Text(one_line(f"{s.error.type}: {s.error.message}"), style="red" if tty else "")
    if s.kind == "sleep" and isinstance(s.output, int | float) and s.output > 1e9:
        until = _dt.datetime.fromtimestamp(float(s.output), _dt.UTC)
        return Text(f"until {fmt_time(until)}")
    if s.child_workflow_id:  # a started child's record holds no result: just its ID
        if s.output is None:
            return Text(s.child_workflow_id)
        return Text(f"{s.child_workflow_id} → {fmt_value(s.output, 120)}")
    return Text(fmt_value(s.output, 200))


def steps_table(tty: bool | None = None) -> Any:
    """An empty table with the columns of `wf steps`."""
    return table(
        ("#", {"justify": "right", "no_wrap": True}),
        ("NAME", {"overflow": "fold", "min_width": 8}),
        ("KIND", {"no_wrap": True}),
        ("TRIES", {"justify": "right", "no_wrap": True}),
        ("OUTPUT / ERROR", {"overflow": "fold", "min_width": 12}),
        ("DURATION", {"justify": "right", "no_wrap": True}),
        tty=tty,
    )


def add_steps(t: Any, steps: Iterable[StepInfo], *, tty: bool, copied_before: int) -> None:
    """A row a step; a step at a position below ``copied_before`` was copied
    from the workflow a restart forked (its KIND says so)."""
    from rich.text import Text

    for s in steps:
        kind = s.kind + (", copied" if s.position < copied_before else "")
        t.add_row(
            str(s.position),
            Text(one_line(step_name(s))),
            kind,
            str(s.attempts),
            step_result(s, tty),
            step_duration(s),
        )


def print_steps(steps: Iterable[StepInfo], *, copied_before: int = 0) -> None:
    """`wf steps`' table."""
    tty = is_terminal()
    t = steps_table(tty)
    add_steps(t, steps, tty=tty, copied_before=copied_before)
    print_table(t)


def format_log(r: LogRecord, *, with_id: bool) -> Text:
    from rich.text import Text

    tty = is_terminal()
    line = Text(fmt_time_ms(r.time), style="dim" if tty else "")
    line.append(" ")
    line.append(f"{r.level:<8}", style=LEVEL_STYLE.get(r.level, "") if tty else "")
    if with_id:
        line.append(r.workflow_id, style="cyan" if tty else "")
        line.append(" ")
    if r.step:
        line.append(f"[{r.step}] ", style="dim" if tty else "")
    line.append(r.message)
    return line


def print_logs(records: Iterable[LogRecord], *, with_id: bool) -> None:
    c = console()
    for r in records:
        c.print(format_log(r, with_id=with_id), soft_wrap=True)


def print_queues(queues: Iterable[QueueInfo]) -> None:
    t = table(
        ("QUEUE", {"overflow": "fold"}),
        ("ENQUEUED", {"justify": "right"}),
        ("RUNNING", {"justify": "right"}),
        ("CONCURRENCY", {"justify": "right"}),
        ("PER WORKER", {"justify": "right"}),
        ("RATE LIMIT", {"justify": "right"}),
        ("PRIORITY", {}),
    )
    for q in queues:
        rate = "-" if q.rate_limit is None else f"{q.rate_limit[0]}/{q.rate_limit[1]:g}s"
        t.add_row(
            one_line(q.name),
            str(q.enqueued),
            str(q.running),
            "-" if q.concurrency is None else str(q.concurrency),
            "-" if q.worker_concurrency is None else str(q.worker_concurrency),
            rate,
            "yes" if q.priority else "no",
        )
    print_table(t)
    for q in queues:
        if q.partition_concurrency is None and q.partition_rate_limit is None and not q.partitions:
            continue
        if not q.published:  # partition keys enqueued, limits unknown (not absent)
            limits_text = (
                "per partition limits not published yet (no worker that declares the queue "
                "has served it)"
            )
        else:
            limits_text = "per partition " + (" and ".join(_partition_limits(q)) or "no limit")
        busiest = ", ".join(
            f"{one_line(k)} ({r} running, {e} enqueued)" for k, e, r in q.partitions
        )
        print_lines(
            f"{one_line(q.name)}: {limits_text}" + (f"; busiest: {busiest}" if busiest else "")
        )


def _partition_limits(q: QueueInfo) -> list[str]:
    limits = []
    if q.partition_concurrency is not None:
        limits.append(f"concurrency {q.partition_concurrency}")
    if q.partition_rate_limit is not None:
        limits.append(f"rate {q.partition_rate_limit[0]}/{q.partition_rate_limit[1]:g}s")
    return limits


def print_lines(*lines: str, stderr: bool = False) -> None:
    stream = sys.stderr if stderr else sys.stdout
    for line in lines:
        stream.write(line + "\n")
    stream.flush()


@contextlib.contextmanager
def spinner(message: str, enabled: bool = True) -> Iterator[None]:
    """A spinner on stderr while waiting, only when stderr is a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield
        return
    with console(stderr=True).status(message, spinner="dots"):
        yield
