"""The dashboard in a real browser: Debian's headless Chromium driven by
Playwright (no browser download: the system binary), against ``wf ui`` run
as a subprocess on a database of real workflows, two of them still running
in another process. Opens the list, filters it, opens a workflow and checks
its timeline has every step, cancels a running workflow with its button and
sees it CANCELLED, and sees another's cancellation arrive live, without a
reload. Screenshots go to $WF_UI_SCREENSHOTS (docs/screenshots/ for the
README's) or the test's temporary directory."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPO, child_env
from tests.ui.conftest import need_ui_extra

need_ui_extra()
pytest.importorskip("playwright", reason="the browser test needs pip install playwright")


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


CHROMIUM = _chromium()
if CHROMIUM is None:
    _WHY = (
        "no Chromium installed (apt-get install chromium): the browser test drives the system one"
    )
    if os.environ.get("CI"):  # .ci/run installs it: in CI the test must run, never skip
        pytest.fail(_WHY, pytrace=False)
    pytest.skip(_WHY, allow_module_level=True)

RUNNER = """
import sys, wf
from tests.ui import dash
wf.launch()
handles = [wf.start(dash.forever, "x", workflow_id=w) for w in ("forever-1", "forever-2")]
print("started", flush=True)
for h in handles:
    try:
        h.result()
    except Exception as e:
        print(type(e).__name__, flush=True)
"""


@pytest.fixture
def dashboard(sqlite_database: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(the dashboard's URL, the database URL): workflows recorded, two
    running in a runner process, ``wf ui`` serving."""
    import wf

    from tests.ui import dash

    wf.launch(database_url=sqlite_database)
    dash._tries.clear()
    for i in range(4):
        with wf.set_workflow_id(f"pipe-{i}"):
            dash.pipeline(i + 2)
    with wf.set_workflow_id("broken-1"), pytest.raises(ValueError):
        dash.broken(7)
    wf.shutdown()

    env = child_env(sqlite_database)
    runner = subprocess.Popen(
        [sys.executable, "-c", RUNNER], env=env, cwd=str(REPO), stdout=subprocess.PIPE, text=True
    )
    ui = subprocess.Popen(
        [str(Path(sys.executable).parent / "wf"), "ui", "--port", "0"],
        env=env,
        cwd=str(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert runner.stdout is not None and ui.stdout is not None
        assert runner.stdout.readline().strip() == "started"
        line = ui.stdout.readline()
        assert line.startswith("wf ui: serving "), line + (ui.stderr.read() if ui.stderr else "")
        wf.configure(database_url=sqlite_database)
        deadline = time.monotonic() + 30
        while not (wf.list_steps("forever-1") and wf.list_steps("forever-2")):
            assert time.monotonic() < deadline, "the runner never ran its workflows"
            time.sleep(0.05)
        yield line.split()[3], sqlite_database
    finally:
        for proc in (ui, runner):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (ui, runner):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = os.environ.get("WF_UI_SCREENSHOTS")
    path = Path(where) if where else tmp_path / "screenshots"
    if not path.is_absolute():
        path = REPO / path
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_the_dashboard_in_chromium(dashboard: tuple[str, str], shots: Path) -> None:
    import wf
    from playwright.sync_api import expect, sync_playwright

    url, _db = dashboard
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 760})
            page.set_default_timeout(15_000)
            _check(page, url, shots, expect, wf)
        finally:
            browser.close()


def _check(page: Any, url: str, shots: Path, expect: Any, wf: Any) -> None:
    # the list: every top-level workflow, live counts
    page.goto(url + "workflows")
    rows = page.locator("#workflows tbody tr")
    expect(rows).to_have_count(7)
    expect(page.locator('.count[data-status="PENDING"] b')).to_have_text("2")
    expect(page.locator('.count[data-status="SUCCESS"] b')).to_have_text("4")
    page.screenshot(path=str(shots / "list.png"))

    # filter by status, then search an ID
    page.check('input[name="status"][value="ERROR"]')
    page.click("#apply")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-id", "broken-1")
    page.uncheck('input[name="status"][value="ERROR"]')
    page.fill('input[name="q"]', "pipe-3")
    page.click("#apply")
    expect(rows).to_have_count(1)

    # a workflow: its timeline shows every recorded step
    page.click('#workflows a:text("pipe-3")')
    expect(page.locator("#wid")).to_have_text("pipe-3")
    steps = wf.list_steps("pipe-3")
    calls = page.locator("#timeline .tl-row.call")
    expect(calls).to_have_count(len(steps))
    for s in steps:
        row = page.locator(f'#timeline .tl-row.call[data-position="{s.position}"]')
        expect(row.locator(".tl-label")).to_contain_text(s.name)
        box = row.locator(".tl-bar").bounding_box()
        assert box is not None and box["width"] >= 2, f"step {s.position} has no visible bar"
    expect(page.locator('#timeline .tl-row.call[data-position="3"] .attempts')).to_have_text("×2")
    expect(page.locator("#tree")).to_contain_text("pipe-3-5")
    page.screenshot(path=str(shots / "timeline.png"), full_page=True)

    # cancel a running workflow with its button
    page.goto(url + "workflows/forever-1")
    expect(page.locator("#status")).to_have_text("PENDING")
    page.click("#cancel")
    expect(page.locator("#status")).to_have_text("CANCELLED")
    assert wf.get_workflow("forever-1").status == "CANCELLED"
    expect(page.locator("#cancel")).to_have_count(0)
    expect(page.locator("#resume")).to_have_count(1)

    # another one cancelled elsewhere shows up live, without a reload
    page.goto(url + "workflows/forever-2")
    expect(page.locator("#status")).to_have_text("PENDING")
    page.evaluate("window.__same_page = true")
    wf.cancel("forever-2")
    expect(page.locator("#status")).to_have_text("CANCELLED", timeout=10_000)
    assert page.evaluate("window.__same_page") is True
