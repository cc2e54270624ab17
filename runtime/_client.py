"""Clients without the workflow code: ``wf.Client(database_url)`` and
``wf.AsyncClient``. A web service enqueues work by recorded name
(``"module:function"``) that a worker fleet runs, and reads results, sends
messages, reads events, cancels, resumes and lists, all against its own
system database. It imports no user code and starts no executor: nothing
runs in the client's process.

Each client owns a SystemDatabase of its own (not the process's executor nor
``wf._root``'s singletons), so two clients on two databases work side by side
in one process, and beside a launched wf. Every operation is the code under
the matching public function (``wf.send``, ``wf.cancel``, ...) with this
database passed down: one set of SQL, one set of checks."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _config
from ._api import cancel_in, resume_in
from ._comm import get_event_in, send_in
from ._core import (
    check_workflow_id,
    encode_inputs,
    enqueue_options,
    start_workflow,
    wait_outcome,
)
from ._errors import ConfigurationError, WfError, WorkflowNotFoundError
from ._inspect import get_workflow_in, list_steps_in, list_workflows_in
from ._records import StepInfo, WorkflowInfo
from ._registry import WorkflowSpec, check_recorded_name
from ._streams import StreamReader, read_stream_in

if TYPE_CHECKING:
    from ._sysdb import SystemDatabase

# what @wf.workflow defaults to: a client cannot read the worker's decorator
DEFAULT_MAX_RECOVERY_ATTEMPTS = 50
DEFAULT_QUEUE = "default"


def _not_here(*_args: Any, **_kwargs: Any) -> Any:
    raise WfError("a workflow enqueued by wf.Client runs in a worker, not in the client")


def _recorded_name(workflow: Any) -> tuple[str, int]:
    """The name a workflow is recorded under, and its recovery limit: a
    ``"module:function"`` string as given, or a ``@wf.workflow`` function's own."""
    spec = getattr(workflow, "wf_spec", None)
    if isinstance(spec, WorkflowSpec):
        return spec.name, spec.max_recovery_attempts
    # a name no worker could run would wait ENQUEUED for ever: refused here
    return check_recorded_name(workflow), DEFAULT_MAX_RECOVERY_ATTEMPTS


