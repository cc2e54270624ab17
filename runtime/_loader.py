"""Importing user code: ``pkg.module:function`` or ``path/to/file.py:function``."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from ._errors import ConfigurationError


def _ensure_cwd_on_path() -> None:
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def module_name_for_path(path: str) -> tuple[str, str | None]:
    """A dotted module name for a .py file, and a directory to put on sys.path."""
    p = Path(path).resolve()
    try:
        rel = p.relative_to(Path.cwd().resolve())
        parts = list(rel.with_suffix("").parts)
        # every parent must be a package directory (or namespace-importable)
        return ".".join(parts), None
    except ValueError:
        return p.stem, str(p.parent)


def import_module(name: str) -> ModuleType:
    """Import a module by dotted name or .py path; ConfigurationError on failure."""
    _ensure_cwd_on_path()
    extra_path = None
    if name.endswith(".py") or os.sep in name:
        if not Path(name).is_file():
            raise ConfigurationError(f"no such module file: {name}")
        name, extra_path = module_name_for_path(name)
        if extra_path and extra_path not in sys.path:
            sys.path.insert(0, extra_path)
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name and (name == e.name or name.startswith(e.name + ".")):
            raise ConfigurationError(
                f"no module named {name!r} (is the current directory right?)"
            ) from e
        raise ConfigurationError(
            f"importing module {name!r} failed: {type(e).__name__}: {e}"
        ) from e
    except ConfigurationError:
        raise
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise ConfigurationError(
            f"importing module {name!r} failed: {type(e).__name__}: {e}"
        ) from e


def load_target(target: str) -> tuple[ModuleType, Any]:
    """``MODULE:FUNCTION`` → (module, object)."""
    mod_name, sep, attr = target.rpartition(":")
    if not sep or not mod_name or not attr:
        raise ConfigurationError(
            f"target {target!r} is not MODULE:FUNCTION (e.g. sample_apps.hello:greet)"
        )
    module = import_module(mod_name)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            raise ConfigurationError(f"module {module.__name__!r} has no function {attr!r}")
    return module, obj
