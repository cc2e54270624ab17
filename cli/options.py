"""Shared option aliases, so every command spells --db, --json, times and
statuses the same way, each with its environment-variable fallback."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .errors import BadInput, shutdown_quietly

DB_PANEL = "Database"
OUT_PANEL = "Output"

# wf.Status.ALL, spelled out so completing --status (and --help) loads no part of wf
STATUSES = (
    "ENQUEUED",
    "DELAYED",
    "PENDING",
    "SUCCESS",
    "ERROR",
    "CANCELLED",
    "RETRIES_EXCEEDED",
)
# the values of -o/--output ("json" is also --json); DOC_FORMATS: of a command
# that prints one document, not records
FORMATS = ("table", "json", "jsonl", "ids")
DOC_FORMATS = ("table", "json")
# the values of --time-format (WF_TIME_FORMAT)
TIME_FORMATS = ("local", "iso", "relative")


# -- completion of option values (only run by the shell's completion, never at start-up) --


def complete_status(incomplete: str) -> list[str]:
    up = incomplete.upper()
    return [s for s in STATUSES if s.startswith(up)]


def complete_time_format(incomplete: str) -> list[str]:
    return [f for f in TIME_FORMATS if f.startswith(incomplete.lower())]


def complete_queue(ctx: typer.Context, incomplete: str) -> list[str]:
    """The queues the database knows; nothing at all when it cannot be read
    (completion must never print an error, nor create a database)."""
    try:
        import wf

        db = ctx.params.get("db") if ctx is not None else None
        wf.configure(database_url=db or None, create=False)
        names = [q.name for q in wf.list_queues()]
    except Exception:
        return []
    finally:
        shutdown_quietly()
    return [n for n in names if n.startswith(incomplete)]


# -- checks shared by every command that takes these values -------------------------


def check_queue(name: str | None, option: str = "--queue") -> str | None:
    """A queue name given on the command line: None stays None (no queue),
    an empty or blank one is bad input (it would match nothing, or enqueue
    work no worker serves)."""
    if name is None:
        return None
    if not name.strip():
        raise BadInput(f"{option}: a queue name must not be empty")
    return name


def check_version(version: str | None, option: str = "--version") -> str | None:
    """An application version given on the command line: a label without blanks."""
    if version is None:
        return None
    if not version.strip() or any(c.isspace() for c in version) or len(version) > 100:
        raise BadInput(f"{option}: an application version is a label without blanks")
    return version


def check_queues(names: list[str] | None, option: str = "--queue") -> list[str] | None:
    for n in names or ():
        check_queue(n, option)
    return names


def time_format(value: str | None) -> str | None:
    """--time-format / WF_TIME_FORMAT, checked; None when not given (each view's default)."""
    if value is None or not value.strip():
        return None
    v = value.strip().lower()
    if v not in TIME_FORMATS:
        raise BadInput(
            f"--time-format: unknown format {value!r} (use one of {', '.join(TIME_FORMATS)})"
        )
    return v


Db = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="WF_DATABASE_URL",
        show_envvar=True,
        metavar="URL",
        help="System database URL (postgresql://… or sqlite:///…). "
        "Else [tool.wf] database_url in ./pyproject.toml, else sqlite:///wf.sqlite.",
        rich_help_panel=DB_PANEL,
        show_default=False,
    ),
]

AppDb = Annotated[
    str | None,
    typer.Option(
        "--app-db",
        envvar="WF_APP_DATABASE_URL",
        show_envvar=True,
        metavar="URL",
        help="Application database URL for @wf.transaction functions (default: the system database).",
        rich_help_panel=DB_PANEL,
        show_default=False,
    ),
]

Json = Annotated[
    bool,
    typer.Option(
        "--json",
        envvar="WF_JSON",
        show_envvar=True,
        help="Print one JSON document (lists are arrays) instead of tables.",
        rich_help_panel=OUT_PANEL,
    ),
]


def _output(help_text: str, formats: tuple[str, ...] = FORMATS) -> Any:
    def complete(incomplete: str) -> list[str]:
        return [f for f in formats if f.startswith(incomplete.lower())]

    return typer.Option(
        "--output",
        "-o",
        metavar="FORMAT",
        help=help_text,
        rich_help_panel=OUT_PANEL,
        show_default=False,
        autocompletion=complete,
    )


_RECORD_FORMATS_HELP = "table (the default), json (one document), jsonl (one object per line)"
_JSON_IS = "--json is -o json."


def _output_ids(ids_mean: str) -> Any:
    """An -o/--output option whose ``ids`` prints something else than workflow IDs."""
    return _output(f"{_RECORD_FORMATS_HELP} or ids ({ids_mean}, one per line). {_JSON_IS}")


