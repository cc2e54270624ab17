"""The ``wf`` command: app wiring and the entry point.

Only typer and the command signatures load at start-up; each command imports
wf's runtime, SQLAlchemy, rich's tables and the user's module when it runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from .commands import (
    db,
    logs,
    manage,
    queue,
    recover,
    replay,
    run,
    schedule,
    show,
    tree,
    views,
    worker,
)
from .commands import events as events_cmd
from .commands import retention as retention_cmd
from .commands import stream as stream_cmd
from .commands import ui as ui_cmd

HELP = """Durable workflows: start, inspect, await, cancel, resume, restart and recover them.

The system database is --db URL, else WF_DATABASE_URL, else database_url under
[tool.wf] in ./pyproject.toml, else sqlite:///wf.sqlite in the current directory.

Exit codes: 0 success; 1 the workflow ended in ERROR (or the command failed);
2 bad usage or input; 3 CANCELLED, RETRIES_EXCEEDED or an await timeout;
4 no such workflow; 5 the database cannot be reached or holds no wf database."""

_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

app = typer.Typer(
    name="wf",
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    context_settings=_SETTINGS,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)


def _group(help_text: str) -> typer.Typer:
    """A group of subcommands (``wf queue``, ``wf db``, ``wf schedule``)."""
    return typer.Typer(
        help=help_text, no_args_is_help=True, context_settings=_SETTINGS, rich_markup_mode=None
    )


queue_app = _group("Queues.")
db_app = _group("The system database's schema.")
schedule_app = _group("Schedules: code-declared (@wf.scheduled) and stored (wf schedule create).")

app.command("start")(run.start)
app.command("status")(views.status)
app.command("list")(views.list_)
app.command("count")(views.count)
app.command("steps")(views.steps)
app.command("logs")(logs.logs)
app.command("await")(run.await_)
app.command("cancel")(manage.cancel)
app.command("resume")(run.resume)
app.command("restart")(run.restart)
app.command("recover")(recover.recover)
app.command("worker")(worker.worker)
app.command("send")(manage.send)
app.command("show")(show.show)
app.command("tree")(tree.tree)
app.command("events")(events_cmd.events)
app.command("stream")(stream_cmd.stream)
app.command("replay")(replay.replay)
app.command("delete")(retention_cmd.delete)
app.command("gc")(retention_cmd.gc)
app.command("export")(retention_cmd.export)
app.command("import")(retention_cmd.import_)
app.command("ui")(ui_cmd.ui)
schedule_app.command("list")(schedule.schedule_list)
schedule_app.command("create")(schedule.schedule_create)
schedule_app.command("pause")(schedule.schedule_pause)
schedule_app.command("resume")(schedule.schedule_resume)
schedule_app.command("delete")(schedule.schedule_delete)
schedule_app.command("trigger")(schedule.schedule_trigger)
schedule_app.command("backfill")(schedule.schedule_backfill)
queue_app.command("list")(queue.queue_list)
db_app.command("migrate")(db.migrate)
db_app.command("status")(db.status)
app.add_typer(schedule_app, name="schedule")
app.add_typer(queue_app, name="queue")
app.add_typer(db_app, name="db")


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("wf-runner")
        except PackageNotFoundError:
            v = "unknown"
        typer.echo(f"wf {v}")
        raise typer.Exit(0)


def _shell() -> str:
    """The shell to complete for: the one running wf, else $SHELL's."""
    import os

    from typer._completion_shared import _get_shell_name

    name = _get_shell_name() or os.path.basename(os.environ.get("SHELL", ""))
    if name not in ("bash", "zsh", "fish", "powershell", "pwsh"):
        sys.stderr.write(
            f"error: cannot complete for shell {name or '(unknown)'!r}: "
            "use bash, zsh, fish or PowerShell (or set SHELL)\n"
        )
        raise typer.Exit(2)
    return name


# typer's own --install-completion/--show-completion (add_completion=True)
# cost ~60 ms on every start-up: these load its completion code only when used
def _show_completion(value: bool) -> None:
    if value:
        from typer._completion_shared import get_completion_script

        typer.echo(
            get_completion_script(prog_name="wf", complete_var=_COMPLETE_VAR, shell=_shell())
        )
        raise typer.Exit(0)


