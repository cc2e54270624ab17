"""Helpers the commands share: configuration, argument parsing, loading the
user's workflow, and waiting for a workflow's outcome."""

from __future__ import annotations

import inspect
import json
import sys
from typing import TYPE_CHECKING, Any

from . import errors, output

if TYPE_CHECKING:
    from wf import WorkflowHandle, WorkflowInfo


def setup(db: str | None, app_db: str | None = None) -> None:
    """Point wf at the databases (SPEC §2 resolution) without connecting.

    A malformed URL is a ConfigurationError (exit 2) before anything runs."""
    import wf

    wf.configure(database_url=db or None, app_database_url=app_db or None)


def parse_arg(text: str) -> Any:
    """An ARG is JSON when it parses as JSON, else the string itself."""
    try:
        return json.loads(text)
    except ValueError:
        return text
    except RecursionError:
        raise errors.BadInput(
            f"an argument is JSON nested too deeply ({len(text):,} characters)"
        ) from None


def parse_kwargs(text: str | None) -> dict[str, Any]:
    if text is None:
        return {}
    try:
        value = json.loads(text)
    except ValueError as e:
        raise errors.BadInput(f"--kwargs is not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise errors.BadInput(f"--kwargs must be a JSON object like '{{\"n\": 3}}', got {text!r}")
    return value


def load_workflow(target: str) -> Any:
    """Import ``MODULE:FUNCTION`` and check it is a ``@wf.workflow``."""
    from wf._support import load_target

    _module, obj = load_target(target)
    kind = getattr(obj, "wf_kind", None)
    if kind != "workflow":
        what = f"a @wf.{kind}" if kind else f"a {type(obj).__name__}"
        raise errors.BadInput(
            f"{target} is not a workflow (it is {what}); decorate it with @wf.workflow()"
        )
    return obj


def check_call(fn: Any, target: str, args: list[Any], kwargs: dict[str, Any]) -> None:
    """Reject, before anything is recorded, arguments the function cannot take
    or wf cannot store."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        sig = None
    if sig is not None:
        try:
            sig.bind(*args, **kwargs)
        except TypeError as e:
            raise errors.BadInput(f"bad arguments for {target}: {e}") from None
    from wf._support import dumps

    dumps({"args": args, "kwargs": kwargs})  # SerializationError: exit 2


def import_recorded(info: WorkflowInfo) -> None:
    """Import the module a recorded workflow names, so this process has its code."""
    from wf._support import import_module

    module = info.module
    if not module:
        raise errors.BadInput(f"workflow {info.workflow_id} records no module (name {info.name!r})")
    try:
        mod = import_module(module)
    except Exception as e:
        raise errors.BadInput(
            f"cannot import {module!r}, the module of workflow {info.workflow_id} ({info.name}): {errors.describe(e)}"
        ) from e
    fn = getattr(mod, info.function, None)
    if getattr(fn, "wf_kind", None) != "workflow":
        raise errors.BadInput(
            f"module {module!r} has no workflow {info.function!r} (workflow {info.workflow_id})"
        )


def wait_for(
    handle: WorkflowHandle, timeout: float | None, *, spin: bool, verb: str
) -> tuple[WorkflowInfo, bool]:
    """Wait for the workflow's end (or ``timeout``); return its record and
    whether the wait timed out first. An error of the workflow itself is its
    outcome, not a failure of the command."""
    import wf

    timed_out = False
    failure: BaseException | None = None
    with output.spinner(f"{verb} {handle.workflow_id}", enabled=spin):
        try:
            handle.result(timeout=timeout)
        except wf.AwaitTimeoutError:
            timed_out = True
        except Exception as e:
            failure = e
    info = handle.status()
    if failure is not None and info.status not in wf.Status.ENDED:
        raise failure  # e.g. the database went away: a failure of the command
    return info, timed_out and info.status not in wf.Status.ENDED


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


def wait_and_print(
    handle: WorkflowHandle, timeout: float | None, *, as_json: bool, verb: str = "running"
) -> int:
    """Wait, print the outcome (the workflow object with --json), return the exit code."""
    info, timed_out = wait_for(handle, timeout, spin=not as_json, verb=verb)
    if as_json:
        output.dump_json(output.workflow_json(info))
    else:
        output.print_outcome(info)
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
