"""The Jinja2 environment of the dashboard's templates (shipped in the
package, autoescaped) and the small formatting filters they use."""

from __future__ import annotations

import functools
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2

from .. import output
from .timeline import fmt_seconds

TEMPLATES = Path(__file__).parent / "templates"


def fmt_time(dt: datetime | None) -> str:
    """UTC to the millisecond: the same text on every poll (no "2 s ago"),
    so an unchanged view keeps its ETag."""
    if dt is None:
        return "—"
    return output.aware(dt).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def fmt_value(value: Any, limit: int = 4000) -> str:
    text = json.dumps(output.to_jsonable(value), indent=2, ensure_ascii=False, sort_keys=False)
    return text if len(text) <= limit else text[:limit] + f"… ({len(text):,} characters)"


def fmt_inputs(inputs: Any, limit: int = 80) -> str:
    return output.fmt_inputs(inputs, limit)


def duration(info: Any) -> str:
    start = info.started_at or info.created_at
    import wf

    if info.status not in wf.Status.ENDED:
        return "running" if info.status == "PENDING" else "—"
    return fmt_seconds(max((info.updated_at - start).total_seconds(), 0.0))


def step_duration(step: Any) -> str:
    if step.started_at is None or step.ended_at is None:
        return "—"
    return fmt_seconds(max((step.ended_at - step.started_at).total_seconds(), 0.0))


@functools.cache
def env() -> jinja2.Environment:
    e = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    import wf

    e.globals.update(STATUSES=wf.Status.ALL, ENDED=wf.Status.ENDED)
    e.filters.update(
        time=fmt_time,
        value=fmt_value,
        inputs=fmt_inputs,
        duration=duration,
        step_duration=step_duration,
        seconds=fmt_seconds,
    )
    return e


def page(name: str, ctx: dict[str, Any], *, partial: bool = False) -> str:
    """The whole page ``name``, or only its live fragment (``_name.html``)."""
    return env().get_template(f"_{name}.html" if partial else f"{name}.html").render(ctx)
