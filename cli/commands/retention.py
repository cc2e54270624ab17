"""Retention and moving workflows: delete, gc, export, import (wf.delete,
wf.gc, wf.export_workflows, wf.import_workflows; the CLI writes no SQL).

Exit codes: an unknown ID is 4 and a workflow still PENDING or ENQUEUED
without --force is 2 (the request as given cannot be done: add --force, or
cancel it first); either way nothing is deleted. An import refuses (2,
nothing written) an ID the target has, a workflow not ended, a line that
is not an export record."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from .. import common, errors, options, output, timeparse

_ENDED = ("SUCCESS", "ERROR", "CANCELLED", "RETRIES_EXCEEDED")


def _refusal(exc: BaseException, debug: bool) -> int:
    """A refusal of the API (a workflow in flight, a bad export record): one
    line, exit 2 (bad input)."""
    errors.report(exc, debug)
    return errors.USAGE


@errors.command
def delete(
    workflow_ids: Annotated[
        list[str],
        typer.Argument(metavar="ID...", help="Workflow IDs to delete.", show_default=False),
    ],
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Cancel a workflow still PENDING or ENQUEUED (and its children) first, then delete it.",
        ),
    ] = False,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Delete workflows for good: each with its steps, logs, events,
    messages and child workflows (recursively), all in one transaction. A
    new workflow may then reuse the ID: it starts fresh.

    An unknown ID exits 4 and a workflow still PENDING or ENQUEUED exits 2
    (unless --force); either way nothing is deleted. -o json prints
    {"deleted": [IDs], "count": N}; -o ids the deleted IDs, children too.
    """
    out = common.output_format(fmt, json_out)
    common.setup(db, create=False)
    import wf

    ids = list(dict.fromkeys(workflow_ids))
    missing = []
    for w in ids:
        try:
            wf.get_workflow(w)
        except wf.WorkflowNotFoundError:
            missing.append(w)
    if missing:
        for w in missing:
            output.print_lines(f"error: no workflow with ID {w!r}: nothing deleted", stderr=True)
        return errors.NOT_FOUND
    try:
        deleted = wf.delete(ids, force=force)
    except wf.WorkflowActiveError as e:
        if e.summary is None:
            return _refusal(e, debug)
        # the runtime's hint names the API's force=True too: say the CLI's own
        return _refusal(
            wf.WorkflowActiveError(f"{e.summary}; cancel it first, or add --force"), debug
        )
    roots = set(ids)

    def human() -> None:
        children = [w for w in deleted if w not in roots]
        for w in ids:
            output.print_lines(f"deleted {w}")
        if children:
            output.print_lines(f"and {output.plural(len(children), 'child workflow')}")

    if out == "json":
        output.dump_json({"deleted": deleted, "count": len(deleted)})
    elif out == "jsonl":
        output.emit(out, [{"workflow_id": w} for w in deleted], deleted, human)
    else:
        output.emit(out, [], deleted, human)
    return errors.OK


@errors.command
def gc(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Delete ended workflows whose last change is older than this (e.g. 30d, 12h, 90m, "
            "or seconds; 0: every ended workflow, whatever its age).",
            show_default=False,
        ),
    ],
    statuses: Annotated[
        list[str] | None,
        typer.Option(
            "--status",
            "-s",
            metavar="STATUS",
            help=f"Only workflows in this status (repeatable): {', '.join(_ENDED)}.",
            show_default=False,
            autocompletion=lambda incomplete: [
                s for s in _ENDED if s.startswith(incomplete.upper())
            ],
        ),
    ] = None,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            metavar="N",
            min=0,
            help="Keep the newest N top-level workflows (of those statuses) whatever their age.",
            show_default=False,
        ),
    ] = None,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Delete ended workflows (SUCCESS, ERROR, CANCELLED, RETRIES_EXCEEDED;
    never PENDING or ENQUEUED) older than AGE, with their children, in
    batches of short transactions that never block running workflows.
    Top-level workflows are judged: a child goes with its parent.

    A worker does this by itself when `retention` is set (WF_RETENTION, or
    retention = "30d" under [tool.wf]). -o json prints {"deleted": N}.
    """
    out = common.document_format(fmt, json_out, "wf gc prints a count")
    seconds = timeparse.parse_duration(older_than, "--older-than", allow_zero=True)
    chosen = []
    for s in statuses or []:
        up = s.strip().upper()
        if up not in _ENDED:
            raise errors.BadInput(
                f"--status {s!r}: gc deletes only ended workflows ({', '.join(_ENDED)})"
            )
        chosen.append(up)
    common.setup(db, create=False)
    import wf

    n = wf.gc(older_than=seconds, statuses=chosen or None, keep=keep)
    if out == "json":
        output.dump_json({"deleted": n})
    else:
        output.print_lines(f"deleted {output.plural(n)}")
    return errors.OK


@errors.command
def export(
    workflow_ids: Annotated[
        list[str],
        typer.Argument(metavar="ID...", help="Workflow IDs to export.", show_default=False),
    ],
    db: options.Db = None,
    debug: options.Debug = False,
) -> int:
    """Write workflows as JSON lines on stdout (`wf export ID... > F.jsonl`):
    one line per workflow with its steps, events, logs, waiting messages and
    child workflows, for `wf import` into another database (SQLite to
    Postgres, say). Only ended workflows move; to move one in flight, cancel
    it, export and import it, then `wf resume` it there. An unknown ID exits
    4, one not ended exits 2; nothing is written then.
    """
    common.setup(db, create=False)
    import wf

    try:
        records = wf.export_workflows(list(dict.fromkeys(workflow_ids)))
    except wf.WorkflowActiveError as e:
        return _refusal(e, debug)
    sys.stdout.write(
        "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)
    )
    sys.stdout.flush()
    return errors.OK


@errors.command
def import_(
    path: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="JSON lines `wf export` wrote ('-': stdin).", show_default=False
        ),
    ],
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.DocOutput = None,
    debug: options.Debug = False,
) -> int:
    """Insert the workflows `wf export` wrote into this database (--db), all
    in one transaction. Refuses, writing nothing (exit 2, one line naming
    it): an ID this database has already, a workflow not ended, a line that
    is not an export record. -o json prints {"imported": [IDs], "count": N}.
    """
    out = common.document_format(fmt, json_out, "wf import prints what it imported")
    if path == "-":
        text = sys.stdin.read()
        where = "stdin"
    else:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise errors.BadInput(f"cannot read {path}: {e}") from None
        where = path
    records = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except ValueError as e:
            raise errors.BadInput(f"{where} line {n} is not JSON ({e}): nothing imported") from None
    common.setup(db)
    import wf

    try:
        imported = wf.import_workflows(records)
    except (wf.InvalidExportError, wf.WorkflowActiveError) as e:
        return _refusal(errors.BadInput(f"{where}: {e}"), debug)
    if out == "json":
        output.dump_json({"imported": imported, "count": len(imported)})
    else:
        output.print_lines(f"imported {output.plural(len(imported))}")
    return errors.OK
