"""Commands that run or wait for a workflow: start, await, resume, restart."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import bulk, common, errors, filters, options, output, waiting
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
    no_import: Annotated[
        bool,
        typer.Option(
            "--no-import",
            help="Enqueue by the recorded name MODULE:FUNCTION without importing the module "
            "(it need not exist here; a worker that has it runs it). With --detach or --queue.",
        ),
    ] = False,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Start a workflow, wait for it and print its ID and result.

    Imports the module, launches the executor, starts the workflow in this
    process and waits. Exit 0 SUCCESS, 1 ERROR, 3 CANCELLED or RETRIES_EXCEEDED.
    When what it waits on cannot run (enqueued on a queue no live worker
    serves), it says on stderr what to run, and keeps waiting.

    --no-import enqueues by name as wf.Client does: nothing is imported, the
    arguments are not checked against the function (only that wf can store
    them), and a name no live worker has registered stays ENQUEUED.
    """
    out = common.output_format(fmt, json_out)
    common.setup(db, app_db)
    if no_import:
        return _enqueue_by_name(
            target, args, kwargs, workflow_id, queue, timeout, detach=detach, db=db, out=out
        )
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
    options.check_queue(queue)
    if detach and queue is None:
        queue = "default"

    import wf

    if not detach:
        # a one-shot process: it serves no queue and adopts no other executor's
        # workflows (it would not stay up to finish them). Enqueueing for a
        # worker (--detach) needs no executor here, nor its LISTEN connection.
        wf.launch(queues=[], recovery=False)
    handle = wf.start(
        fn, *call_args, workflow_id=workflow_id, queue=queue, timeout=wf_timeout, **call_kwargs
    )
    if detach:
        waiting.print_outcomes([handle.status()], _detached(out), single=True)
        return errors.OK
    verb = f"waiting for a worker on queue {queue!r} to run" if queue else "running"
    try:
        return waiting.wait_and_print(handle, None, fmt=out, verb=verb)
    except KeyboardInterrupt:
        output.print_lines(waiting.interrupted_note(handle.workflow_id), stderr=True)
        return errors.INTERRUPTED


