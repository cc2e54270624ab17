"""Parameter coercion without pydantic.

Typer (0.2x) coerces every parameter of the invoked command through pydantic
TypeAdapters, which costs ~100 ms of imports on each run. Our parameters are
only bool, str, int, float and lists of str, so we give each one a plain
coercer up front. Guarded: with a typer that lacks these internals nothing is
changed and typer's own coercion applies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_TRUE = {"1", "true", "t", "yes", "y", "on"}
_FALSE = {"0", "false", "f", "no", "n", "off", ""}


def install(command: Any) -> None:
    try:
        from typer._click.exceptions import BadParameter
        from typer._coercion import RuntimeParam
    except Exception:  # another typer: keep its own coercion
        return

    @dataclass(frozen=True)
    class Plain(RuntimeParam):
        kind: type = str

        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            if isinstance(value, list | tuple):
                return [self._one(v, param, ctx) for v in value]
            return self._one(value, param, ctx)

        def _one(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = self.kind
            if kind is str:
                return value if isinstance(value, str) else str(value)
            if kind is bool:
                if isinstance(value, bool):
                    return value
                text = str(value).strip().lower()
                if text in _TRUE:
                    return True
                if text in _FALSE:
                    return False
                raise BadParameter(
                    f"{value!r} is not a boolean (use 1/0, true/false)", ctx=ctx, param=param
                )
            try:
                number = kind(value)
            except (TypeError, ValueError):
                noun = "an integer" if kind is int else "a number"
                raise BadParameter(f"{value!r} is not {noun}", ctx=ctx, param=param) from None
            info = self.parameter_info
            lo, hi = getattr(info, "min", None), getattr(info, "max", None)
            if (lo is not None and number < lo) or (hi is not None and number > hi):
                bound = f">= {lo}" if hi is None else f"<= {hi}" if lo is None else f"in {lo}..{hi}"
                raise BadParameter(
                    f"{value!r} is out of range: it must be {bound}", ctx=ctx, param=param
                )
            return number

    def fix(p: Any) -> None:
        desc = getattr(p, "type_descriptor", None)
        if desc is None or getattr(p, "_runtime_param", False) is not None:
            return
        ann = desc.annotation
        kind = ann if ann in (bool, str, int, float) else str if ann == list[str] else None
        if kind is not None:
            p._runtime_param = Plain(parameter_info=desc.parameter_info, annotation=ann, kind=kind)

    def visit(cmd: Any) -> None:
        for p in getattr(cmd, "params", ()):
            fix(p)
        original = getattr(cmd, "get_help_option", None)
        if original is not None:

            def get_help_option(ctx: Any, _original: Any = original) -> Any:
                option = _original(ctx)
                if option is not None:
                    fix(option)
                return option

            cmd.get_help_option = get_help_option
        for sub in getattr(cmd, "commands", {}).values():
            visit(sub)

    try:
        visit(command)
    except Exception:  # pragma: no cover - typer's internals moved: its own coercion applies
        return
