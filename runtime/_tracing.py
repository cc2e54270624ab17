"""OpenTelemetry spans for workflows, steps and transactions (SPEC §7).

Active when ``opentelemetry-api`` is installed and the application has set an
SDK tracer provider (it chooses the exporter, as with any instrumented
library). Otherwise every span is one shared no-op context manager, so the
hot path pays a function call. The API is imported on first use, never by
``import wf`` or the CLI."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

_NOOP: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
_UNSET: Any = object()
_trace: Any = _UNSET  # the opentelemetry.trace module, or None when it is absent
_provider: Any = None  # the tracer provider _tracer came from
_tracer: Any = None  # wf's tracer, or None while no SDK provider is set


def _active_tracer() -> Any:
    """wf's tracer when an SDK tracer provider is configured, else None.

    With only the API installed, spans would be non-recording: skipping them
    loses nothing and saves the context switch (about 10 µs a step, measured).
    The provider is looked up on every call, so one set later is picked up."""
    global _trace, _provider, _tracer
    trace = _trace
    if trace is _UNSET:
        try:
            from opentelemetry import trace
        except ImportError:
            trace = None
        _trace = trace
    if trace is None:
        return None
    provider = trace.get_tracer_provider()
    if provider is not _provider:
        default = isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider))
        _tracer = None if default else provider.get_tracer("wf")
        _provider = provider
    return _tracer


def workflow_span(workflow_id: str, name: str, executor_id: str) -> Any:
    """The span of one run of a workflow body (a recovery is a new run)."""
    tracer = _active_tracer()
    if tracer is None:
        return _NOOP
    return _span(
        tracer,
        f"workflow {name}",
        {"wf.workflow.id": workflow_id, "wf.workflow.name": name, "wf.executor.id": executor_id},
    )


def call_span(kind: str, name: str, workflow_id: str | None, position: int | None) -> Any:
    """The span of one step or transaction that runs (a replayed one does not)."""
    tracer = _active_tracer()
    if tracer is None:
        return _NOOP
    attributes: dict[str, Any] = {"wf.call.kind": kind, "wf.call.name": name}
    if workflow_id is not None and position is not None:
        attributes["wf.workflow.id"] = workflow_id
        attributes["wf.call.position"] = position
    return _span(tracer, f"{kind} {name}", attributes)


@contextlib.contextmanager
def _span(tracer: Any, name: str, attributes: dict[str, Any]) -> Iterator[Any]:
    with tracer.start_as_current_span(
        name, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as span:
        try:
            yield span
        except Exception as e:
            _failed(span, e)
            raise
        except BaseException:
            # not a failure: the run stops here and recovery finishes it
            span.set_attribute("wf.run.interrupted", True)
            raise


def _failed(span: Any, error: BaseException) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def set_outcome(span: Any, status: str, error: BaseException | None) -> None:
    """Mark a workflow span with how the run ended (its errors are caught
    and recorded by wf, so they never propagate through the span)."""
    if span is None:
        return
    span.set_attribute("wf.workflow.status", status)
    if error is not None:
        _failed(span, error)
    elif status == "ERROR":
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))
