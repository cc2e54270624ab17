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
import sys
import uuid
from collections.abc import Iterable, Iterator
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


def error_json(err: ErrorInfo | None) -> dict[str, str] | None:
    return None if err is None else {"type": err.type, "message": err.message}


def workflow_json(w: WorkflowInfo) -> dict[str, Any]:
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
    }


def log_json(r: LogRecord) -> dict[str, Any]:
    return {
        "workflow_id": r.workflow_id,
        "time": iso(r.time),
        "level": r.level,
        "step": r.step,
        "message": r.message,
    }


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
    }


def schema_json(s: SchemaStatus) -> dict[str, Any]:
    return {
        "url": s.url,
        "current_version": s.current_version,
        "latest_version": s.latest_version,
        "up_to_date": s.current_version >= s.latest_version,
    }


def dump_json(doc: Any, *, compact: bool = False) -> None:
    """Write one JSON document on stdout."""
    if compact:
        text = json.dumps(doc, ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(doc, ensure_ascii=False, indent=2)
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


# -- plain formatting -------------------------------------------------------------


def fmt_value(value: Any, limit: int | None = None) -> str:
    """A value as compact JSON (strings quoted), cut to ``limit`` characters."""
    text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(", ", ": "))
    if limit is not None and len(text) > limit:
        text = text[: max(1, limit - 1)] + "…"
    return text


def fmt_inputs(inputs: Any, limit: int | None = None) -> str:
    """``{"args": [...], "kwargs": {...}}`` as a call's argument list: ``"bob", n=3``."""
    if isinstance(inputs, dict) and set(inputs) <= {"args", "kwargs"}:
        parts = [fmt_value(a) for a in inputs.get("args") or []]
        parts += [f"{k}={fmt_value(v)}" for k, v in (inputs.get("kwargs") or {}).items()]
        text = ", ".join(parts)
        if limit is not None and len(text) > limit:
            text = text[: max(1, limit - 1)] + "…"
        return text
    return fmt_value(inputs, limit)


def fmt_time(dt: _dt.datetime | None) -> str:
    """Local time, to the second."""
    if dt is None:
        return "-"
    return aware(dt).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_time_ms(dt: _dt.datetime) -> str:
    return aware(dt).astimezone().strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


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


def workflow_duration(w: WorkflowInfo, now: _dt.datetime | None = None) -> str:
    if w.status == "ENQUEUED":
        return "-"
    if w.status == "PENDING":
        now = now or _dt.datetime.now(_dt.UTC)
        return fmt_seconds((now - aware(w.created_at)).total_seconds()) + "…"
    return fmt_seconds((aware(w.updated_at) - aware(w.created_at)).total_seconds())


def step_duration(s: StepInfo) -> str:
    if s.started_at is None or s.ended_at is None:
        return "-" if s.started_at is None else "…"
    return fmt_seconds((aware(s.ended_at) - aware(s.started_at)).total_seconds())


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


def status_text(status: str) -> Text:
    from rich.text import Text

    return Text(status, style=STATUS_STYLE.get(status, ""))


def _table(*columns: tuple[str, dict[str, Any]]) -> Any:
    from rich import box
    from rich.table import Table

    tty = console().is_terminal
    table = Table(
        box=box.SIMPLE_HEAD if tty else None,
        show_edge=False,
        pad_edge=False,
        header_style="bold" if tty else "",
        expand=False,
    )
    for header, kw in columns:
        table.add_column(header, **kw)
    return table


def print_table(table: Any) -> None:
    """Print a table; when piped, without the trailing blanks of cell padding."""
    c = console()
    if c.is_terminal:
        c.print(table)
        return
    with c.capture() as cap:
        c.print(table)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in cap.get().splitlines()))
    sys.stdout.flush()


def print_workflows(workflows: Iterable[WorkflowInfo]) -> None:
    from rich.text import Text

    now = _dt.datetime.now(_dt.UTC)
    table = _table(
        ("ID", {"no_wrap": False, "overflow": "fold", "min_width": 8}),
        ("STATUS", {"no_wrap": True}),
        ("NAME", {"overflow": "ellipsis", "no_wrap": True, "min_width": 6}),
        ("AGE", {"no_wrap": True, "justify": "right"}),
        ("DURATION", {"no_wrap": True, "justify": "right"}),
    )
    for w in workflows:
        table.add_row(
            Text(w.workflow_id),
            status_text(w.status),
            Text(w.function or w.name),
            fmt_age(w.created_at, now),
            workflow_duration(w, now),
        )
    print_table(table)


