"""Read-only commands: status, list, steps."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import common, errors, options, output
from ..timeparse import parse_time


def parse_statuses(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    import wf  # lazy: cheap, and loads no database driver

    statuses = wf.Status.ALL
    out: list[str] = []
    for v in values:
        for part in v.split(","):
            s = part.strip().upper().replace("-", "_")
            if s not in statuses:
                raise errors.BadInput(
                    f"--status: unknown status {part.strip()!r} (use one of {', '.join(statuses)})"
                )
            if s not in out:
                out.append(s)
    return out


@errors.command
def status(
    workflow_id: options.WorkflowId,
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Show a workflow: status, function, inputs, output or error, times,
    executor, recovery attempts. Exit 0 whatever its status, 4 if unknown."""
    common.setup(db)
    import wf

    info = wf.get_workflow(workflow_id)
    if json_out:
        output.dump_json(output.workflow_json(info))
    else:
        output.print_workflow(info)
    return errors.OK


@errors.command
def list_(
    statuses: options.Statuses = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name",
            "-n",
            metavar="NAME",
            help="The function's name, or the whole module:function.",
            show_default=False,
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            help="Only workflows of this queue.",
            show_default=False,
        ),
    ] = None,
    since: options.Since = None,
    until: options.Until = None,
    limit: Annotated[int, typer.Option("--limit", "-l", min=1, help="At most this many.")] = 20,
    offset: Annotated[
        int, typer.Option("--offset", min=0, help="Skip this many (newest first).")
    ] = 0,
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """List workflows, newest first."""
    status_list = parse_statuses(statuses)
    since_dt = parse_time(since, "--since") if since is not None else None
    until_dt = parse_time(until, "--until") if until is not None else None
    common.setup(db)
    import wf

    rows = wf.list_workflows(
        status=status_list,
        name=name,
        queue=queue,
        since=since_dt,
        until=until_dt,
        limit=limit,
        offset=offset,
    )
    if json_out:
        output.dump_json([output.workflow_json(w) for w in rows])
    elif rows:
        output.print_workflows(rows)
    else:
        output.print_lines("no workflows", stderr=True)
    return errors.OK


@errors.command
def steps(
    workflow_id: options.WorkflowId,
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Show each recorded call of a workflow: position, name, kind (step,
    transaction, child, sleep, send, recv, event), output or error, duration."""
    common.setup(db)
    import wf

    wf.get_workflow(workflow_id)  # exit 4 if unknown
    rows = wf.list_steps(workflow_id)
    if json_out:
        output.dump_json([output.step_json(s) for s in rows])
    elif rows:
        output.print_steps(rows)
    else:
        output.print_lines(f"workflow {workflow_id} has no recorded steps yet", stderr=True)
    return errors.OK
