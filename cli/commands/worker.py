"""wf worker: a long-running executor serving queues, recovery and schedules."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from typing import Annotated, Any

import typer

from .. import common, errors, options, output


@errors.command
def worker(
    modules: Annotated[
        list[str],
        typer.Argument(
            metavar="MODULE",
            help="Modules with the workflows to serve (pkg.module or path/to/file.py).",
            show_default=False,
        ),
    ],
    queues: Annotated[
        list[str] | None,
        typer.Option(
            "--queue",
            "-q",
            metavar="QUEUE",
            envvar="WF_WORKER_QUEUES",
            show_envvar=True,
            help="Serve only this queue (repeatable; the variable takes a space-separated list). "
            "Default: every queue.",
            show_default=False,
            autocompletion=options.complete_queue,
        ),
    ] = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency",
            "-c",
            min=1,
            metavar="N",
            envvar="WF_WORKER_CONCURRENCY",
            show_envvar=True,
            help="At most N workflows at once per queue in this process (unless the queue declares "
            "its own worker_concurrency).",
            show_default=False,
        ),
    ] = None,
    executor_id: Annotated[
        str | None,
        typer.Option(
            "--executor-id",
            metavar="ID",
            envvar="WF_EXECUTOR_ID",
            show_envvar=True,
            help="This executor's ID (default: host, pid and a random suffix).",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            metavar="LEVEL",
            envvar="WF_LOG_LEVEL",
            show_envvar=True,
            help="stderr logging level.",
        ),
    ] = "INFO",
    db: options.Db = None,
    app_db: options.AppDb = None,
    json_out: options.Json = False,
    debug: options.Debug = False,
) -> int:
    """Run an executor until SIGINT or SIGTERM: recovery, queues, schedules.

    On a signal it stops cleanly: nothing new starts, running workflows stop
    at their next call, and steps already running get WF_SHUTDOWN_GRACE seconds
    (default 20) to finish before the workflows are left to recovery (a live
    executor adopts them at once; those whose step still runs, once this
    process is gone). A second signal stops waiting. Started while the
    database is down, it waits for it. With --json: one JSON object when it
    stops.
    """
    level = logging.getLevelName(log_level.strip().upper())
    if not isinstance(level, int):
        raise errors.BadInput(f"--log-level: unknown level {log_level!r}")
    options.check_queues(queues)
    common.setup(db, app_db)
    from wf._support import import_module

    for m in modules:
        import_module(m)  # unknown module: exit 2 before anything is touched

    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    stop = threading.Event()
    received: list[int] = []

    def on_signal(signum: int, _frame: Any) -> None:
        received.append(signum)
        if stop.is_set():  # a second signal: stop waiting for the clean shutdown
            raise KeyboardInterrupt
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    import wf
    from wf._support import executor_identity

    try:
        launched = _launch_when_reachable(
            stop,
            lambda: wf.launch(
                executor_id=executor_id or None,
                queues=list(queues) if queues else None,
                concurrency=concurrency,
                worker=True,
            ),
        )
        eid, url = executor_identity() or ("?", "?")
        served = ", ".join(queues) if queues else "all queues"
        if launched:
            output.print_lines(
                f"wf worker {eid} on {url}: serving {served} for {', '.join(modules)}; Ctrl-C or SIGTERM to stop",
                stderr=True,
            )
        while launched and not stop.wait(0.5):
            pass
        if launched:
            output.print_lines(
                "stopping: waiting for running steps, then leaving the workflows to recovery",
                stderr=True,
            )
        wf.shutdown()
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    if json_out:
        output.dump_json(
            {
                "executor_id": eid,
                "queues": list(queues) if queues else None,
                "concurrency": concurrency,
                "stopped_by": signal.Signals(received[0]).name if received else None,
            }
        )
    return errors.OK


def _launch_when_reachable(stop: threading.Event, launch: Callable[[], None]) -> bool:
    """Launch, waiting out a database that cannot be reached yet (one warning,
    then retries with backoff) as a running worker waits out an outage.
    Returns False when a signal came first. Other failures (bad credentials,
    a bad URL) still end the command."""
    from wf import DatabaseUnreachableError
    from wf._support import is_connection_error

    delay = 0.5
    warned = False
    while True:
        try:
            launch()
            return True
        except DatabaseUnreachableError as e:
            cause = e.__cause__
            if cause is None or not is_connection_error(cause):
                raise
            if not warned:
                errors.warn(f"database unreachable, waiting for it (Ctrl-C to stop): {e}")
                warned = True
        if stop.wait(delay):
            return False
        delay = min(delay * 2, 5.0)
