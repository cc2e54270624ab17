"""wf replay: check recorded workflows against the code here, changing nothing."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import common, errors, filters, options, output

# what `wf replay --status/--name/...` checks when no --status is given: the
# workflows a deploy would hand to the new code
_REPLAY_DEFAULT = ("PENDING",)
# its filter options (children are always checked: no --parent/--children)
_FILTERS = "--status/--name/--queue/--since/--until/--version"


@errors.command
def replay(
    workflow_ids: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ID", help="Workflow IDs to check (or filters: see below).", show_default=False
        ),
    ] = None,
    modules: options.Modules = None,
    statuses: options.Statuses = None,
    name: options.Name = None,
    queue: options.QueueFilter = None,
    since: options.Since = None,
    until: options.Until = None,
    version: options.VersionFilter = None,
    db: options.Db = None,
    json_out: options.Json = False,
    fmt: options.Output = None,
    debug: options.Debug = False,
) -> int:
    """Run the code here against recorded workflows without side effects:
    every recorded call returns its recorded value, no step runs, nothing is
    written. Reports each workflow's first divergence (a call, the outcome,
    or recorded calls the code no longer makes), e.g. before a deploy.

    With filters instead of IDs it checks what `wf list` shows with them
    (--status default PENDING: the in-flight workflows). Exit 0 when every
    workflow agrees with its record, 1 when one diverges.
    """
    out = common.output_format(fmt, json_out)
    chosen = filters.parse_filters(statuses, name, queue, since, until)
    chosen.kwargs["top_level"] = False  # children are checked too
    if version is not None:
        chosen.kwargs["app_version"] = options.check_version(version)
        chosen.given = True
    filters.check_ids_or_filters("replay", workflow_ids, chosen, _FILTERS)
    common.setup(db, create=False)
    common.import_modules(modules)
    import wf

    if chosen.given:
        infos = filters.select(chosen, _REPLAY_DEFAULT)
    else:
        infos = [wf.get_workflow(w) for w in dict.fromkeys(workflow_ids or [])]
    for info in infos:
        common.import_recorded(info, given=bool(modules))
    docs: list[dict[str, Any]] = []
    for info in infos:
        try:
            found = wf.replay(info.workflow_id)
        except wf.NonDeterminismError as e:
            docs.append(_doc(info, ok=False, divergence=str(e)))
        else:
            docs.append(_doc(info, ok=True, calls=found.calls, complete=found.complete))
    if not docs and out == "table":
        output.print_lines("no workflows match: nothing to check", stderr=True)
    output.emit(out, docs, [d["workflow_id"] for d in docs], lambda: _print(docs))
    return errors.OK if all(d["ok"] for d in docs) else errors.FAILED


def _doc(
    info: Any,
    *,
    ok: bool,
    calls: int | None = None,
    complete: bool | None = None,
    divergence: str | None = None,
) -> dict[str, Any]:
    return {
        "workflow_id": info.workflow_id,
        "name": info.name,
        "status": info.status,
        "app_version": info.app_version,
        "ok": ok,
        "calls": calls,
        "complete": complete,
        "divergence": divergence,
    }


def _print(docs: list[dict[str, Any]]) -> None:
    lines = []
    for d in docs:
        if d["ok"]:
            how = "to its end" if d["complete"] else "as far as it has run"
            lines.append(f"{d['workflow_id']}  ok: {d['calls']} recorded calls replay {how}")
        else:
            lines.append(f"{d['workflow_id']}  DIVERGES: {d['divergence']}")
    output.print_lines(*lines)
