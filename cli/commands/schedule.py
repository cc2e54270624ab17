"""wf schedule list|create|pause|resume|delete|trigger|backfill: the
schedules, code-declared (@wf.scheduled, recorded by the workers that import
them) and stored in the database (wf.create_schedule)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import common, errors, options, output
from ..timeparse import parse_time

if TYPE_CHECKING:
    from wf import ScheduleInfo, WorkflowHandle

Name = Annotated[
    str,
    typer.Argument(
        metavar="NAME",
        help="The schedule's name (a code-declared one is named after its workflow, "
        "MODULE:FUNCTION).",
        show_default=False,
    ),
]


def schedule_json(s: ScheduleInfo) -> dict[str, Any]:
    return {
        "name": s.name,
        "workflow_name": s.workflow_name,
        "cron": s.cron,
        "last_tick": output.iso(s.last_tick),
        "next_tick": output.iso(s.next_tick),
        "updated_at": output.iso(s.updated_at),
        "source": s.source,
        "paused": s.paused,
        "args": output.to_jsonable(list(s.args)),
        "kwargs": output.to_jsonable(s.kwargs),
        "queue": s.queue,
        "created_at": output.iso(s.created_at),
    }


@errors.command
def schedule_list(
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """List each schedule: those a worker declared (a @wf.scheduled
    workflow, recorded when a `wf worker` serving its module starts) and those
    stored with `wf schedule create`: name, workflow, cron, last and next tick
    ("paused" while paused).

    -o json: an array of {"name", "workflow_name", "cron", "last_tick",
    "next_tick", "updated_at", "source" ("code" or "db"), "paused", "args",
    "kwargs", "queue", "created_at"}; -o jsonl: one per line; -o ids: the names.
    """
    out = common.output_format(fmt, json_out)
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    found = wf.list_schedules()
    if not found and out == "table":
        output.print_lines(
            "no schedules (a `wf worker MODULE` records the @wf.scheduled workflows of MODULE; "
            "`wf schedule create` stores one)",
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
    # (only code-declared ones: the columns as before stored schedules existed)
    stored = any(s.source != "code" for s in found)
    columns: list[tuple[str, dict[str, Any]]] = [("NAME", {"no_wrap": True})]
    if stored:
        columns.append(("SOURCE", {"no_wrap": True}))
    if named_apart:
        columns.append(("WORKFLOW", {"overflow": "fold"}))
    columns += [("CRON", {"no_wrap": True}), ("LAST TICK", {"no_wrap": True})]
    columns.append(("NEXT TICK", {"no_wrap": True}))
    table = output.table(*columns)
    for s in found:
        cells = [Text(s.name)] + ([Text(s.source)] if stored else [])
        cells += [Text(s.workflow_name)] if named_apart else []
        nxt = Text("paused", style="yellow") if s.paused else output.fmt_time(s.next_tick)
        table.add_row(*cells, Text(s.cron), output.fmt_time(s.last_tick), nxt)
    output.print_table(table)


@errors.command
def schedule_create(
    name: Annotated[
        str,
        typer.Argument(
            metavar="NAME",
            help="A new name: letters, digits, '_', '.' and '-' (its ticks' IDs are "
            "sched-NAME-<tick time>).",
            show_default=False,
        ),
    ],
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:FUNCTION",
            help="The @wf.workflow each tick runs as fn(scheduled_at, started_at, ARG..., "
            "**kwargs); the workers import it by this name.",
            show_default=False,
        ),
    ],
    cron: Annotated[
        str,
        typer.Argument(
            metavar="CRON",
            help="When, in UTC: five fields ('0 3 * * *'), or six with seconds last; quote it.",
            show_default=False,
        ),
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ARG",
            help="Arguments after (scheduled_at, started_at); each is parsed as JSON when it "
            "parses, else taken as a string.",
            show_default=False,
        ),
    ] = None,
    kwargs: Annotated[
        str | None,
        typer.Option(
            "--kwargs", metavar="JSON", help="Keyword arguments as a JSON object: '{\"n\": 3}'."
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            help="Enqueue each tick on this queue (its limits apply). Default: the worker "
            "whose tick it is runs it.",
        ),
    ] = None,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.DocOutput = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Store a schedule in the database: every `wf worker` that can import
    its workflow ticks it (each tick once across them all) within a few
    seconds, no deploy needed. The workflow is imported here first: a target
    that is no workflow, arguments it cannot take, an invalid cron or a name
    that is taken are refused, and nothing is written.

    -o json: the schedule, as `wf schedule list -o json` shows it."""
    out = common.document_format(fmt, json_out, "wf schedule create prints one schedule")
    output.set_time_format(options.time_format(time_format))
    fn = common.load_workflow(target)
    call_args = [common.parse_arg(a) for a in args or []]
    call_kwargs = common.parse_kwargs(kwargs)
    options.check_queue(queue)
    common.setup(db)
    import wf

    info = wf.create_schedule(name, fn, cron, args=call_args, kwargs=call_kwargs, queue=queue)
    if out == "json":
        output.dump_json(schedule_json(info))
    else:
        output.print_lines(
            f"created schedule {info.name}: {info.workflow_name} at {info.cron!r} "
            f"(next tick {output.fmt_time(info.next_tick)})"
        )
    return errors.OK


