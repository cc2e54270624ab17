"""OpenTelemetry spans (SPEC §7): one per workflow run, step and transaction
that runs, nested as the calls are, failures marked; recorded calls that
are replayed make no span. Uses the real SDK with an in-memory exporter."""

from __future__ import annotations

import time

import pytest
import wf
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from wf import _tracing

EXPORTER = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _provider() -> None:
    # the global provider can be set once per process; wf's tracer follows it
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
    trace.set_tracer_provider(provider)


@pytest.fixture
def traced(launched: str) -> None:
    EXPORTER.clear()


@wf.step(retries=0)
def double(x: int) -> int:
    return 2 * x


@wf.step(retries=0)
def explode() -> None:
    raise ValueError("boom")


@wf.transaction()
def tx(x: int) -> int:
    return x + 1


@wf.workflow()
def child(x: int) -> int:
    return double(x)


@wf.workflow()
def parent(x: int) -> int:
    y = tx(double(x))
    try:
        explode()
    except ValueError:
        pass
    return child(y)


@wf.workflow()
def failing() -> None:
    explode()


def _by_name(spans: list[ReadableSpan]) -> dict[str, list[ReadableSpan]]:
    out: dict[str, list[ReadableSpan]] = {}
    for s in spans:
        out.setdefault(s.name, []).append(s)
    return out


def _ended(name: str) -> dict[str, list[ReadableSpan]]:
    """The finished spans, once one called ``name`` is among them: a
    background run's span ends just after its outcome is recorded (which is
    what ``result()`` waits for)."""
    deadline = time.monotonic() + 10
    while True:
        got = _by_name(list(EXPORTER.get_finished_spans()))
        if name in got:
            return got
        assert time.monotonic() < deadline, f"no span {name!r}"
        time.sleep(0.01)


def test_spans_nest_as_the_calls_do(traced: None) -> None:
    assert parent(3) == 14
    got = _by_name(list(EXPORTER.get_finished_spans()))
    wname = parent.wf_spec.name
    (root,) = got[f"workflow {wname}"]
    (kid,) = got[f"workflow {child.wf_spec.name}"]
    assert root.attributes is not None and root.attributes["wf.workflow.status"] == "SUCCESS"
    wid = root.attributes["wf.workflow.id"]
    assert root.parent is None
    steps = got["step double"]
    assert len(steps) == 2
    (t,) = got["transaction tx"]
    (boom,) = got["step explode"]
    for s in [steps[0], t, boom, kid]:
        assert s.parent is not None and s.parent.span_id == root.context.span_id, s.name
    positions = {s.name: s.attributes["wf.call.position"] for s in [steps[0], t, boom]}  # type: ignore[index]
    assert positions == {"step double": 0, "transaction tx": 1, "step explode": 2}
    assert all(s.attributes["wf.workflow.id"] == wid for s in [steps[0], t, boom])  # type: ignore[index]
    # the child's own step nests under the child
    inner = [s for s in steps if s.parent and s.parent.span_id == kid.context.span_id]
    assert len(inner) == 1
    # a failed step is marked, with its exception; the workflow that caught it is not
    assert boom.status.status_code == StatusCode.ERROR
    assert any(e.name == "exception" for e in boom.events)
    assert root.status.status_code != StatusCode.ERROR


def test_a_failed_workflow_is_marked(traced: None) -> None:
    handle = wf.start(failing)
    with pytest.raises(ValueError):
        handle.result(timeout=10)
    name = f"workflow {failing.wf_spec.name}"
    (root,) = _ended(name)[name]
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes is not None and root.attributes["wf.workflow.status"] == "ERROR"


def test_replayed_calls_make_no_spans(traced: None) -> None:
    with wf.set_workflow_id("traced-once"):
        assert parent(1) == 6
    EXPORTER.clear()
    # the same ID again: its recorded result is returned, nothing runs
    with wf.set_workflow_id("traced-once"):
        assert parent(1) == 6
    assert EXPORTER.get_finished_spans() == ()
    # a restart from step 3 (1-based, as `wf steps` shows) replays steps 1 and 2
    handle = wf.restart("traced-once", from_step=3, workflow_id="traced-again")
    assert handle.result(timeout=10) == 6
    _ended(f"workflow {parent.wf_spec.name}")
    names = sorted(s.name for s in EXPORTER.get_finished_spans())
    assert names == sorted(
        [
            f"workflow {parent.wf_spec.name}",
            "step explode",
            f"workflow {child.wf_spec.name}",
            "step double",
        ]
    )


def test_without_opentelemetry_spans_are_a_shared_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_tracing, "_trace", None)
    assert _tracing.workflow_span("w", "m:f", "e") is _tracing.call_span("step", "s", "w", 0)


def test_without_an_sdk_provider_spans_are_a_shared_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trace, "get_tracer_provider", trace.ProxyTracerProvider)
    assert _tracing.workflow_span("w", "m:f", "e") is _tracing.call_span("step", "s", "w", 0)
    monkeypatch.undo()
    # the configured provider is picked up again on the next call
    assert _tracing.call_span("step", "s", "w", 0) is not _tracing._NOOP
