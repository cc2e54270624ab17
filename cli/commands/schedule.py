"""wf schedule list: the @wf.scheduled workflows workers declared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import common, errors, options, output

if TYPE_CHECKING:
    from wf import ScheduleInfo


def schedule_json(s: ScheduleInfo) -> dict[str, Any]:
    return {
        "name": s.name,
        "workflow_name": s.workflow_name,
        "cron": s.cron,
        "last_tick": output.iso(s.last_tick),
        "next_tick": output.iso(s.next_tick),
        "updated_at": output.iso(s.updated_at),
    }


@errors.command
def schedule_list(
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """List each schedule a worker declared (a @wf.scheduled workflow): its
    name, workflow, cron, last and next tick. A schedule is recorded when a
    `wf worker` serving its module starts.

    -o json: an array of {"name", "workflow_name", "cron", "last_tick",
    "next_tick", "updated_at"}; -o jsonl: one per line; -o ids: the names.
    """
    out = common.output_format(fmt, json_out)
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    found = wf.list_schedules()
    if not found and out == "table":
        output.print_lines(
            "no schedules (a `wf worker MODULE` records the @wf.scheduled workflows of MODULE)",
            stderr=True,
        )
        return errors.OK
    output.emit(
        out, [schedule_json(s) for s in found], [s.name for s in found], lambda: _table(found)
    )
    return errors.OK


def _table(found: list[ScheduleInfo]) -> None:
    from rich.text import Text

    # a declared schedule is named after its workflow: one column says both
    named_apart = any(s.name != s.workflow_name for s in found)
    columns: list[tuple[str, dict[str, Any]]] = [("NAME", {"no_wrap": True})]
    if named_apart:
        columns.append(("WORKFLOW", {"overflow": "fold"}))
    columns += [("CRON", {"no_wrap": True}), ("LAST TICK", {"no_wrap": True})]
    columns.append(("NEXT TICK", {"no_wrap": True}))
    table = output.table(*columns)
    for s in found:
        cells = [Text(s.name)] + ([Text(s.workflow_name)] if named_apart else [])
        table.add_row(
            *cells, Text(s.cron), output.fmt_time(s.last_tick), output.fmt_time(s.next_tick)
        )
    output.print_table(table)
