"""What most commands do first: point wf at the databases, check the
arguments (the -o format, workflow arguments), and load the user's code
(a workflow to start, the modules recorded workflows name)."""

from __future__ import annotations

import inspect
import json
from typing import TYPE_CHECKING, Any

from . import errors, options

if TYPE_CHECKING:
    from wf import WorkflowInfo


def setup(db: str | None, app_db: str | None = None, *, create: bool = True) -> None:
    """Point wf at the databases (SPEC §2 resolution) without connecting.

    A malformed URL is a ConfigurationError (exit 2) before anything runs.
    ``create=False`` (read commands): a missing database or schema is
    NoDatabaseError (exit 5), never created."""
    import wf

    wf.configure(database_url=db or None, app_database_url=app_db or None, create=create)


def output_format(fmt: str | None, json_flag: bool = False) -> str:
    """The -o/--output value (``--json`` is ``-o json``); a bad one is bad input."""
    if fmt is None:
        return "json" if json_flag else "table"
    value = fmt.strip().lower()
    if value not in options.FORMATS:
        raise errors.BadInput(
            f"-o/--output: unknown format {fmt!r} (use one of {', '.join(options.FORMATS)})"
        )
    if json_flag and value != "json":
        raise errors.BadInput(f"--json and -o {value} disagree: give one of them")
    return value


def document_format(fmt: str | None, json_flag: bool, refusal: str) -> str:
    """The -o/--output value of a command that prints one document, not
    records (options.DOC_FORMATS); ``refusal`` starts the message for another."""
    value = output_format(fmt, json_flag)
    if value not in options.DOC_FORMATS:
        raise errors.BadInput(f"{refusal}: -o {value} (use {' or '.join(options.DOC_FORMATS)})")
    return value


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


_PASS_MODULE = "pass -m/--module MODULE (pkg.module or path/to/file.py) to import its code"


def import_modules(modules: list[str] | None) -> None:
    """Import the -m/--module modules (dotted names or .py paths) before any
    recorded module, so a workflow started from a file elsewhere is found."""
    from wf._support import import_module

    for m in modules or []:
        if not m.strip():
            raise errors.BadInput("-m/--module must not be empty")
        import_module(m)  # a missing or broken module: exit 2, nothing changed


def import_recorded(info: WorkflowInfo, *, given: bool = False) -> None:
    """Import the module a recorded workflow names, so this process has its
    code (already there when a -m/--module module defined it: ``given``)."""
    from wf._support import import_module

    module = info.module
    if not module:
        raise errors.BadInput(
            f"workflow {info.workflow_id} records no module (name {info.name!r}); {_PASS_MODULE}"
        )
    try:
        mod = import_module(module)
    except Exception as e:
        hint = "none of the -m/--module modules defines it" if given else _PASS_MODULE
        raise errors.BadInput(
            f"cannot import {module!r}, the module of workflow {info.workflow_id} ({info.name}): "
            f"{errors.describe(e)}; {hint}"
        ) from e
    fn = getattr(mod, info.function, None)
    if getattr(fn, "wf_kind", None) != "workflow":
        raise errors.BadInput(
            f"module {module!r} has no workflow {info.function!r} (workflow {info.workflow_id}); "
            + _PASS_MODULE
        )
