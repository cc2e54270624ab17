"""A workflow's calls laid out to scale: one row per recorded call (and the
workflow's own queued and running spans), each a bar from its start to its
end as a share of the workflow's whole span, so the page draws a Gantt chart
with plain positioned boxes (no charting library)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from wf import StepInfo, WorkflowInfo

# a bar narrower than this share of the span is drawn this wide, so an
# instant call stays visible (its label still gives the real duration)
MIN_WIDTH = 0.4


@dataclass(frozen=True)
class Bar:
    left: float  # percent of the span from the workflow's creation
    width: float  # percent of the span
    seconds: float | None  # the real duration; None when it has no times


@dataclass(frozen=True)
class Row:
    label: str
    kind: str  # workflow, step, transaction, child, sleep, send, recv, event, ...
    bar: Bar
    status: str  # ok, error, running, queued, copied
    position: int | None = None
    attempts: int = 1
    error: str | None = None
    child_workflow_id: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Timeline:
    start: datetime
    seconds: float  # the whole span
    rows: list[Row] = field(default_factory=list)
    ticks: list[tuple[float, str]] = field(default_factory=list)  # (percent, label)


def fmt_seconds(s: float) -> str:
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 60:
        return f"{s:.2f} s" if s < 10 else f"{s:.1f} s"
    m, sec = divmod(int(s), 60)
    if m < 60:
        return f"{m}m{sec:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def build(
    info: WorkflowInfo,
    steps: list[StepInfo],
    children: dict[str, WorkflowInfo],
    now: datetime | None = None,
) -> Timeline:
    """The timeline of ``info``: its span is creation to its end (now while
    it runs); ``children`` (by ID) give a child call its child's own span and
    status when the call itself recorded no end yet."""
    import wf

    now = now or datetime.now(UTC)
    ended = info.status in wf.Status.ENDED
    t0 = info.created_at
    end = info.updated_at if ended else max(now, info.updated_at)
    for s in steps:  # a call recorded after the row's last update still fits
        for t in (s.started_at, s.ended_at):
            if t is not None and t > end:
                end = t
    span = max((end - t0).total_seconds(), 0.001)

    def bar(a: datetime | None, b: datetime | None) -> Bar:
        if a is None:
            return Bar(0.0, 0.0, None)
        b = b or a
        left = min(max((a - t0).total_seconds() / span * 100, 0.0), 100.0)
        width = max((b - a).total_seconds() / span * 100, MIN_WIDTH)
        return Bar(
            round(min(left, 100 - MIN_WIDTH), 3),
            round(min(width, 100 - left), 3),
            max((b - a).total_seconds(), 0.0),
        )

    rows: list[Row] = []
    started = info.started_at
    if info.queue is not None and started is not None and started > t0:
        rows.append(Row("queued", "workflow", bar(t0, started), "queued"))
    run_status = {"SUCCESS": "ok", "ENQUEUED": "queued", "DELAYED": "queued"}.get(
        info.status, "running" if not ended else "error"
    )
    rows.append(
        Row(
            "run" if started else "not started",
            "workflow",
            bar(started or t0, end if started else t0),
            run_status,
        )
    )
    copied_before = info.forked_from_step or 0
    for s in steps:
        a, b = s.started_at, s.ended_at
        child = children.get(s.child_workflow_id or "")
        if child is not None:
            a = a or child.created_at
            if b is None and child.status in wf.Status.ENDED:
                b = child.updated_at
        if s.position < copied_before:
            status = "copied"
        elif s.error is not None or (
            child is not None and child.status in ("ERROR", "RETRIES_EXCEEDED")
        ):
            status = "error"
        elif b is None:
            status = "running"
            b = end
        else:
            status = "ok"
        label = s.name + (f" ({s.detail})" if s.detail else "")
        rows.append(
            Row(
                label,
                s.kind,
                bar(a, b),
                status,
                position=s.position,
                attempts=s.attempts,
                error=f"{s.error.type}: {s.error.message}" if s.error else None,
                child_workflow_id=s.child_workflow_id,
                detail=s.detail,
            )
        )
    if info.status == "PENDING" and started is not None:
        # wf records a call when it ends: the one running now is the next
        # position, begun (at the latest) when the last recorded one ended
        last = max(
            (s.ended_at or s.started_at for s in steps if s.ended_at or s.started_at), default=None
        )
        begun = max(last, started) if last is not None else started
        nxt = max((s.position for s in steps), default=0) + 1
        rows.append(Row(f"call #{nxt} (running)", "running", bar(begun, end), "running"))
    ticks = [(float(p), fmt_seconds(span * p / 100)) for p in (0, 25, 50, 75, 100)]
    return Timeline(t0, span, rows, ticks)
