"""The ``wf`` command: app wiring and the entry point.

Only typer and the command signatures load at start-up; each command imports
wf's runtime, SQLAlchemy, rich's tables and the user's module when it runs."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer

from .commands import db, logs, manage, queue, recover, run, views, worker

HELP = """Durable workflows: start, inspect, await, cancel, resume, restart and recover them.

The system database is --db URL, else WF_DATABASE_URL, else database_url under
[tool.wf] in ./pyproject.toml, else sqlite:///wf.sqlite in the current directory.

Exit codes: 0 success; 1 the workflow ended in ERROR (or the command failed);
2 bad usage or input; 3 CANCELLED, RETRIES_EXCEEDED or an await timeout;
4 no such workflow; 5 the database cannot be reached."""

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
queue_app = typer.Typer(
    help="Queues.", no_args_is_help=True, context_settings=_SETTINGS, rich_markup_mode=None
)
db_app = typer.Typer(
    help="The system database's schema.",
    no_args_is_help=True,
    context_settings=_SETTINGS,
    rich_markup_mode=None,
)

app.command("start")(run.start)
app.command("status")(views.status)
app.command("list")(views.list_)
app.command("steps")(views.steps)
app.command("logs")(logs.logs)
app.command("await")(run.await_)
app.command("cancel")(manage.cancel)
app.command("resume")(run.resume)
app.command("restart")(run.restart)
app.command("recover")(recover.recover)
app.command("worker")(worker.worker)
app.command("send")(manage.send)
queue_app.command("list")(queue.queue_list)
db_app.command("migrate")(db.migrate)
db_app.command("status")(db.status)
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


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
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
    from typer.main import get_command

    args = list(sys.argv[1:] if argv is None else argv)
    command = get_command(app)
    from ._fastparams import install

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