Output = Annotated[
    str | None,
    _output(f"{_RECORD_FORMATS_HELP} or ids (one workflow ID per line, for xargs). {_JSON_IS}"),
]
StepsOutput = Annotated[str | None, _output_ids("the IDs of the child workflows the steps started")]
LogsOutput = Annotated[str | None, _output_ids("the workflow IDs the lines are of, each once")]
QueuesOutput = Annotated[str | None, _output_ids("the queue names")]
# commands that print one document, no records
DocOutput = Annotated[
    str | None, _output(f"table (the default) or json (one document). {_JSON_IS}", DOC_FORMATS)
]


TimeFormat = Annotated[
    str | None,
    typer.Option(
        "--time-format",
        metavar="FORMAT",
        envvar="WF_TIME_FORMAT",
        show_envvar=True,
        help="How times are shown: local (the default: local time with its zone, e.g. "
        "2026-12-01 12:03:59 UTC), iso (ISO 8601 with the offset) or relative (5m ago).",
        rich_help_panel=OUT_PANEL,
        show_default=False,
        autocompletion=complete_time_format,
    ),
]

Debug = Annotated[
    bool,
    typer.Option(
        "--debug",
        envvar="WF_DEBUG",
        show_envvar=True,
        help="On failure, show the full traceback.",
        rich_help_panel=OUT_PANEL,
    ),
]

_TIME_HELP = "ISO 8601 (2025-01-31T12:00, local time unless it has an offset) or relative (10m, 2h, 3d: that long ago)."

Since = Annotated[
    str | None,
    typer.Option(
        "--since", metavar="TIME", help="Only from this time on. " + _TIME_HELP, show_default=False
    ),
]

Until = Annotated[
    str | None,
    typer.Option(
        "--until", metavar="TIME", help="Only up to this time. " + _TIME_HELP, show_default=False
    ),
]

Statuses = Annotated[
    list[str] | None,
    typer.Option(
        "--status",
        "-s",
        metavar="STATUS",
        help=f"Only workflows in this status (repeatable): {', '.join(STATUSES)}.",
        show_default=False,
        autocompletion=complete_status,
    ),
]

Name = Annotated[
    str | None,
    typer.Option(
        "--name",
        "-n",
        metavar="NAME",
        help="The function's name, or the whole module:function.",
        show_default=False,
    ),
]

QueueFilter = Annotated[
    str | None,
    typer.Option(
        "--queue",
        "-q",
        metavar="QUEUE",
        help="Only workflows of this queue.",
        show_default=False,
        autocompletion=complete_queue,
    ),
]

Children = Annotated[
    bool,
    typer.Option(
        "--children",
        help="Include child workflows (by default only top-level ones, those no workflow started).",
    ),
]

Parent = Annotated[
    str | None,
    typer.Option(
        "--parent",
        metavar="ID",
        help="Only the children that workflow ID started (implies --children).",
        show_default=False,
    ),
]

VersionFilter = Annotated[
    str | None,
    typer.Option(
        "--version",
        metavar="V",
        help="Only workflows recorded as of application version V (WF_APP_VERSION).",
        show_default=False,
    ),
]

PartitionFilter = Annotated[
    str | None,
    typer.Option(
        "--partition",
        metavar="KEY",
        help="Only workflows of this partition (enqueue(..., partition_key=KEY)).",
        show_default=False,
    ),
]

MoveVersion = Annotated[
    str | None,
    typer.Option(
        "--version",
        metavar="V",
        help="Move the workflow to application version V's code on purpose (it is recorded as "
        "of V from now on); a process of another version leaves it to a worker of V.",
        show_default=False,
    ),
]

WaitTimeout = Annotated[
    str | None,
    typer.Option(
        "--timeout",
        metavar="SECONDS",
        help="Stop waiting after this long (seconds, or 30s/10m/2h); exit 3, the workflow goes on.",
        show_default=False,
    ),
]

Detach = Annotated[
    bool,
    typer.Option(
        "--detach",
        help="Do not run it here: leave it ENQUEUED for a `wf worker`, print its ID and exit.",
    ),
]

WorkflowId = Annotated[str, typer.Argument(metavar="ID", help="A workflow ID.", show_default=False)]

Yes = Annotated[
    bool,
    typer.Option("--yes", "-y", help="Act on what the filters match without asking first."),
]

Modules = Annotated[
    list[str] | None,
    typer.Option(
        "--module",
        "-m",
        metavar="MODULE",
        help="Import this module (pkg.module or path/to/file.py; repeatable) for the workflows' "
        "code, before the module each workflow records (e.g. a file outside this directory).",
        show_default=False,
    ),
]
