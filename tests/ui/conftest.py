"""Fixtures for the dashboard tests: a database holding real workflows (run
by wf in this process, one still running), and starlette's TestClient on
the app, on both backends. Skipped, with one line, without the ui extra."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

NEEDS = "the dashboard tests need the ui extra: pip install -e '.[ui,dev]'"


def need_ui_extra() -> None:
    """Skip the calling test module, with one line, without the ui extra."""
    for module in ("starlette", "jinja2", "uvicorn", "httpx"):
        pytest.importorskip(module, reason=NEEDS)


@dataclass
class Recorded:
    """What the fixture ran: IDs by role."""

    pipelines: list[str]
    broken: str
    running: str  # still running (wf.sleep loop) until cancelled
    thread: threading.Thread


def wait_status(workflow_id: str, *statuses: str, timeout: float = 30) -> Any:
    import wf

    deadline = time.monotonic() + timeout
    while True:
        info = wf.get_workflow(workflow_id)
        if info.status in statuses:
            return info
        assert time.monotonic() < deadline, f"{workflow_id} is {info.status}, not in {statuses}"
        time.sleep(0.05)


@pytest.fixture
def recorded(launched: str) -> Iterator[Recorded]:
    import wf

    from tests.ui import dash

    dash._tries.clear()  # each test's flaky step fails once again
    pipelines = []
    for i in range(3):
        with wf.set_workflow_id(f"pipe-{i}"):
            dash.pipeline(i + 2)
        pipelines.append(f"pipe-{i}")
    with wf.set_workflow_id("broken-1"), pytest.raises(ValueError):
        dash.broken(7)
    handle = wf.start(dash.forever, "x", workflow_id="forever-1")

    def wait() -> None:
        try:
            handle.result()
        except Exception:
            pass

    t = threading.Thread(target=wait, daemon=True)
    t.start()
    # running: its first call recorded
    deadline = time.monotonic() + 30
    while not wf.list_steps("forever-1"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    yield Recorded(pipelines, "broken-1", "forever-1", t)
    try:
        wf.cancel("forever-1")
    except Exception:
        pass


def make_client(**settings: Any) -> Any:
    from starlette.testclient import TestClient
    from wf.cli.ui.app import create_app

    return TestClient(create_app(**settings), base_url="http://127.0.0.1:8765")


@pytest.fixture
def client(recorded: Recorded) -> Any:
    return make_client()


CSRF_INPUT = re.compile(r'<meta name="csrf-token" content="([0-9a-f]+)">')


def csrf_of(client: Any, workflow_id: str) -> str:
    """The CSRF token a workflow page gives this client's session."""
    page = client.get(f"/workflows/{workflow_id}")
    assert page.status_code == 200, page.text
    found = CSRF_INPUT.search(page.text)
    assert found, "no CSRF token in the page"
    return found.group(1)
