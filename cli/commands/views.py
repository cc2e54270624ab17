"""Read-only commands: status, list, count, steps. None of them creates a
database or a schema: a missing one is one line, exit 5."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from .. import common, errors, filters, options, output

if TYPE_CHECKING:
    from wf import WorkflowInfo


@errors.command
def status(
    workflow_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="ID...",
            help="Workflow IDs (several: e.g. from `wf list -o ids | xargs wf status`).",
            show_default=False,
        ),
    ],
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Show workflows: status, function, inputs, output or error, times
    (queued, ran), why it was cancelled, what it was restarted from,
    executor, recovery attempts. Exit 0 whatever their status, 4 if one is
    unknown (the others are shown). With one ID, -o json prints the object;
    with several, an array."""
    fmt = common.output_format(out, json_out)
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    infos: list[WorkflowInfo] = []
    missing: list[wf.WorkflowNotFoundError] = []
    for workflow_id in workflow_ids:
        try:
            infos.append(wf.get_workflow(workflow_id))
        except wf.WorkflowNotFoundError as e:
            missing.append(e)

    output.emit(
        fmt,
        [output.workflow_json(i) for i in infos],
        [i.workflow_id for i in infos],
        lambda: output.print_each(infos, output.print_workflow),
        single=len(workflow_ids) == 1,
    )
    if not missing:
        return errors.OK
    if not infos and len(missing) == 1:
        raise missing[0]  # the one line every command gives
    for unknown in missing:
        errors.report(unknown, debug)
    return errors.NOT_FOUND


def list_footer(shown: int, offset: int, total: int) -> str:
    """The line under `wf list` on a terminal: 20 of 1,234 shown (--limit / --offset)."""
    text = f"{shown:,} of {total:,} shown"
    if offset:
        text += f", from #{offset + 1:,}"
    if offset or total > shown:
        text += " (--limit / --offset)"
    return text


@errors.command
def list_(
    statuses: options.Statuses = None,
    name: options.Name = None,
    queue: options.QueueFilter = None,
    since: options.Since = None,
    until: options.Until = None,
    children: options.Children = False,
    parent: options.Parent = None,
    version: options.VersionFilter = None,
    partition: options.PartitionFilter = None,
    limit: Annotated[int, typer.Option("--limit", "-l", min=1, help="At most this many.")] = 20,
    offset: Annotated[
        int, typer.Option("--offset", min=0, help="Skip this many (newest first).")
    ] = 0,
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """List workflows, newest first: top-level ones (with how many children
    each started) unless --children or --parent. DURATION is the time it ran,
    not its time on a queue. Piped, each row is one line (`wf list | awk
    '{print $1}'` gives whole IDs); -o ids prints only the IDs."""
    fmt = common.output_format(out, json_out)
    chosen = filters.workflow_filters(
        statuses, name, queue, since, until, children, parent, version, partition
    )
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    rows = wf.list_workflows(**chosen, limit=limit, offset=offset, child_counts=True)
    footer = None
    if fmt == "table" and output.is_terminal():
        footer = list_footer(len(rows), offset, wf.count_workflows(**chosen))
    if fmt == "table" and not rows:
        note = "no workflows" if offset == 0 else f"no workflows from #{offset + 1} on (--offset)"
        output.print_lines(note, stderr=True)
        return errors.OK
    output.emit(
        fmt,
        [output.workflow_json(w) for w in rows],
        [w.workflow_id for w in rows],
        lambda: output.print_workflows(rows, footer=footer),
    )
    return errors.OK


@errors.command
def count(
    statuses: options.Statuses = None,
    name: options.Name = None,
    queue: options.QueueFilter = None,
    since: options.Since = None,
    until: options.Until = None,
    children: options.Children = False,
    parent: options.Parent = None,
    version: options.VersionFilter = None,
    partition: options.PartitionFilter = None,
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Count the workflows `wf list` would show with these filters (all of
    them, not one page): top-level ones unless --children or --parent.
    Prints the number alone; -o json prints {"count": N}."""
    fmt = common.document_format(out, json_out, "wf count prints no records")
    chosen = filters.workflow_filters(
        statuses, name, queue, since, until, children, parent, version, partition
    )
    common.setup(db, create=False)
    import wf

    n = wf.count_workflows(**chosen)
    if fmt == "json":
        output.dump_json(output.count_json(n))
    else:
        output.print_lines(str(n))
    return errors.OK


@errors.command
def steps(
    workflow_id: options.WorkflowId,
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.StepsOutput = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Show each recorded call of a workflow: position, name (with a recv's
    topic, an event's key), kind (step, transaction, child, sleep, send,
    recv, event), attempts, output or error, duration. Steps a restart copied
    say so. -o ids prints the IDs of the child workflows it started."""
    fmt = common.output_format(out, json_out)
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    info = wf.get_workflow(workflow_id)  # exit 4 if unknown
    rows = wf.list_steps(workflow_id)
    if fmt == "table" and not rows:
        ended = info.status in wf.Status.ENDED
        note = "has no recorded steps" if ended else "has no recorded steps yet"
        output.print_lines(f"workflow {workflow_id} {note}", stderr=True)
        return errors.OK
    copied_before = info.forked_from_step or 0
    output.emit(
        fmt,
        [output.step_json(s) for s in rows],
        [s.child_workflow_id for s in rows if s.child_workflow_id],
        lambda: output.print_steps(rows, copied_before=copied_before),
    )
    return errors.OK
