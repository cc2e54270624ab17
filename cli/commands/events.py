"""wf events: the events a workflow published (wf.set_event), or one of them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import common, errors, options, output
from ..timeparse import parse_duration

if TYPE_CHECKING:
    from wf import EventInfo


def event_json(workflow_id: str, e: EventInfo) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "key": e.key,
        "value": output.to_jsonable(e.value),
        "updated_at": output.iso(e.updated_at),
    }


def _find(workflow_id: str, key: str) -> EventInfo | None:
    """The event ``key``, or None when it is not set (a value may be None)."""
    import wf

    return next((e for e in wf.list_events(workflow_id) if e.key == key), None)


@errors.command
def events(
    workflow_id: options.WorkflowId,
    key: Annotated[
        str | None,
        typer.Argument(metavar="KEY", help="Only this event's value.", show_default=False),
    ] = None,
    wait: Annotated[
        str | None,
        typer.Option(
            "--wait",
            metavar="SECONDS",
            help="Wait up to this long (seconds, or 30s/10m) for KEY to be set.",
            show_default=False,
        ),
    ] = None,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Show a workflow's events: key, value, when it was last set. With KEY:
    that event's value alone (as JSON), exit 3 if it is not set (after
    --wait, if given).

    -o json: an array of {"workflow_id", "key", "value", "updated_at"} (the
    object alone with KEY); -o jsonl: one per line; -o ids: the keys.
    """
    out = common.output_format(fmt, json_out)
    wait_s = parse_duration(wait, "--wait") if wait is not None else None
    if wait_s is not None and key is None:
        raise errors.BadInput("--wait needs a KEY: the event to wait for")
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    wf.get_workflow(workflow_id)  # exit 4 if unknown
    if key is None:
        return _print_all(workflow_id, out)
    found = _find(workflow_id, key)
    if found is None and wait_s is not None:
        wf.get_event(workflow_id, key, timeout=wait_s)
        found = _find(workflow_id, key)
    if found is None:
        waited = f" (waited {wait_s:g}s)" if wait_s is not None else ""
        output.print_lines(
            f"event {key!r} of workflow {workflow_id} is not set{waited}", stderr=True
        )
        return errors.STOPPED
    event = found
    output.emit(
        out,
        [event_json(workflow_id, event)],
        [event.key],
        lambda: output.print_lines(output.fmt_value(event.value)),
        single=True,
    )
    return errors.OK


def _print_all(workflow_id: str, fmt: str) -> int:
    import wf

    found = wf.list_events(workflow_id)
    if not found and fmt == "table":
        output.print_lines(f"workflow {workflow_id} has no events", stderr=True)
        return errors.OK
    output.emit(
        fmt,
        [event_json(workflow_id, e) for e in found],
        [e.key for e in found],
        lambda: _print_table(found),
    )
    return errors.OK


def _print_table(found: list[EventInfo]) -> None:
    from rich.text import Text

    table = output.table(
        ("KEY", {"no_wrap": True}),
        ("VALUE", {"overflow": "fold", "min_width": 12}),
        ("UPDATED", {"no_wrap": True}),
    )
    for e in found:
        table.add_row(
            Text(e.key), Text(output.fmt_value(e.value, 2000)), output.fmt_time(e.updated_at)
        )
    output.print_table(table)
