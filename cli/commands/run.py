"""Commands that run or wait for a workflow: start, await, resume, restart."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import common, errors, options, output
from ..timeparse import parse_duration

_RESERVED = ("workflow_id", "queue", "timeout")


@errors.command
def start(
    target: Annotated[
        str,
        typer.Argument(
            metavar="MODULE:FUNCTION",
            help="The workflow: pkg.module:function or path/to/file.py:function.",
            show_default=False,
        ),
    ],
    args: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ARG",
            help="Positional arguments; each is parsed as JSON when it parses, else taken as a string. "
            "Put -- before an argument that starts with '-'.",
            show_default=False,
        ),
    ] = None,
    kwargs: Annotated[
        str | None,
        typer.Option(
            "--kwargs", metavar="JSON", help="Keyword arguments as a JSON object: '{\"n\": 3}'."
        ),
    ] = None,
    workflow_id: Annotated[
        str | None,
        typer.Option(
            "--id",
            metavar="ID",
            help="The workflow ID (the idempotency key): an existing ID runs nothing new and "
            "prints the recorded outcome. Default: a new UUID.",
        ),
    ] = None,
    queue: Annotated[
        str | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            help="Enqueue it on this queue for a `wf worker` (and wait, unless --detach).",
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Cancel the workflow (and its children) this long after it starts (seconds, or 10m, 2h).",
        ),
    ] = None,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach",
            help="Enqueue it on --queue (default: 'default') for a `wf worker`, print its ID and exit.",
        ),
    ] = False,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Start a workflow, wait for it and print its ID and result.

    Imports the module, launches the executor, starts the workflow in this
    process and waits. Exit 0 SUCCESS, 1 ERROR, 3 CANCELLED or RETRIES_EXCEEDED.
    """
    common.setup(db, app_db)
    # Everything that can be wrong with the input is checked before the
    # database is touched.
    fn = common.load_workflow(target)
    call_args: list[Any] = [common.parse_arg(a) for a in args or []]
    call_kwargs = common.parse_kwargs(kwargs)
    clash = [k for k in call_kwargs if k in _RESERVED]
    if clash:
        raise errors.BadInput(
            f"--kwargs: keyword {clash[0]!r} cannot be passed through wf.start (it is reserved)"
        )
    common.check_call(fn, target, call_args, call_kwargs)
    wf_timeout = parse_duration(timeout) if timeout is not None else None
    if workflow_id is not None and not workflow_id.strip():
        raise errors.BadInput("--id must not be empty")
    if detach and queue is None:
        queue = "default"

    import wf

    # a one-shot process: it serves no queue and adopts no other executor's
    # workflows (it would not stay up to finish them)
    wf.launch(queues=[], recovery=False)
    handle = wf.start(
        fn, *call_args, workflow_id=workflow_id, queue=queue, timeout=wf_timeout, **call_kwargs
    )
    if detach:
        if json_out:
            output.dump_json(output.workflow_json(handle.status()))
        else:
            output.print_lines(handle.workflow_id)
        return errors.OK
    verb = f"waiting for a worker on queue {queue!r} to run" if queue else "running"
    try:
        return common.wait_and_print(handle, None, as_json=json_out, verb=verb)
    except KeyboardInterrupt:
        output.print_lines(common.interrupted_note(handle.workflow_id), stderr=True)
        return errors.INTERRUPTED