@errors.command
def await_(
    workflow_id: options.WorkflowId,
    timeout: options.WaitTimeout = None,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Wait for a workflow to end and print its result.

    Exit 0 SUCCESS, 1 ERROR, 3 CANCELLED, RETRIES_EXCEEDED or --timeout passed
    (the workflow goes on), 4 no such workflow. When nothing live can run it
    (its executor is dead, or no worker serves its queue) it says on stderr
    what to run, and keeps waiting.
    """
    out = common.output_format(fmt, json_out)
    wait_s = parse_duration(timeout) if timeout is not None else None
    common.setup(db, create=False)
    import wf

    handle = wf.retrieve(workflow_id)
    return waiting.wait_and_print(handle, wait_s, fmt=out, verb="waiting for")


def _recorded_name(target: str) -> str:
    """``--no-import``'s target is a recorded name, never a file path (the
    check wf.Client.enqueue makes)."""
    from wf import ConfigurationError
    from wf._support import check_recorded_name

    try:
        return check_recorded_name(target)
    except ConfigurationError as e:
        raise errors.BadInput(f"--no-import: {e}") from None


def _enqueue_by_name(
    target: str,
    args: list[str] | None,
    kwargs: str | None,
    workflow_id: str | None,
    queue: str | None,
    timeout: str | None,
    *,
    detach: bool,
    db: str | None,
    out: str,
) -> int:
    """``wf start --no-import``: enqueue through wf.Client, by name; wait
    for a worker unless --detach."""
    if not detach and queue is None:
        raise errors.BadInput(
            "--no-import runs nothing here: add --detach (print the ID and exit) or --queue Q "
            "(wait for a worker to run it)"
        )
    name = _recorded_name(target)
    call_args: list[Any] = [common.parse_arg(a) for a in args or []]
    call_kwargs = common.parse_kwargs(kwargs)
    clash = [k for k in call_kwargs if k in _CLIENT_RESERVED]
    if clash:
        raise errors.BadInput(
            f"--kwargs: keyword {clash[0]!r} cannot be passed through wf.Client.enqueue "
            "(it is reserved)"
        )
    wf_timeout = parse_duration(timeout) if timeout is not None else None
    if workflow_id is not None and not workflow_id.strip():
        raise errors.BadInput("--id must not be empty")
    options.check_queue(queue)

    import wf

    with wf.Client(db or None) as client:
        handle = client.enqueue(
            name,
            *call_args,
            queue=queue or "default",
            workflow_id=workflow_id,
            timeout=wf_timeout,
            **call_kwargs,
        )
        info = handle.status()
    if detach:
        waiting.print_outcomes([info], _detached(out), single=True)
        return errors.OK
    try:
        return waiting.wait_and_print(
            wf.retrieve(info.workflow_id),
            None,
            fmt=out,
            verb=f"waiting for a worker on queue {queue!r} to run",
        )
    except KeyboardInterrupt:
        output.print_lines(waiting.interrupted_note(info.workflow_id), stderr=True)
        return errors.INTERRUPTED


# wf.Client.enqueue's own keywords
_CLIENT_RESERVED = ("workflow_id", "queue", "timeout", "priority", "dedup_id", "delay")


def _detached(fmt: str) -> str:
    """--detach prints the ID alone, unless a machine format is asked for."""
    return "ids" if fmt == "table" else fmt


# what `wf resume` by filter acts on: SUCCESS has nothing left to do
_RESUMABLE = ("CANCELLED", "RETRIES_EXCEEDED", "ERROR", "PENDING", "ENQUEUED")
_RESUME_DEFAULT = ("CANCELLED", "RETRIES_EXCEEDED")


@errors.command
def resume(
    workflow_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID", help="Workflow IDs to resume (or filters: see below).", show_default=False
        ),
    ] = None,
    detach: options.Detach = False,
    modules: options.Modules = None,
    statuses: options.Statuses = None,
    name: options.Name = None,
    queue: options.QueueFilter = None,
    since: options.Since = None,
    until: options.Until = None,
    children: options.Children = False,
    parent: options.Parent = None,
    version: options.MoveVersion = None,
    yes: options.Yes = False,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Resume workflows from their last finished step, here, and wait.

    Works on CANCELLED, RETRIES_EXCEEDED, ERROR and stuck workflows. The
    module each workflow records is imported (-m MODULE imports others first,
    e.g. a file outside this directory). -o json: the workflow object (an
    array for several).

    With filters instead of IDs it resumes what `wf list` shows with them
    (every page; --status default CANCELLED and RETRIES_EXCEEDED; top-level
    workflows unless --children or --parent): it counts them and asks first
    (--yes: do not ask; required without a terminal). Declining resumes
    nothing and exits 1. --detach leaves them to a worker.
    """
    out = common.output_format(fmt, json_out)
    version = options.check_version(version)
    chosen = filters.parse_filters(statuses, name, queue, since, until, children, parent)
    filters.check_ids_or_filters("resume", workflow_ids, chosen)
    filters.check_statuses("resumed", chosen, _RESUMABLE)
    common.setup(db, app_db)
    common.import_modules(modules)
    import wf

    if chosen.given:
        infos = filters.select(chosen, _RESUME_DEFAULT)
        if not infos:
            output.print_lines("no workflows match: nothing resumed", stderr=True)
            output.emit(out, [], [], lambda: None)
            return errors.OK
    else:
        # an unknown ID: exit 4, nothing changed
        infos = [wf.get_workflow(w) for w in dict.fromkeys(workflow_ids or [])]
    if not detach:
        for info in infos:
            common.import_recorded(info, given=bool(modules))
    if chosen.given and not bulk.confirm("resume", len(infos), yes):
        output.print_lines("nothing resumed", stderr=True)
        return errors.FAILED
    if not detach:  # leaving them to a worker needs no executor here
        wf.launch(queues=[], recovery=False)
    handles = [wf.resume(info.workflow_id, detach=detach, app_version=version) for info in infos]
    single = len(infos) == 1 and not chosen.given
    if detach:
        if chosen.given and out == "table":
            output.print_lines(f"resumed {output.plural(len(handles))} for a worker:", stderr=True)
        waiting.print_outcomes([h.status() for h in handles], _detached(out), single=single)
        return errors.OK
    if chosen.given and out == "table":
        output.print_lines(f"resuming {output.plural(len(handles))}…", stderr=True)
    results: list[Any] = []
    codes: list[int] = []
    current = handles[0].workflow_id
    try:
        for h in handles:
            current = h.workflow_id
            info, timed_out = waiting.wait_for(h, None, spin=out == "table", verb="resuming")
            results.append(info)
            codes.append(waiting.outcome_code(info, timed_out))
    except KeyboardInterrupt:
        output.print_lines(waiting.interrupted_note(current), stderr=True)
        return errors.INTERRUPTED
    if chosen.given and out == "table":
        output.print_workflows(results)
    else:
        waiting.print_outcomes(results, out, single=single)
    return waiting.worst(codes)


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
    modules: options.Modules = None,
    version: options.MoveVersion = None,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Run a recorded workflow again, with the same inputs, as a new workflow.

    Prints the new ID, runs it here and waits (or leaves it to a worker with
    --detach). The module the workflow records is imported (-m MODULE
    imports others first, e.g. a file outside this directory).
    """
    out = common.output_format(fmt, json_out)
    version = options.check_version(version)
    common.setup(db, app_db)
    common.import_modules(modules)
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
        common.import_recorded(info, given=bool(modules))
    if not detach:  # leaving it to a worker needs no executor here
        wf.launch(queues=[], recovery=False)
    handle = wf.restart(
        workflow_id,
        from_step=from_step,
        workflow_id=new_id,
        detach=detach,
        app_version=version,
    )
    if detach:
        waiting.print_outcomes([handle.status()], _detached(out), single=True)
        return errors.OK
    if out == "table":
        output.print_lines(f"restarted {workflow_id} as {handle.workflow_id}", stderr=True)
    try:
        return waiting.wait_and_print(handle, None, fmt=out, verb="running")
    except KeyboardInterrupt:
        output.print_lines(waiting.interrupted_note(handle.workflow_id), stderr=True)
        return errors.INTERRUPTED
