"""wf ui: serve the local web dashboard (the ``wf-runner[ui]`` extra).

starlette, uvicorn and jinja2 are imported only when the command runs, so
``wf --help`` stays fast and the core install does not need them."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import common, errors, options

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _check_installed() -> None:
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn", "jinja2") if importlib.util.find_spec(m) is None]
    if missing:
        raise errors.CliError(
            f"wf ui needs {', '.join(missing)}: install the ui extra, pip install 'wf-runner[ui]'"
        )


@errors.command
def ui(
    host: Annotated[
        str,
        typer.Option("--host", metavar="ADDRESS", help="Address to bind (loopback by default)."),
    ] = DEFAULT_HOST,
    port: Annotated[
        int, typer.Option("--port", min=0, max=65535, help="Port to listen on (0: any free one).")
    ] = DEFAULT_PORT,
    read_only: Annotated[
        bool,
        typer.Option(
            "--read-only", help="Serve the pages without the cancel/resume/restart buttons."
        ),
    ] = False,
    token: Annotated[
        str | None,
        typer.Option(
            "--token",
            envvar="WF_UI_TOKEN",
            show_envvar=True,
            metavar="TOKEN",
            help="Every request must carry it (required to bind anything but loopback).",
            show_default=False,
        ),
    ] = None,
    db: options.Db = None,
    debug: options.Debug = False,
) -> int:
    """Serve the dashboard: workflows (filters, live counts), each workflow's
    timeline, steps, logs, children and events with cancel/resume/restart
    buttons, queues and executors. Reads the same system database as the
    other commands and creates nothing; resumed and restarted workflows are
    left to a `wf worker`. Stops on Ctrl-C."""
    if token is not None and not token.strip():
        raise errors.BadInput("--token/WF_UI_TOKEN must not be empty")
    from ..ui.security import is_loopback  # stdlib only

    if not is_loopback(host) and token is None:
        raise errors.BadInput(
            f"--host {host} opens the dashboard to the network: give --token TOKEN "
            "(or set WF_UI_TOKEN), which every request must then carry"
        )
    _check_installed()
    common.setup(db, create=False)
    from ..ui.serve import serve

    return serve(host, port, read_only=read_only, token=token)
