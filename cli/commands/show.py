"""wf show: one workflow described in full (its record, steps, children and
last log lines), once or live with --follow."""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Annotated

import typer

from .. import common, errors, options, output, waiting

if TYPE_CHECKING:
    from wf import LogRecord

    from ..render import ShowView

# how often --follow redraws when nothing wakes it earlier (the workflow's end does)
REDRAW_EVERY = 0.5


class _Logs:
    """The last N log lines of a workflow, read incrementally (by cursor)."""

    def __init__(self, workflow_id: str, keep: int) -> None:
        self.workflow_id = workflow_id
        self.lines: deque[LogRecord] = deque(maxlen=keep)
        self.total = 0
        self.after: int | None = None

    def read(self) -> None:
        import wf

        if self.lines.maxlen == 0:
            return
        new = wf.list_logs(self.workflow_id, after=self.after)
        if new:
            self.lines.extend(new)
            self.total += len(new)
            self.after = new[-1].seq


def gather(workflow_id: str, logs: _Logs) -> ShowView:
    import wf

    from .. import render
    from .tree import build_tree

    tree = build_tree(workflow_id)
    steps = wf.list_steps(workflow_id)
    logs.read()
    return render.ShowView(tree.info, steps, tree, list(logs.lines), logs.total)


@errors.command
def show(
    workflow_id: options.WorkflowId,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            help="Redraw live until the workflow ends, then exit with its outcome "
            "(0 SUCCESS, 1 ERROR, 3 CANCELLED or RETRIES_EXCEEDED). Piped: print the final view once.",
        ),
    ] = False,
    log_lines: Annotated[
        int,
        typer.Option("--logs", min=0, metavar="N", help="Show the last N log lines (0: none)."),
    ] = 10,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    time_format: options.TimeFormat = None,
    debug: options.Debug = False,
) -> int:
    """Describe a workflow: status, inputs, output or error, times (queued
    and running), executor, recoveries, why it was cancelled, lineage, the
    call running now, each step with its attempts and error, the child tree
    and the last log lines.

    -o json: the workflow object with "running_call", "steps", "children"
    (nested) and "logs"; -o ids: its ID. Exit 0 whatever its status (with --follow: its
    outcome), 4 if unknown.
    """
    out = common.output_format(fmt, json_out)
    output.set_time_format(options.time_format(time_format))
    common.setup(db, create=False)
    import wf

    logs = _Logs(workflow_id, log_lines)
    if follow and out == "table" and output.is_terminal():
        from .. import render

        view = _follow_live(workflow_id, logs)
        # the final frame as it was drawn live (`wf show ID` prints every step)
        output.console().print(render.fitted(view, output.console()))
        return waiting.outcome_code(view.info)
    if follow:
        waiting.wait_for(wf.retrieve(workflow_id), None, spin=False, verb="", hint=False)
    view = gather(workflow_id, logs)
    _print(view, out)
    return waiting.outcome_code(view.info) if follow else errors.OK


def _print(view: ShowView, fmt: str) -> None:
    from .. import render

    output.emit(
        fmt,
        [render.show_json(view)],
        [view.info.workflow_id],
        lambda: render.print_show(view),
        single=True,
    )


def _follow_live(workflow_id: str, logs: _Logs) -> ShowView:
    """Redraw until the workflow ends (the live region is cleared; the
    caller prints the final frame)."""
    import time

    import wf
    from rich.live import Live

    from .. import render

    handle = wf.retrieve(workflow_id)
    view = gather(workflow_id, logs)
    console = output.console()
    with Live(
        render.fitted(view, console), console=console, auto_refresh=False, transient=True
    ) as live:
        while view.info.status not in wf.Status.ENDED:
            try:
                handle.result(timeout=REDRAW_EVERY)  # returns at once when it ends
            except wf.AwaitTimeoutError:
                pass
            except Exception:  # its own error: it ended (gather says so, or fails)
                time.sleep(0.05)
            view = gather(workflow_id, logs)
            live.update(render.fitted(view, console), refresh=True)
    return view
