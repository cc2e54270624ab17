"""A fast start-up: commands built only when used, parameters coerced
without pydantic.

- Typer builds the click command of every subcommand (signatures, type hints,
  parameters) before it runs any: ~1 ms each, 20 ms for wf. ``build`` gives
  the root group stand-ins that hold only a command's name and help (all
  ``wf --help`` lists) and builds a command when the group is asked for it.
- Typer (0.2x) coerces every parameter of the invoked command through pydantic
  TypeAdapters, which costs ~100 ms of imports on each run. Our parameters are
  only bool, str, int, float and lists of str, so ``install`` gives each one a
  plain coercer up front.

Both are guarded: with a typer that lacks these internals nothing is changed
and typer's own behaviour applies."""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any


def build(app: Any) -> Any:
    """``typer.main.get_command(app)``, with the root group's own commands
    built on first use (sub-groups, like ``wf db``, are built at once)."""
    import typer.main as tm

    original = getattr(tm, "get_command_from_info", None)
    stub_class = _stub_class()
    if original is None or stub_class is None:
        return tm.get_command(app)
    own = {id(info) for info in app.registered_commands}
    pending: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {}

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        info: Any = kwargs.get("command_info", args[0] if args else None)
        if id(info) not in own or info.callback is None:
            return original(*args, **kwargs)
        name = info.name or tm.get_command_name(info.callback.__name__)
        pending[name] = (args, kwargs)
        help_text = inspect.cleandoc(info.help) if info.help else inspect.getdoc(info.callback)
        return stub_class(
            name=name,
            help=help_text,
            short_help=info.short_help,
            hidden=info.hidden,
            deprecated=info.deprecated,
        )

    tm.get_command_from_info = stand_in
    try:
        group: Any = tm.get_command(app)
    finally:
        tm.get_command_from_info = original
    commands = getattr(group, "commands", None)
    if not isinstance(commands, dict):  # pragma: no cover - not a group after all
        return tm.get_command(app)
    listing = [False]

    def get_command(ctx: Any, name: str) -> Any:
        cmd = commands.get(name)
        if isinstance(cmd, stub_class) and not listing[0] and name in pending:
            args, kwargs = pending.pop(name)
            cmd = commands[name] = original(*args, **kwargs)
            install(cmd)
        return cmd

    format_commands = group.format_commands

    def format_commands_from_stand_ins(ctx: Any, formatter: Any) -> None:
        listing[0] = True  # the list needs names and help only
        try:
            format_commands(ctx, formatter)
        finally:
            listing[0] = False

    group.get_command = get_command
    group.format_commands = format_commands_from_stand_ins
    return group


def _stub_class() -> Any:
    try:
        from typer.core import TyperCommand
    except Exception:  # another typer
        return None

    class StandIn(TyperCommand):
        """A command's name and help until it is built."""

    return StandIn


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