def _install_completion(value: bool) -> None:
    if value:
        from typer._completion_shared import install

        shell, path = install(shell=_shell(), prog_name="wf", complete_var=_COMPLETE_VAR)
        typer.echo(f"{shell} completion installed in {path}; it takes effect in a new shell")
        raise typer.Exit(0)


_COMPLETE_VAR = "_WF_COMPLETE"


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    install_completion: bool = typer.Option(
        False,
        "--install-completion",
        callback=_install_completion,
        is_eager=True,
        expose_value=False,
        help="Install completion (commands, options, statuses, queue names) for this shell.",
    ),
    show_completion: bool = typer.Option(
        False,
        "--show-completion",
        callback=_show_completion,
        is_eager=True,
        expose_value=False,
        help="Print the completion script for this shell, to install it yourself.",
    ),
) -> None:
    pass


def _click_class(name: str) -> type[BaseException]:
    """Click's exception classes, whichever click typer uses (its own or the package)."""
    for k in typer.BadParameter.__mro__:
        if k.__name__ == name:
            return k
    raise LookupError(name)  # pragma: no cover


def main(argv: Sequence[str] | None = None) -> None:
    """Run ``wf``; exit with the command's code (SPEC §5). Usage errors are
    one line on stderr and exit 2."""

    args = list(sys.argv[1:] if argv is None else argv)
    import os

    if os.environ.get(_COMPLETE_VAR):  # the shell asks for completions
        from typer._completion_classes import completion_init

        completion_init()
    from ._fastparams import build, install

    command = build(app)
    install(command)
    usage_error = _click_class("UsageError")
    click_exception = _click_class("ClickException")
    try:
        rv = command.main(args=args, prog_name="wf", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ == "NoArgsIsHelpError" or not args:
            # `wf` or `wf db` alone: show that level's help
            main([*args, "--help"])
            return
        ctx = getattr(e, "ctx", None)
        where = ctx.command_path if ctx is not None else "wf"
        if type(e).__name__ == "NoSuchOption":
            message = _no_such_option(e, ctx)
        else:
            message = " ".join(e.format_message().split())  # type: ignore[attr-defined]
        sys.stderr.write(f"error: {message} (see '{where} --help')\n")
        sys.exit(2)
    except click_exception as e:
        sys.stderr.write(f"error: {' '.join(e.format_message().split())}\n")  # type: ignore[attr-defined]
        sys.exit(getattr(e, "exit_code", 1))
    except typer.Abort:
        sys.stderr.write("aborted\n")
        sys.exit(130)
    _exit(rv if isinstance(rv, int) else 0)


def _no_such_option(e: BaseException, ctx: object) -> str:
    """Click's message, suggesting only a close match (click's cutoff offers
    --db for --frob)."""
    from difflib import get_close_matches

    given = str(getattr(e, "option_name", ""))
    names = [
        n
        for p in getattr(getattr(ctx, "command", None), "params", ())
        for n in (*getattr(p, "opts", ()), *getattr(p, "secondary_opts", ()))
        if n.startswith("--")
    ]
    stripped = {n[2:]: n for n in names}
    close = get_close_matches(given.lstrip("-"), list(stripped), n=2, cutoff=0.75)
    text = f"No such option: {given}"
    if close:
        text += " (did you mean " + " or ".join(stripped[c] for c in close) + "?)"
    return text


def _exit(code: int) -> None:
    """Exit with ``code``. Workflow threads still alive after the executor's
    shutdown (it waits for them to stop at their next recorded call) must not
    keep the process alive (``concurrent.futures`` joins its threads at exit,
    daemon or not): their workflows are left to recovery, exactly as after a
    crash, so leave without joining them."""
    import threading

    lingering = [
        t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive()
    ]
    if not lingering:
        sys.exit(code)
    import os

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:  # a closed pipe: nothing more to say
            pass
    os._exit(code)


if __name__ == "__main__":
    main()
