"""The composition root: the process's executor. ``launch`` builds the
worker's Executor from the configuration and starts it; calls made in this
process find it here (``for_call``: inside a workflow, the executor running
it); management calls without an executor use a lightweight ``client``.
Nothing below the public API imports this module: the executor is passed
down."""

from __future__ import annotations

import dataclasses
import sys
import threading
from typing import TYPE_CHECKING, Any

from . import _config, _logging  # noqa: F401  (_logging installs the durable log handler)
from ._context import current
from ._errors import WfError, _OwnershipLost
from ._sysdb import SystemDatabase

if TYPE_CHECKING:
    from ._worker.executor import Executor

# -- the process's executor ---------------------------------------------------------

_lock = threading.RLock()
_executor: Executor | None = None
_configured: _config.Config | None = None
_client: SystemDatabase | None = None
# may management calls create the database and schema? (reading tools: no)
_create = True


def configure(
    database_url: str | None = None, app_database_url: str | None = None, *, create: bool = True
) -> None:
    """Set the database URLs used by later calls, without starting anything.
    ``create=False``: management calls (list, status, cancel, send, ...) never
    create the database or the schema; a missing one is NoDatabaseError."""
    global _configured, _client, _create
    cfg = _config.resolve(database_url, app_database_url)
    with _lock:
        _configured = cfg
        _create = create
        if _client is not None:
            _client.dispose()
            _client = None


def _config_now() -> _config.Config:
    return _configured or _config.resolve()


def launch(
    database_url: str | None = None,
    app_database_url: str | None = None,
    executor_id: str | None = None,
    *,
    queues: list[str] | None = None,
    concurrency: int | None = None,
    worker: bool = False,
    recovery: bool = True,
    app_version: str | None = None,
) -> None:
    """Start this process's executor: migrations, heartbeats, recovery, queues, schedules.

    ``app_version`` (else WF_APP_VERSION / ``app_version`` in [tool.wf]): the
    release this process runs; it stamps the workflows it starts and adopts
    and dequeues only that release's workflows (and unversioned ones).

    ``queues``: None serves the queues this process declares (every queue in
    the database with ``worker``); a list serves exactly those; [] none.
    ``recovery=False`` adopts no other executor's workflows (for one-shot
    commands that should not take work they will not stay up to finish)."""
    global _executor
    with _lock:
        if _executor is not None:
            if database_url or app_database_url:
                cfg = _config.resolve(database_url, app_database_url)
                if cfg.database_url != _executor.config.database_url:
                    raise WfError(
                        "wf is already launched on another database; call wf.shutdown() first"
                    )
            return
        cfg = (
            _config.resolve(database_url, app_database_url)
            if (database_url or app_database_url)
            else _config_now()
        )
        if app_version is not None:
            cfg = dataclasses.replace(cfg, app_version=_config.check_app_version(app_version))
        # here, not at the top: a CLI read needs no executor (nor the core)
        from ._worker.executor import Executor

        ex = Executor(
            cfg,
            executor_id,
            worker=worker,
            queues=queues,
            concurrency=concurrency,
            recovery=recovery,
        )
        try:
            ex.start()
        except BaseException:
            ex.stopping.set()
            ex.sysdb.dispose()
            raise
        _executor = ex


def shutdown() -> None:
    """Stop the executor (if any) and close database connections."""
    global _executor, _client
    with _lock:
        ex, _executor = _executor, None
        client, _client = _client, None
    if ex is not None:
        ex.stop()
    if client is not None:
        client.dispose()
    # a process that never imported the wake-ups started no listener
    wakeups = sys.modules.get(__package__ + "._core.wakeups")
    if wakeups is not None:
        wakeups.stop_listeners()


def get() -> Executor:
    """The running executor, launched from the configuration if needed."""
    ex = _executor
    if ex is None:
        launch()
        ex = _executor
        assert ex is not None
    return ex


def for_call() -> Executor:
    """The executor for a call made here: inside a workflow, the one running
    it (a run whose executor has stopped stops too, left to recovery);
    elsewhere the process's executor, launched if needed."""
    ctx = current.get()
    if ctx is not None and ctx.executor is not None:
        ex: Executor = ctx.executor
        if ex.stopping.is_set():
            raise _OwnershipLost()
        return ex
    return get()


def current_or_none() -> Executor | None:
    return _executor


def client() -> SystemDatabase:
    """A system database for management calls: the executor's when launched,
    else a lightweight one that starts no threads and fails fast when the
    database is down."""
    global _client
    ex = _executor
    if ex is not None:
        return ex.sysdb
    with _lock:
        if _client is None:
            cfg = _config_now()
            db = SystemDatabase(
                cfg.database_url, outage_timeout=0, pool_size=2, **cfg.connection_options()
            )
            db.set_app_version(cfg.app_version)  # what this process enqueues is of its release
            try:
                if _create:
                    db.ensure_reachable()
                    db.migrate()
                else:
                    db.open_existing()
            except BaseException:
                db.dispose()
                raise
            _client = db
        return _client


def run_coroutine(coro: Any) -> Any:
    """Run an async workflow body to completion from a worker thread."""
    import asyncio

    return asyncio.run(coro)