def _check_options(
    queue: str,
    workflow_id: str | None,
    priority: int | None,
    dedup_id: str | None,
    delay: float | None,
    timeout: float | None,
) -> None:
    """Everything wrong with the options is said before the database is touched."""
    if not isinstance(queue, str) or not queue.strip():
        raise ConfigurationError("a queue name must not be empty")
    if workflow_id is not None:
        check_workflow_id(workflow_id)
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)):
        raise ConfigurationError(f"priority is an integer (got {priority!r})")
    if dedup_id is not None and (not isinstance(dedup_id, str) or not dedup_id):
        raise ConfigurationError("dedup_id is a non-empty string")
    for label, v in (("delay", delay), ("timeout", timeout)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ConfigurationError(f"{label} is a number of seconds (got {v!r})")
    if delay is not None and delay < 0:
        raise ConfigurationError("delay must be >= 0 seconds")
    if timeout is not None and timeout <= 0:
        raise ConfigurationError("timeout must be a positive number of seconds")


class ClientHandle:
    """A workflow seen through a client: its ID, its result and its status,
    read through the client's own database."""

    def __init__(self, client: Client, workflow_id: str) -> None:
        self._client = client
        self.workflow_id = workflow_id

    def __repr__(self) -> str:
        return f"ClientHandle({self.workflow_id!r})"

    def result(self, timeout: float | None = None) -> Any:
        """Wait for the workflow to end and return its result (or raise its
        recorded error). ``timeout`` seconds: AwaitTimeoutError; it goes on."""
        outcome = wait_outcome(self._client._db(), self.workflow_id, timeout, None)
        return outcome.result(self.workflow_id)

    get_result = result

    def status(self) -> WorkflowInfo:
        return self._client.get_workflow(self.workflow_id)

    get_status = status


class Client:
    """A connection to a wf system database for code that does not have the
    workflows: enqueue by name, wait for results, message, cancel, list.

    ``database_url`` None resolves as wf does (``WF_DATABASE_URL``,
    ``[tool.wf]``, the default). The database is reached (and its schema
    migrated, as any wf process does) at the first call, so constructing a
    client never fails on an unreachable database; ``outage_timeout``: how
    long a call keeps retrying while the database is unreachable (default 0:
    it fails at once with DatabaseUnreachableError, for a request handler to
    answer). Use it as a context manager or call ``close()``."""

    def __init__(self, database_url: str | None = None, *, outage_timeout: float = 0.0) -> None:
        self._config = _config.resolve(database_url)  # a malformed URL: ConfigurationError now
        self._outage_timeout = outage_timeout
        self._lock = threading.Lock()
        self._sysdb: SystemDatabase | None = None
        self._closed = False

    def __repr__(self) -> str:
        return f"Client({_config.display_url(self._config.database_url)!r})"

    def _db(self) -> SystemDatabase:
        if self._closed:
            raise WfError("this wf.Client is closed")
        db = self._sysdb
        if db is not None:
            return db
        with self._lock:
            if self._closed:
                raise WfError("this wf.Client is closed")
            if self._sysdb is None:
                from ._sysdb import SystemDatabase

                cfg = self._config
                db = SystemDatabase(
                    cfg.database_url,
                    outage_timeout=self._outage_timeout,
                    pool_size=2,
                    **cfg.connection_options(),
                )
                try:
                    db.ensure_reachable()
                    db.migrate()
                except BaseException:
                    db.dispose()
                    raise
                self._sysdb = db
            return self._sysdb

    # -- enqueueing ----------------------------------------------------------------------------

    def enqueue(
        self,
        workflow: str | Any,
        /,
        *args: Any,
        queue: str = DEFAULT_QUEUE,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        partition_key: str | None = None,
        debounce_key: str | None = None,
        debounce: float | None = None,
        debounce_max_wait: float | None = None,
        on_duplicate: str = "raise",
        **kwargs: Any,
    ) -> ClientHandle:
        """Put the workflow recorded as ``workflow`` (``"module:function"``)
        on ``queue`` for a worker that has registered it; returns its handle
        at once. The ID is the idempotency key: an ID already recorded for
        this name enqueues nothing new. ``dedup_id``: QueueDedupError while
        another workflow with it is enqueued or running on the queue;
        ``priority``: lower runs first; ``delay``: not before this many
        seconds; ``timeout``: cancelled this long after a worker starts it;
        ``partition_key``, ``debounce_key``/``debounce``/``debounce_max_wait``
        and ``on_duplicate`` as for ``wf.Queue.enqueue``. Arguments are
        encoded as wf records them: a value it cannot store is a
        SerializationError, and nothing is written."""
        name, max_attempts = _recorded_name(workflow)
        _check_options(queue, workflow_id, priority, dedup_id, delay, timeout)
        debounced = enqueue_options(
            on_duplicate, partition_key, debounce_key, debounce, debounce_max_wait, delay, dedup_id
        )
        encode_inputs(args, kwargs)  # SerializationError before the database is touched
        spec = WorkflowSpec(name, _not_here, False, max_attempts)
        wid, _ = start_workflow(
            None,
            spec,
            args,
            kwargs,
            sysdb=self._db(),
            workflow_id=workflow_id,
            queue=queue,
            timeout=timeout,
            priority=priority or 0,
            dedup_id=dedup_id,
            delay=delay,
            partition_key=partition_key,
            debounce=debounced,
            on_duplicate=on_duplicate,
        )
        return ClientHandle(self, wid)

    # -- reading and managing ---------------------------------------------------------------

    def retrieve(self, workflow_id: str) -> ClientHandle:
        """A handle to any recorded workflow (WorkflowNotFoundError if none)."""
        if self._db().get_outcome(workflow_id) is None:
            raise WorkflowNotFoundError(f"no workflow with ID {workflow_id!r}")
        return ClientHandle(self, workflow_id)

    def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        return get_workflow_in(self._db(), workflow_id)

    def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        """Send a message to a workflow (once per ``idempotency_key``)."""
        send_in(self._db(), destination_id, message, topic, idempotency_key)

    def get_event(self, workflow_id: str, key: str, timeout: float = 60) -> Any:
        """The value the workflow set under ``key``, waiting up to ``timeout``
        seconds for it; None if it never came."""
        return get_event_in(self._db(), workflow_id, key, timeout)

    def read_stream(self, workflow_id: str, key: str, *, follow: bool = True) -> StreamReader:
        """The values of the workflow's stream ``key``, in order, each once
        (``wf.read_stream``): blocks for more until it is closed or the
        workflow ends (``follow=False``: only what is written now)."""
        return read_stream_in(self._db(), workflow_id, key, follow=follow)

    def cancel(self, workflow_id: str, *, reason: str | None = None) -> None:
        """Cancel a workflow and its children; its worker stops it before its next call."""
        cancel_in(self._db(), workflow_id, reason=reason)

    def resume(self, workflow_id: str) -> ClientHandle:
        """Put a cancelled, failed or RETRIES_EXCEEDED workflow back on its
        queue (``default`` if it had none) for a worker to continue from its
        last finished call. Nothing runs in the client's process (unlike
        ``wf.resume``, which runs it here); one that is running or waiting on
        its queue is left as it is."""
        return ClientHandle(self, resume_in(self._db(), workflow_id, detach=True).workflow_id)

    def list_workflows(
        self,
        status: str | list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 20,
        offset: int = 0,
        *,
        parent: str | None = None,
        top_level: bool = False,
    ) -> list[WorkflowInfo]:
        """As ``wf.list_workflows``: newest first."""
        return list_workflows_in(
            self._db(),
            status,
            name,
            queue,
            since,
            until,
            limit,
            offset,
            parent=parent,
            top_level=top_level,
        )

    def list_steps(self, workflow_id: str) -> list[StepInfo]:
        """Each recorded call of a workflow, by position (from 1)."""
        return list_steps_in(self._db(), workflow_id)

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the client's connections (idempotent). Handles it returned stop working."""
        with self._lock:
            self._closed = True
            db, self._sysdb = self._sysdb, None
        if db is not None:
            db.dispose()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# -- asyncio ------------------------------------------------------------------------------------


class AsyncClientHandle:
    """``ClientHandle`` for asyncio: the same methods, awaited."""

    def __init__(self, handle: ClientHandle) -> None:
        self._handle = handle
        self.workflow_id = handle.workflow_id

    def __repr__(self) -> str:
        return f"AsyncClientHandle({self.workflow_id!r})"

    async def result(self, timeout: float | None = None) -> Any:
        return await asyncio.to_thread(self._handle.result, timeout)

    get_result = result

    async def status(self) -> WorkflowInfo:
        return await asyncio.to_thread(self._handle.status)

    get_status = status


class AsyncClient:
    """``wf.Client`` for asyncio services: the same methods, awaited. Each
    call runs the client's (blocking, short) database work in a worker thread
    (``asyncio.to_thread``), so the event loop never waits on the database;
    waiting for a result or an event blocks only that thread."""

    def __init__(self, database_url: str | None = None, *, outage_timeout: float = 0.0) -> None:
        self._client = Client(database_url, outage_timeout=outage_timeout)

    def __repr__(self) -> str:
        return "Async" + repr(self._client)

    async def enqueue(
        self,
        workflow: str | Any,
        /,
        *args: Any,
        queue: str = DEFAULT_QUEUE,
        workflow_id: str | None = None,
        priority: int | None = None,
        dedup_id: str | None = None,
        delay: float | None = None,
        timeout: float | None = None,
        partition_key: str | None = None,
        debounce_key: str | None = None,
        debounce: float | None = None,
        debounce_max_wait: float | None = None,
        on_duplicate: str = "raise",
        **kwargs: Any,
    ) -> AsyncClientHandle:
        handle = await asyncio.to_thread(
            lambda: self._client.enqueue(
                workflow,
                *args,
                queue=queue,
                workflow_id=workflow_id,
                priority=priority,
                dedup_id=dedup_id,
                delay=delay,
                timeout=timeout,
                partition_key=partition_key,
                debounce_key=debounce_key,
                debounce=debounce,
                debounce_max_wait=debounce_max_wait,
                on_duplicate=on_duplicate,
                **kwargs,
            )
        )
        return AsyncClientHandle(handle)

    async def retrieve(self, workflow_id: str) -> AsyncClientHandle:
        return AsyncClientHandle(await asyncio.to_thread(self._client.retrieve, workflow_id))

    async def get_workflow(self, workflow_id: str) -> WorkflowInfo:
        return await asyncio.to_thread(self._client.get_workflow, workflow_id)

    async def send(
        self,
        destination_id: str,
        message: Any,
        topic: str | None = None,
        idempotency_key: str | None = None,
    ) -> None:
        await asyncio.to_thread(self._client.send, destination_id, message, topic, idempotency_key)

    async def get_event(self, workflow_id: str, key: str, timeout: float = 60) -> Any:
        return await asyncio.to_thread(self._client.get_event, workflow_id, key, timeout)

    async def read_stream(
        self, workflow_id: str, key: str, *, follow: bool = True
    ) -> AsyncIterator[Any]:
        """``async for value in client.read_stream(wid, key)``: the waiting
        happens in a worker thread; the event loop runs on meanwhile."""
        reader = await asyncio.to_thread(self._client.read_stream, workflow_id, key, follow=follow)
        try:
            while (entry := await asyncio.to_thread(reader.next_entry)) is not None:
                yield entry.value
        finally:
            reader.close()

    async def cancel(self, workflow_id: str, *, reason: str | None = None) -> None:
        await asyncio.to_thread(lambda: self._client.cancel(workflow_id, reason=reason))

    async def resume(self, workflow_id: str) -> AsyncClientHandle:
        return AsyncClientHandle(await asyncio.to_thread(self._client.resume, workflow_id))

    async def list_workflows(
        self,
        status: str | list[str] | None = None,
        name: str | None = None,
        queue: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int | None = 20,
        offset: int = 0,
        *,
        parent: str | None = None,
        top_level: bool = False,
    ) -> list[WorkflowInfo]:
        return await asyncio.to_thread(
            lambda: self._client.list_workflows(
                status,
                name,
                queue,
                since,
                until,
                limit,
                offset,
                parent=parent,
                top_level=top_level,
            )
        )

    async def list_steps(self, workflow_id: str) -> list[StepInfo]:
        return await asyncio.to_thread(self._client.list_steps, workflow_id)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