def _simple(verb: str, name: str, db: str | None, out: str) -> int:
    common.setup(db, create=False)
    import wf

    call = {"pause": wf.pause_schedule, "resume": wf.resume_schedule}.get(verb, wf.delete_schedule)
    call(name)
    if out == "json":
        output.dump_json({"name": name, "done": verb})
    else:
        output.print_lines(f"{verb}d schedule {name}")
    return errors.OK


@errors.command
def schedule_pause(
    name: Name,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Pause a schedule (stored or code-declared): no tick starts after this
    returns, in any process; ticks already running go on.

    -o json: {"name", "done": "pause"}."""
    out = common.document_format(fmt, json_out, "wf schedule pause prints one document")
    return _simple("pause", name, db, out)


@errors.command
def schedule_resume(
    name: Name,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Resume a paused schedule: it ticks again from now on (the ticks missed
    meanwhile do not run; `wf schedule backfill` runs them).

    -o json: {"name", "done": "resume"}."""
    out = common.document_format(fmt, json_out, "wf schedule resume prints one document")
    return _simple("resume", name, db, out)


@errors.command
def schedule_delete(
    name: Name,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Delete a stored schedule: no tick starts after this returns; its ticks'
    workflows stay recorded. A code-declared schedule is removed from the code
    (or paused), not here.

    -o json: {"name", "done": "delete"}."""
    out = common.document_format(fmt, json_out, "wf schedule delete prints one document")
    return _simple("delete", name, db, out)


@errors.command
def schedule_trigger(
    name: Name,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Run the schedule's workflow once now ("run now"), beside its ticks and
    also while it is paused: one extra run with its own ID (sched-NAME-now-…,
    scheduled_at = now), enqueued on the schedule's queue (else 'default') for
    a `wf worker`. Prints its ID (`wf await ID` waits for it).

    -o json: {"name", "workflow_id"}; -o ids: the ID."""
    out = common.output_format(fmt, json_out)
    common.setup(db, create=False)
    import wf

    h = wf.trigger_schedule(name)
    docs = [{"name": name, "workflow_id": h.workflow_id}]
    output.emit(out, docs, [h.workflow_id], lambda: output.print_lines(h.workflow_id), single=True)
    return errors.OK


@errors.command
def schedule_backfill(
    name: Name,
    start: Annotated[
        str,
        typer.Option(
            "--start",
            metavar="TIME",
            help="The first tick time to run (inclusive): ISO 8601 or relative (3d = 3 days ago).",
            show_default=False,
        ),
    ],
    end: Annotated[
        str | None,
        typer.Option(
            "--end",
            metavar="TIME",
            help="Ticks before this time (exclusive); default: now.",
            show_default=False,
        ),
    ] = None,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Run each tick of the schedule from --start to --end that has not run,
    exactly once (a tick whose workflow is recorded is skipped, however often
    this is run), enqueued under the tick's own ID on the schedule's queue
    (else 'default') for `wf worker`s. At most 10,000 ticks at a time.
    Prints the IDs it enqueued.

    -o json: {"name", "enqueued": [IDs]}; -o jsonl: one {"name", "workflow_id"}
    per line; -o ids: the IDs."""
    out = common.output_format(fmt, json_out)
    t0 = parse_time(start, "--start")
    t1 = parse_time(end, "--end") if end is not None else None
    common.setup(db, create=False)
    from datetime import UTC, datetime

    import wf

    handles: list[WorkflowHandle] = wf.backfill_schedule(name, t0, t1 or datetime.now(UTC))
    ids = [h.workflow_id for h in handles]
    if out == "json":
        output.dump_json({"name": name, "enqueued": ids})
        return errors.OK

    def table() -> None:
        if ids:
            output.print_lines(*ids)
        output.print_lines(
            f"enqueued {output.plural(len(ids), 'tick')} of {name}"
            + ("" if ids else " (every tick in that range has run already)"),
            stderr=True,
        )

    output.emit(out, [{"name": name, "workflow_id": i} for i in ids], ids, table)
    return errors.OK
