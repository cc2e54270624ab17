"""Registered functions by their recorded name, ``module:qualname``."""

from __future__ import annotations

import re
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._errors import ConfigurationError
from ._loader import import_module, module_name_for_path


@dataclass(frozen=True)
class WorkflowSpec:
    name: str
    fn: Callable[..., Any]  # the undecorated function
    is_async: bool
    max_recovery_attempts: int


_workflows: dict[str, WorkflowSpec] = {}
_lock = threading.Lock()


def module_of(fn: Callable[..., Any]) -> str:
    """The importable module name, also for code run as ``__main__`` (a
    workflow recorded as ``__main__:f`` could never be recovered elsewhere)."""
    mod = getattr(fn, "__module__", None) or "__main__"
    if mod != "__main__":
        return mod
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name and spec.name != "__main__":
        return str(spec.name)
    path = getattr(main, "__file__", None)
    if path:
        return module_name_for_path(path)[0]
    return "__main__"


def qualified_name(fn: Callable[..., Any]) -> str:
    return f"{module_of(fn)}:{fn.__qualname__}"


def check_recorded_name(name: object) -> str:
    """``name`` if it is a recorded name a worker can run, ``module:function``
    (the module as imported, never a file path), else ConfigurationError.
    The one check of names given by hand: wf.Client.enqueue and
    ``wf start --no-import``."""
    if not isinstance(name, str) or not name.strip():
        raise ConfigurationError(
            f"a workflow's recorded name is 'module:function', e.g. jobs.billing:charge (got {name!r})"
        )
    module, sep, function = name.partition(":")
    if not sep or not module.strip() or not function.strip():
        raise ConfigurationError(
            f"{name!r} is not a recorded name MODULE:FUNCTION (e.g. jobs.billing:charge)"
        )
    if module.endswith(".py") or "/" in module or "\\" in module:
        raise ConfigurationError(
            f"{module!r} is a file path; give the module name the worker records "
            "(pkg.module:function)"
        )
    if module != module.strip() or function != function.strip():
        raise ConfigurationError(f"workflow name {name!r} has spaces around its module or function")
    return name


def register_workflow(spec: WorkflowSpec) -> None:
    with _lock:
        _workflows[spec.name] = spec
    # a module run as __main__ is also importable under its real name: make
    # sure importing it again later finds this same module object
    mod_name = spec.name.partition(":")[0]
    main = sys.modules.get("__main__")
    if getattr(spec.fn, "__module__", None) == "__main__" and mod_name not in sys.modules and main:
        sys.modules[mod_name] = main


def find_workflow(name: str) -> WorkflowSpec | None:
    return _workflows.get(name)


_MODULE_NAME = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def find_or_import_workflow(name: str) -> WorkflowSpec | None:
    """The registered function, importing the module a recorded name gives.
    Only a dotted module name is imported: a name read from the database is
    never taken as a file path."""
    spec = _workflows.get(name)
    if spec is None:
        mod = name.partition(":")[0]
        if not _MODULE_NAME.match(mod):
            raise ConfigurationError(
                f"recorded module {mod[:200]!r} is not a module name; not importing it"
            )
        import_module(mod)
        spec = _workflows.get(name)
    return spec


def registered_names() -> list[str]:
    return list(_workflows)


# Queues and schedules declared by the code imported here (wf.Queue,
# @wf.scheduled): the worker's dequeue and cron loops read them.
declared_queues: dict[str, Any] = {}  # name -> wf.Queue
declared_schedules: list[tuple[str, Any]] = []  # (cron, workflow function)
schedules_changed = threading.Event()  # a schedule was declared: the cron loop looks again
