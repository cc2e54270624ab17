"""wf recover: finish the workflows left by dead executors, here."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import common, errors, options, output, waiting


@errors.command
def recover(
    modules: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="MODULE",
            help="Import these modules (pkg.module or path/to/file.py) for the workflows' code. "
            "Default: the modules named by the recorded workflows.",
            show_default=False,
        ),
    ] = None,
    executor: Annotated[
        str | None,
        typer.Option(
            "--executor",
            metavar="EXECUTOR_ID",
            help="Recover this executor's workflows, even if it looks alive.",
            show_default=False,
        ),
    ] = None,
    all_: Annotated[
        bool,
        typer.Option(
            "--all", help="Recover the workflows of live executors too (they will stop theirs)."
        ),
    ] = False,
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Finish every workflow left by a dead executor, in this process, and
    print what was recovered.

    Exit 0 when all recovered workflows succeed (or there was nothing to do),
    1 if one ended in ERROR or could not be recovered (e.g. its module does not
    import), 3 if one was CANCELLED or RETRIES_EXCEEDED.
    """
    out = common.output_format(fmt, json_out)
    if executor is not None and all_:
        raise errors.BadInput("--executor and --all exclude each other")
    common.setup(db, app_db)
    from wf._support import import_module

    for m in modules or []:
        import_module(m)  # unknown module: exit 2 before anything is touched

    import wf

    # wf.recover launches this process's executor itself, without the
    # launch-time recovery pass that would race it for the same workflows
    result = wf.recover(
        modules=list(modules) if modules else None, executor_id=executor, include_live=all_
    )
    handles: list[Any] = list(result.handles)

    given = list(modules or [])
    named = [m for m in result.imported_modules if m not in given]
    if given and out == "table":
        output.print_lines("imported: " + ", ".join(given), stderr=True)
    if named:
        output.print_lines(
            "imported (named by recorded workflows): " + ", ".join(named), stderr=True
        )
    for wid, reason in result.skipped:
        errors.warn(f"not recovered: {wid}: {reason}")
    if not handles:
        output.emit(
            out,
            [],
            [],
            lambda: output.print_lines(
                "nothing to recover" if not result.skipped else "nothing recovered"
            ),
        )
        return errors.FAILED if result.skipped else errors.OK

    infos: list[Any] = []
    codes: list[int] = []
    if out == "table":
        output.print_lines(f"recovering {len(handles)} workflow(s)…", stderr=True)
    for h in handles:
        info, _ = waiting.wait_for(h, None, spin=out == "table", verb="recovering", hint=False)
        infos.append(info)
        codes.append(waiting.outcome_code(info))
    if result.skipped:
        codes.append(errors.FAILED)
    output.emit(
        out,
        [output.workflow_json(i) for i in infos],
        [i.workflow_id for i in infos],
        lambda: output.print_workflows(infos),
    )
    return waiting.worst(codes)
