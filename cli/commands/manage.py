"""Commands that change a workflow without running it: cancel, send."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import common, errors, options, output


@errors.command
def cancel(
    workflow_ids: Annotated[
        list[str], typer.Argument(metavar="ID", help="Workflow IDs to cancel.", show_default=False)
    ],
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Cancel workflows (and their children). They stop at their next
    recorded call; `wf resume` continues them. An unknown ID cancels nothing
    and exits 4."""
    common.setup(db)
    import wf

    ids = list(dict.fromkeys(workflow_ids))
    missing: list[str] = []
    for w in ids:
        try:
            wf.get_workflow(w)
        except wf.WorkflowNotFoundError:
            missing.append(w)
    if missing:
        for w in missing:
            output.print_lines(f"error: no workflow with ID {w!r}", stderr=True)
        return errors.NOT_FOUND
    for w in ids:
        wf.cancel(w)
    infos = [wf.get_workflow(w) for w in ids]
    if json_out:
        output.dump_json([output.workflow_json(i) for i in infos])
    else:
        for i in infos:
            if i.status == "CANCELLED":
                output.print_lines(f"cancelled {i.workflow_id}")
            else:
                output.print_lines(f"{i.workflow_id} already ended: {i.status}")
    return errors.OK


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
    """Send a message to a workflow (it receives it with wf.recv)."""
    value = common.parse_arg(message)
    common.setup(db)
    from wf._support import dumps

    dumps(value)  # SerializationError: exit 2
    import wf

    wf.get_workflow(workflow_id)  # exit 4 if unknown, nothing sent
    wf.send(workflow_id, value, topic=topic, idempotency_key=idempotency_key)
    if json_out:
        output.dump_json(
            {
                "workflow_id": workflow_id,
                "topic": topic,
                "idempotency_key": idempotency_key,
                "message": output.to_jsonable(value),
            }
        )
    else:
        where = f" on topic {topic!r}" if topic else ""
        output.print_lines(f"sent to {workflow_id}{where}")
    return errors.OK
