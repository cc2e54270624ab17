"""wf stream: the values a workflow wrote to a stream (wf.write_stream), in
order; --follow waits for more until the stream is closed or the workflow ends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import common, errors, options, output

if TYPE_CHECKING:
    from wf import StreamEntry

FORMATS = ("table", "json", "jsonl")

StreamOutput = Annotated[
    str | None,
    typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help="table (the default), json (one document; with --follow, one object per line) "
        "or jsonl (one object per line, each printed as it is written). --json is -o json.",
        rich_help_panel=options.OUT_PANEL,
        show_default=False,
        autocompletion=lambda incomplete: [f for f in FORMATS if f.startswith(incomplete)],
    ),
]


def entry_json(workflow_id: str, key: str, e: StreamEntry) -> dict[str, Any]:
    return {
        "workflow_id": workflow_id,
        "key": key,
        "index": e.index,
        "value": output.to_jsonable(e.value),
        "written_at": output.iso(e.written_at),
    }


@errors.command
def stream(
    workflow_id: options.WorkflowId,
    key: Annotated[str, typer.Argument(metavar="KEY", help="The stream's key.")],
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Keep printing values as they are written, until the stream is closed or the "
            "workflow ends (Ctrl-C stops following).",
        ),
    ] = False,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: StreamOutput = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Show the values workflow ID wrote to its stream KEY, oldest first:
    index, value (as JSON), when it was written. Without --follow, the values
    written so far (stderr says when the stream is still open).

    -o json: an array of {"workflow_id", "key", "index", "value", "written_at"};
    -o jsonl: one per line.
    """
    out = common.output_format(fmt, json_out)
    if out not in FORMATS:
        raise errors.BadInput(
            f"-o/--output: unknown format {out!r} (use one of {', '.join(FORMATS)})"
        )
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    reader = wf.read_stream(workflow_id, key, follow=follow)  # exit 4 if unknown
    if not follow:
        found = list(reader.entries())
        output.emit(
            out,
            [entry_json(workflow_id, key, e) for e in found],
            (),
            lambda: _print_table(found),
        )
        if out == "table":
            ended = not reader.closed and wf.get_workflow(workflow_id).status in wf.Status.ENDED
            _print_state(workflow_id, key, len(found), reader.closed, ended)
        return errors.OK

    # following, json is one object per line too: a document never ends
    lines = "jsonl" if out == "json" else out
    try:
        for e in reader.entries():
            if lines == "jsonl":
                output.emit("jsonl", [entry_json(workflow_id, key, e)], (), lambda: None)
            else:
                output.write_lines([_line(e)])
    except KeyboardInterrupt:
        return errors.OK
    finally:
        reader.close()
    return errors.OK


def _line(e: StreamEntry) -> str:
    return (
        f"{e.index}  {output.fmt_time(e.written_at)}  {output.one_line(output.fmt_value(e.value))}"
    )


def _print_state(workflow_id: str, key: str, n: int, closed: bool, ended: bool) -> None:
    if n == 0:
        what = f"stream {key!r} of workflow {workflow_id} has no values"
    else:
        what = f"stream {key!r} of workflow {workflow_id}: {n} value{'s' if n != 1 else ''}"
    if closed:
        what += ", closed"
    elif ended:
        what += " (not closed; the workflow has ended)"
    else:
        what += " so far (not closed; --follow waits for more)"
    output.print_lines(what, stderr=True)


def _print_table(found: list[StreamEntry]) -> None:
    if not found:
        return
    from rich.text import Text

    table = output.table(
        ("INDEX", {"justify": "right", "no_wrap": True}),
        ("VALUE", {"overflow": "fold", "min_width": 12}),
        ("WRITTEN", {"no_wrap": True}),
    )
    for e in found:
        table.add_row(
            str(e.index), Text(output.fmt_value(e.value, 2000)), output.fmt_time(e.written_at)
        )
    output.print_table(table)