@errors.command
def await_(
    workflow_id: options.WorkflowId,
    timeout: options.WaitTimeout = None,
    db: options.Db = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Wait for a workflow to end and print its result.

    Exit 0 SUCCESS, 1 ERROR, 3 CANCELLED, RETRIES_EXCEEDED or --timeout passed
    (the workflow goes on), 4 no such workflow.
    """
    common.setup(db)
    wait_s = parse_duration(timeout) if timeout is not None else None
    import wf

    handle = wf.retrieve(workflow_id)
    return common.wait_and_print(handle, wait_s, as_json=json_out, verb="waiting for")


def _print_outcomes(infos: list[Any], codes: list[int], as_json: bool, single: bool) -> int:
    if as_json:
        docs = [output.workflow_json(i) for i in infos]
        output.dump_json(docs[0] if single else docs)
    else:
        for n, info in enumerate(infos):
            if n:
                output.print_lines("")
            output.print_outcome(info)
    return common.worst(codes)


@errors.command
def resume(
    workflow_ids: Annotated[
        list[str], typer.Argument(metavar="ID", help="Workflow IDs to resume.", show_default=False)
    ],
    detach: options.Detach = False,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Resume workflows from their last finished step, here, and wait.

    Works on CANCELLED, RETRIES_EXCEEDED and stuck workflows. The module named
    in each recorded workflow is imported. With --json: the workflow object
    (an array of them for several IDs).
    """
    common.setup(db, app_db)
    import wf

    infos = [
        wf.get_workflow(w) for w in dict.fromkeys(workflow_ids)
    ]  # unknown ID: exit 4, nothing changed
    if not detach:
        for info in infos:
            common.import_recorded(info)
    wf.launch(queues=[], recovery=False)
    handles = [wf.resume(info.workflow_id, detach=detach) for info in infos]
    single = len(workflow_ids) == 1
    if detach:
        if json_out:
            docs = [output.workflow_json(h.status()) for h in handles]
            output.dump_json(docs[0] if single else docs)
        else:
            output.print_lines(*(h.workflow_id for h in handles))
        return errors.OK
    results: list[Any] = []
    codes: list[int] = []
    current = handles[0].workflow_id
    try:
        for h in handles:
            current = h.workflow_id
            info, timed_out = common.wait_for(h, None, spin=not json_out, verb="resuming")
            results.append(info)
            codes.append(common.outcome_code(info, timed_out))
    except KeyboardInterrupt:
        output.print_lines(common.interrupted_note(current), stderr=True)
        return errors.INTERRUPTED
    return _print_outcomes(results, codes, json_out, single)


@errors.command
def restart(
    workflow_id: options.WorkflowId,
    from_step: Annotated[
        int | None,
        typer.Option(
            "--from-step",
            min=1,
            metavar="N",
            help="Reuse the recorded results of the steps before position N (as `wf steps` shows) "
            "and run from N on. Default: run everything again.",
        ),
    ] = None,
    new_id: Annotated[
        str | None,
        typer.Option("--id", metavar="NEW_ID", help="The new workflow's ID (default: a new UUID)."),
    ] = None,
    detach: options.Detach = False,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Run a recorded workflow again, with the same inputs, as a new workflow.

    Prints the new ID, runs it here and waits (or leaves it to a worker with
    --detach).
    """
    common.setup(db, app_db)
    import wf

    info = wf.get_workflow(workflow_id)
    if from_step is not None:
        n = len(wf.list_steps(workflow_id))
        if from_step > n + 1:
            raise errors.BadInput(
                f"--from-step {from_step}: workflow {workflow_id} has {n} recorded step(s); use 1..{n + 1}"
            )
    if new_id is not None and not new_id.strip():
        raise errors.BadInput("--id must not be empty")
    if not detach:
        common.import_recorded(info)
    wf.launch(queues=[], recovery=False)
    handle = wf.restart(workflow_id, from_step=from_step, workflow_id=new_id, detach=detach)
    if detach:
        if json_out:
            output.dump_json(output.workflow_json(handle.status()))
        else:
            output.print_lines(handle.workflow_id)
        return errors.OK
    if not json_out:
        output.print_lines(f"restarted {workflow_id} as {handle.workflow_id}", stderr=True)
    try:
        return common.wait_and_print(handle, None, as_json=json_out, verb="running")
    except KeyboardInterrupt:
        output.print_lines(common.interrupted_note(handle.workflow_id), stderr=True)
        return errors.INTERRUPTED
