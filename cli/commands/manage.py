"""Commands that change a workflow without running it: cancel, send."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import bulk, common, errors, filters, options, output

# DELAYED: an ENQUEUED workflow whose delay has not passed (shown, not stored)
_CANCELLABLE = ("ENQUEUED", "DELAYED", "PENDING")


@errors.command
def cancel(
    workflow_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID", help="Workflow IDs to cancel (or filters: see below).", show_default=False
        ),
    ] = None,
    statuses: options.Statuses = None,
    name: options.Name = None,
    queue: options.QueueFilter = None,
    since: options.Since = None,
    until: options.Until = None,
    children: options.Children = False,
    parent: options.Parent = None,
    yes: options.Yes = False,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Cancel workflows (and their children). They stop at their next
    recorded call; `wf resume` continues them. An unknown ID cancels nothing
    and exits 4.

    With filters instead of IDs it cancels what `wf list` shows with them
    (every page; --status ENQUEUED and/or PENDING, default both; top-level
    workflows unless --children or --parent, a parent's children go with
    it): it counts them and asks first (--yes: do not ask; required without
    a terminal). Declining cancels nothing and exits 1.
    """
    out = common.output_format(fmt, json_out)
    chosen = filters.parse_filters(statuses, name, queue, since, until, children, parent)
    filters.check_ids_or_filters("cancel", workflow_ids, chosen)
    filters.check_statuses("cancelled", chosen, _CANCELLABLE)
    common.setup(db, create=False)
    import wf

    if chosen.given:
        ids = [w.workflow_id for w in filters.select(chosen, _CANCELLABLE)]
        if not ids:
            output.print_lines("no workflows match: nothing cancelled", stderr=True)
            output.emit(out, [], [], lambda: None)
            return errors.OK
        if not bulk.confirm("cancel", len(ids), yes):
            output.print_lines("nothing cancelled", stderr=True)
            return errors.FAILED
    else:
        ids = list(dict.fromkeys(workflow_ids or []))
        missing = _unknown(ids)
        if missing:
            for w in missing:
                output.print_lines(f"error: no workflow with ID {w!r}", stderr=True)
            return errors.NOT_FOUND
    reason = f"wf cancel by {bulk.who()}"
    for w in ids:
        wf.cancel(w, reason=reason)
    infos = [wf.get_workflow(w) for w in ids]
    output.emit(
        out,
        [output.workflow_json(i) for i in infos],
        [i.workflow_id for i in infos],
        lambda: _print_cancelled(infos, by_filter=chosen.given),
    )
    return errors.OK


def _unknown(ids: list[str]) -> list[str]:
    import wf

    missing: list[str] = []
    for w in ids:
        try:
            wf.get_workflow(w)
        except wf.WorkflowNotFoundError:
            missing.append(w)
    return missing


def _print_cancelled(infos: list[Any], *, by_filter: bool) -> None:
    cancelled = [i for i in infos if i.status == "CANCELLED"]
    ended = [i for i in infos if i.status != "CANCELLED"]
    if by_filter:
        line = f"cancelled {output.plural(len(cancelled))}"
        if ended:
            line += f" ({len(ended):,} had ended meanwhile)"
        output.print_lines(line)
        return
    for i in infos:
        if i.status == "CANCELLED":
            output.print_lines(f"cancelled {i.workflow_id}")
        else:
            output.print_lines(f"{i.workflow_id} already ended: {i.status}")


@errors.command
def send(
    workflow_id: options.WorkflowId,
    message: Annotated[
        str,
        typer.Argument(
            metavar="MESSAGE",
            help="Parsed as JSON when it parses, else taken as a string.",
            show_default=False,
        ),
    ],
    topic: Annotated[
        str | None,
        typer.Option("--topic", "-t", metavar="TOPIC", help="The topic (wf.recv(topic=...))."),
    ] = None,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key",
            metavar="KEY",
            help="Send at most once per key: repeating the command with the same key sends nothing new.",
        ),
    ] = None,
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Send a message to a workflow (it receives it with wf.recv).

    Warns (and still exits 0) when the workflow has ended: nothing will
    receive it. A repeated --idempotency-key sends nothing new and says so.
    """
    value = common.parse_arg(message)
    if idempotency_key is not None and not idempotency_key.strip():
        raise errors.BadInput("--idempotency-key must not be empty")
    common.setup(db, create=False)
    from wf._support import dumps, send_message

    dumps(value)  # SerializationError: exit 2
    import wf

    info = wf.get_workflow(workflow_id)  # exit 4 if unknown, nothing sent
    sent = send_message(workflow_id, value, topic=topic, idempotency_key=idempotency_key)
    if sent and info.status in wf.Status.ENDED:
        errors.warn(
            f"workflow {workflow_id} has ended ({info.status}): the message is stored, "
            "but nothing will receive it"
        )
    if json_out:
        output.dump_json(
            {
                "workflow_id": workflow_id,
                "topic": topic,
                "idempotency_key": idempotency_key,
                "message": output.to_jsonable(value),
                "sent": sent,
            }
        )
    elif sent:
        where = f" on topic {topic!r}" if topic else ""
        output.print_lines(f"sent to {workflow_id}{where}")
    else:
        output.print_lines(
            f"already sent (idempotency key {idempotency_key}): nothing new sent to {workflow_id}"
        )
    return errors.OK
