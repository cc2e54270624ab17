"""Shared option aliases, so every command spells --db, --json, times and
statuses the same way, each with its environment-variable fallback."""

from __future__ import annotations

from typing import Annotated

import typer

DB_PANEL = "Database"
OUT_PANEL = "Output"

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
        help="Only workflows in this status (repeatable): ENQUEUED, PENDING, SUCCESS, ERROR, "
        "CANCELLED, RETRIES_EXCEEDED.",
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
