"""Waiting for workflows to end: the wait itself, the hints when nothing
live can run what is waited on (bug 5), and the outcome printed and turned
into the exit code."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from . import errors, output

if TYPE_CHECKING:
    from wf import WorkflowHandle, WorkflowInfo


# how long a wait goes on before checking whether anything live can run the work
HINT_AFTER = 2.0
HINT_EVERY = 5.0


def wait_for(
    handle: WorkflowHandle, timeout: float | None, *, spin: bool, verb: str, hint: bool = True
) -> tuple[WorkflowInfo, bool]:
    """Wait for the workflow's end (or ``timeout``); return its record and
    whether the wait timed out first. An error of the workflow itself is its
    outcome, not a failure of the command. After ~2 s, and then now and then,
    check whether the work waited on can run at all (``hint``); say once on
    stderr what to run when it cannot, and keep waiting."""
    import time

    import wf

    ended = handle.status()
    if ended.status in wf.Status.ENDED:
        return ended, False  # nothing to wait for: no listener, no executor needed
    deadline = None if timeout is None else time.monotonic() + timeout
    next_check = HINT_AFTER if hint else None
    timed_out = False
    failure: BaseException | None = None
    with output.spinner(f"{verb} {handle.workflow_id}", enabled=spin):
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            last_piece = next_check is None or (left is not None and left <= next_check)
            try:
                handle.result(timeout=left if last_piece else next_check)
                break
            except wf.AwaitTimeoutError:
                if last_piece:
                    timed_out = True
                    break
            except Exception as e:
                failure = e
                break
            note = stuck_note(handle.workflow_id)
            if note is None:
                next_check = HINT_EVERY
            else:
                next_check = None
                say_stuck(note)
    info = handle.status()
    if failure is not None and info.status not in wf.Status.ENDED:
        raise failure  # e.g. the database went away: a failure of the command
    return info, timed_out and info.status not in wf.Status.ENDED


def say_stuck(note: str) -> None:
    """One hint line on stderr (above a spinner, if one turns)."""
    if sys.stderr.isatty():
        from rich.text import Text

        output.console(stderr=True).print(Text("hint: " + note), soft_wrap=True)
    else:
        output.print_lines("hint: " + note, stderr=True)


# how far down the child tree the stuck check looks, and how many workflows at most
_TREE_DEPTH = 20
_TREE_MAX = 2000


def stuck_note(workflow_id: str) -> str | None:
    """What to run, when the unfinished work of ``workflow_id`` (itself or a
    descendant) cannot run: ENQUEUED on a queue no live executor serves, or
    PENDING under an executor that is not alive. None when all can run (or
    the check itself fails: it is only a hint)."""
    import wf

    try:
        executors = [e for e in wf.list_executors() if e.alive]
        waiting = unfinished_tree(workflow_id)
    except Exception:
        return None
    live_ids = {e.executor_id for e in executors}
    orphaned = [
        w
        for w in waiting
        if w.status == "PENDING" and w.executor_id is not None and w.executor_id not in live_ids
    ]
    unserved: dict[str, list[WorkflowInfo]] = {}
    for w in waiting:
        q = w.queue or "default"
        if w.status in ("ENQUEUED", "DELAYED") and not any(
            e.queues is None or q in e.queues for e in executors
        ):
            unserved.setdefault(q, []).append(w)
    notes = [_unserved_note(q, ws) for q, ws in unserved.items()]
    if orphaned:
        notes.append(_orphaned_note(orphaned))
    return "; ".join(notes) + " (still waiting)" if notes else None


def _them(ws: list[WorkflowInfo], what: str) -> tuple[str, str]:
    if len(ws) == 1:
        return f"workflow {ws[0].workflow_id} is {what}", "it"
    return f"{len(ws)} workflows are {what}", "them"


def _unserved_note(queue: str, ws: list[WorkflowInfo]) -> str:
    subject, obj = _them(ws, f"ENQUEUED on queue {queue!r}")
    return (
        f"{subject}, which no live executor serves: "
        f"run `wf worker {ws[0].module or 'MODULE'}` to run {obj}"
    )


def _orphaned_note(ws: list[WorkflowInfo]) -> str:
    owner = ws[0].executor_id
    subject, obj = _them(ws, f"PENDING under executor {owner}")
    return f"{subject}, which is not alive: run `wf recover` (or a `wf worker`) to finish {obj}"


def unfinished_tree(workflow_id: str) -> list[WorkflowInfo]:
    """The workflow and its descendants that have not ended."""
    import wf

    root = wf.get_workflow(workflow_id)
    if root.status in wf.Status.ENDED:
        return []
    found = [root]
    level = [root.workflow_id]
    seen = {root.workflow_id}
    for _ in range(_TREE_DEPTH):
        nxt: list[str] = []
        for parent in level:
            for w in wf.list_workflows(
                parent=parent, status=["ENQUEUED", "PENDING"], limit=_TREE_MAX
            ):
                if w.workflow_id not in seen and len(seen) < _TREE_MAX:
                    seen.add(w.workflow_id)
                    found.append(w)
                    nxt.append(w.workflow_id)
        if not nxt:
            break
        level = nxt
    return found


def outcome_code(info: WorkflowInfo, timed_out: bool = False) -> int:
    """0 SUCCESS, 1 ERROR, 3 CANCELLED / RETRIES_EXCEEDED / timed out."""
    if timed_out:
        return errors.STOPPED
    if info.status == "SUCCESS":
        return errors.OK
    if info.status in ("CANCELLED", "RETRIES_EXCEEDED"):
        return errors.STOPPED
    return errors.FAILED


def worst(codes: list[int]) -> int:
    """The exit code of several outcomes: any failure (1) first, then 3, else 0."""
    for code in (errors.FAILED, errors.STOPPED):
        if code in codes:
            return code
    return max(codes, default=errors.OK)


def print_outcomes(infos: list[WorkflowInfo], fmt: str, *, single: bool) -> None:
    """The end of a waiting command in ``fmt``: the workflow object(s) for
    json/jsonl (one object when ``single``), the IDs for ids, else the outcome."""

    output.emit(
        fmt,
        [output.workflow_json(i) for i in infos],
        [i.workflow_id for i in infos],
        lambda: output.print_each(infos, output.print_outcome),
        single=single,
    )


def wait_and_print(
    handle: WorkflowHandle, timeout: float | None, *, fmt: str, verb: str = "running"
) -> int:
    """Wait, print the outcome in ``fmt``, return the exit code."""
    info, timed_out = wait_for(handle, timeout, spin=fmt == "table", verb=verb)
    print_outcomes([info], fmt, single=True)
    if timed_out:
        assert timeout is not None
        sys.stderr.write(
            f"timed out after {timeout:g}s; workflow {info.workflow_id} is still {info.status}\n"
        )
    return outcome_code(info, timed_out)


def interrupted_note(workflow_id: str) -> str:
    return (
        f"interrupted: workflow {workflow_id} is left to recovery "
        f"(`wf recover`, a `wf worker`, or `wf await {workflow_id}`)"
    )
