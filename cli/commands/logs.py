"""wf logs: the durable workflow logs, oldest first, optionally followed."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from .. import common, errors, options, output
from ..timeparse import parse_time


@errors.command
def logs(
    workflow_id: Annotated[
        str | None,
        typer.Argument(metavar="ID", help="Only this workflow's logs.", show_default=False),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing new lines as they are recorded (until the workflow ends when an ID is "
            "given, else until Ctrl-C). With --json or -o jsonl: one JSON object per line.",
        ),
    ] = False,
    level: Annotated[
        str | None,
        typer.Option(
            "--level",
            metavar="LEVEL",
            help="Minimum level: DEBUG, INFO, WARNING, ERROR, CRITICAL.",
            show_default=False,
        ),
    ] = None,
    since: options.Since = None,
    interval: Annotated[
        float,
        typer.Option(
            "--interval",
            min=0.05,
            envvar="WF_LOGS_INTERVAL",
            show_envvar=True,
            help="With --follow: seconds between polls.",
        ),
    ] = 0.5,
    db: options.Db = None,
    json_out: options.Json = False,
    out: options.LogsOutput = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Show the recorded log lines of workflows (wf.logger), oldest first.
    -o ids prints the IDs of the workflows the lines are of, each once."""
    fmt = common.output_format(out, json_out)
    output.set_time_format(options.time_format(time_format))
    min_level: str | None = None
    if level is not None:
        from wf._support import LOG_LEVELS

        min_level = level.strip().upper()
        if min_level == "WARN":
            min_level = "WARNING"
        if min_level not in LOG_LEVELS:
            raise errors.BadInput(
                f"--level: unknown level {level!r} (use one of {', '.join(LOG_LEVELS)})"
            )
    since_dt = parse_time(since, "--since") if since is not None else None
    common.setup(db, create=False)
    import wf

    if workflow_id is not None:
        wf.get_workflow(workflow_id)  # exit 4 if unknown
    records = wf.list_logs(workflow_id=workflow_id, level=min_level, since=since_dt)
    with_id = workflow_id is None
    seen: set[str] = set()

    def new_ids(batch: list[wf.LogRecord]) -> list[str]:
        fresh = []
        for r in batch:
            if r.workflow_id not in seen:
                seen.add(r.workflow_id)
                fresh.append(r.workflow_id)
        return fresh

    if not follow:
        output.emit(
            fmt,
            [output.log_json(r) for r in records],
            new_ids(records),
            lambda: output.print_logs(records, with_id=with_id),
        )
        return errors.OK

    # following, json is one object per line too: a document never ends
    stream = "jsonl" if fmt == "json" else fmt

    def emit(batch: list[wf.LogRecord]) -> None:
        output.emit(
            stream,
            [output.log_json(r) for r in batch],
            new_ids(batch),
            lambda: output.print_logs(batch, with_id=with_id),
        )

    emit(records)
    cursor = max((r.seq for r in records), default=None)
    try:
        while True:
            ended = (
                workflow_id is not None and wf.get_workflow(workflow_id).status in wf.Status.ENDED
            )
            batch = wf.list_logs(
                workflow_id=workflow_id, level=min_level, since=since_dt, after=cursor
            )
            emit(batch)
            if batch:
                cursor = max(r.seq for r in batch)
            if ended:  # the last lines were read after the end was seen
                return errors.OK
            time.sleep(interval)
    except KeyboardInterrupt:
        return errors.OK