def _grid() -> Any:
    from rich.table import Table

    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold" if console().is_terminal else "", no_wrap=True)
    grid.add_column(overflow="fold")
    return grid


def print_workflow(w: WorkflowInfo) -> None:
    """``wf status``: a panel with everything recorded about the workflow
    (plain ``label  value`` lines when piped)."""
    from rich.text import Text

    c = console()
    rows: list[tuple[str, Text | str]] = [
        ("status", status_text(w.status)),
        ("name", w.name),
        ("inputs", fmt_inputs(w.inputs, 2000)),
    ]
    if w.error is not None:
        rows.append(
            (
                "error",
                Text(f"{w.error.type}: {w.error.message}", style="red" if c.is_terminal else ""),
            )
        )
    elif w.status == "SUCCESS":
        rows.append(("output", fmt_value(w.output, 2000)))
    rows += [
        ("created", fmt_time(w.created_at)),
        ("updated", fmt_time(w.updated_at)),
        ("duration", workflow_duration(w)),
        ("executor", w.executor_id or "-"),
        ("queue", w.queue or "-"),
        ("recoveries", str(w.recovery_attempts)),
    ]
    if w.parent_workflow_id:
        rows.append(("parent", w.parent_workflow_id))
    if w.deadline is not None:
        rows.append(("deadline", fmt_time(w.deadline)))
    if not c.is_terminal:
        _kv_lines([("workflow", w.workflow_id), *rows])
        return
    from rich.panel import Panel

    grid = _grid()
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))
    c.print(Panel(grid, title=Text(f"workflow {w.workflow_id}"), title_align="left", expand=False))


def _kv_lines(rows: list[tuple[str, Text | str]]) -> None:
    """``label  value`` lines with no table padding (so piped output has no
    trailing blanks); long values fold at the terminal's width."""
    from rich.text import Text

    c = console()
    width = max(len(label) for label, _ in rows) + 2
    for label, value in rows:
        line = Text(label.ljust(width), style="bold" if c.is_terminal else "")
        line.append_text(value if isinstance(value, Text) else Text(value))
        c.print(line, overflow="fold")


def print_outcome(w: WorkflowInfo) -> None:
    """What ``start``/``await``/``resume``/``restart`` print at the end."""
    rows: list[tuple[str, Text | str]] = [
        ("workflow", w.workflow_id),
        ("status", status_text(w.status)),
    ]
    if w.error is not None:
        rows.append(("error", f"{w.error.type}: {w.error.message}"))
    elif w.status == "SUCCESS":
        rows.append(("output", fmt_value(w.output)))
    if w.status not in ("ENQUEUED", "PENDING"):
        rows.append(("duration", workflow_duration(w)))
    _kv_lines(rows)


def print_steps(steps: Iterable[StepInfo]) -> None:
    from rich.text import Text

    tty = console().is_terminal
    table = _table(
        ("#", {"justify": "right", "no_wrap": True}),
        ("NAME", {"overflow": "fold", "min_width": 8}),
        ("KIND", {"no_wrap": True}),
        ("OUTPUT / ERROR", {"overflow": "fold", "min_width": 12}),
        ("DURATION", {"justify": "right", "no_wrap": True}),
    )
    for s in steps:
        if s.error is not None:
            out = Text(f"{s.error.type}: {s.error.message}", style="red" if tty else "")
        elif s.kind == "sleep" and isinstance(s.output, int | float) and s.output > 1e9:
            until = _dt.datetime.fromtimestamp(float(s.output), _dt.UTC)
            out = Text(f"until {fmt_time(until)}")
        elif s.kind == "child" and s.child_workflow_id:
            out = Text(f"{s.child_workflow_id} → {fmt_value(s.output, 120)}")
        else:
            out = Text(fmt_value(s.output, 200))
        table.add_row(str(s.position), Text(s.name), s.kind, out, step_duration(s))
    print_table(table)


def format_log(r: LogRecord, *, with_id: bool) -> Text:
    from rich.text import Text

    tty = console().is_terminal
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
    table = _table(
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
        table.add_row(
            q.name,
            str(q.enqueued),
            str(q.running),
            "-" if q.concurrency is None else str(q.concurrency),
            "-" if q.worker_concurrency is None else str(q.worker_concurrency),
            rate,
            "yes" if q.priority else "no",
        )
    print_table(table)


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
