"""Every route of the dashboard through starlette's TestClient, on both
backends: status codes, the JSON documents, filters and keyset pages, ETags,
the CSRF and read-only refusals and the token and Host checks."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.ui.conftest import Recorded, csrf_of, make_client, need_ui_extra, wait_status

need_ui_extra()


def api(client: Any, path: str, code: int = 200, **params: Any) -> Any:
    res = client.get(path, params=params)
    assert res.status_code == code, f"{path} {params}: {res.status_code} {res.text}"
    assert res.headers["content-type"].startswith("application/json")
    return res.json()


def ids(doc: Any) -> list[str]:
    return [w["workflow_id"] for w in doc["workflows"]]


def test_list_filters_counts_and_keyset_pages(client: Any, recorded: Recorded) -> None:
    import wf

    assert client.get("/", follow_redirects=False).status_code == 307
    doc = api(client, "/api/workflows")
    # top-level only by default (the child "report" of each pipeline is not listed), newest first
    expected = [w.workflow_id for w in wf.list_workflows(top_level=True, limit=None)]
    assert ids(doc) == expected
    assert set(expected) == {*recorded.pipelines, recorded.broken, recorded.running}
    expected_counts = dict.fromkeys(wf.Status.ALL, 0)
    expected_counts.update(PENDING=1, SUCCESS=3, ERROR=1)
    assert doc["counts"] == expected_counts
    assert doc["total"] == 5 and doc["next"] is None
    assert doc["workflows"][0]["child_count"] is not None

    assert ids(api(client, "/api/workflows", status="ERROR")) == ["broken-1"]
    two = api(client, "/api/workflows", status=["ERROR", "pending"])
    assert sorted(ids(two)) == ["broken-1", "forever-1"] and two["total"] == 2
    assert sorted(ids(api(client, "/api/workflows", name="pipeline"))) == recorded.pipelines
    assert ids(api(client, "/api/workflows", name="tests.ui.dash:broken")) == ["broken-1"]
    assert ids(api(client, "/api/workflows", q="ever")) == ["forever-1"]
    assert ids(api(client, "/api/workflows", q="pipe-1")) == ["pipe-1"]
    assert ids(api(client, "/api/workflows", q="%")) == []  # LIKE's wildcard is literal
    assert ids(api(client, "/api/workflows", parent="pipe-0")) == ["pipe-0-5"]
    with_children = ids(api(client, "/api/workflows", children="1"))
    assert {"pipe-0-5", "pipe-1-5", "pipe-2-5"} <= set(with_children)
    assert ids(api(client, "/api/workflows", version="v-none")) == []
    assert ids(api(client, "/api/workflows", partition="p-none")) == []
    assert ids(api(client, "/api/workflows", since="1h", until="1h")) == []
    assert len(ids(api(client, "/api/workflows", since="1h"))) == 5
    # the counts follow the other filters, the status ones aside
    named = api(client, "/api/workflows", name="pipeline", status="ERROR")
    assert named["counts"]["SUCCESS"] == 3 and named["total"] == 0

    # keyset pages: each page starts after the previous one's last row
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = api(client, "/api/workflows", limit=2, **({"before": cursor} if cursor else {}))
        seen += ids(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == expected

    for bad, needle in (
        ({"status": "NOPE"}, "unknown status"),
        ({"since": "yesterday-ish"}, "since"),
        ({"before": "zzz"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"limit": "many"}, "limit"),
    ):
        err = api(client, "/api/workflows", 400, **bad)
        assert needle in err["error"], err
        page = client.get("/workflows", params=bad)
        assert page.status_code == 400 and needle in page.text

    html = client.get("/workflows", params={"status": "SUCCESS"})
    assert html.status_code == 200
    assert "script-src" not in html.headers["content-security-policy"]  # default-src 'self'
    assert html.headers["x-frame-options"] == "DENY"
    assert '<script src="/static/app.js"' in html.text and "<script>" not in html.text
    for wid in recorded.pipelines:
        assert f'data-id="{wid}"' in html.text
    assert 'data-id="broken-1"' not in html.text
    assert 'data-live="/workflows?status=SUCCESS&amp;_partial=1"' in html.text


def test_workflow_page_and_document(client: Any, recorded: Recorded) -> None:
    import wf

    doc = api(client, "/api/workflows/pipe-2")
    steps = wf.list_steps("pipe-2")
    assert doc["status"] == "SUCCESS" and doc["output"]["sum"] == 6
    assert [s["name"] for s in doc["steps"]] == [s.name for s in steps]
    calls = [r for r in doc["timeline"]["rows"] if r["position"] is not None]
    assert [r["position"] for r in calls] == [s.position for s in steps]
    flaky = next(r for r in calls if r["label"] == "flaky")
    assert flaky["attempts"] == 2 and flaky["status"] == "ok"
    for r in doc["timeline"]["rows"]:  # to scale: inside the span
        assert 0 <= r["bar"]["left"] <= 100 and 0 < r["bar"]["left"] + r["bar"]["width"] <= 100.001
    assert [c["workflow_id"] for c in doc["children"]] == ["pipe-2-5"]
    assert [(e["key"], e["value"]) for e in doc["events"]] == [("stage", "done")]
    assert doc["streams"] == [
        {
            "key": "progress",
            "values": [{"done": i, "of": 4} for i in range(1, 5)],
            "more": False,
            "closed": True,
        }
    ]
    assert any("finished with 6" in ln["message"] for ln in doc["logs"])

    broken = api(client, "/api/workflows/broken-1")
    assert broken["error"]["type"].endswith("ValueError")
    assert [r["status"] for r in broken["timeline"]["rows"] if r["position"]] == ["ok", "error"]

    running = api(client, "/api/workflows/forever-1")
    assert running["status"] == "PENDING" and running["running_call"] >= 2
    assert running["timeline"]["rows"][-1]["kind"] == "running"

    page = client.get("/workflows/pipe-2")
    assert page.status_code == 200
    assert page.text.count('class="tl-row call') == len(steps)
    for s in steps:
        assert f'data-position="{s.position}"' in page.text
    assert 'id="restart"' in page.text and 'id="cancel"' not in page.text
    assert 'data-stream="progress"' in page.text and "4 values, closed" in page.text
    assert 'id="cancel"' in client.get("/workflows/forever-1").text
    assert 'id="resume"' in client.get("/workflows/broken-1").text

    assert api(client, "/api/workflows/nope", 404)["error"].startswith("no workflow")
    missing = client.get("/workflows/nope")
    assert missing.status_code == 404 and "no workflow with ID" in missing.text


def test_the_workflow_page_lists_what_its_error_was_raised_from(launched: str) -> None:
    """Issue 17: the error's causes under it, in the document and on the
    page, and under the failed step's error in the steps table (escaped)."""
    import wf

    from tests.ui import dash

    with wf.set_workflow_id("caused-1"), pytest.raises(RuntimeError):
        dash.broken_with_cause(3)
    client = make_client()
    doc = api(client, "/api/workflows/caused-1")
    cause = {"type": "builtins.ValueError", "message": "<bad> input 3"}
    assert doc["error"] == {
        "type": "builtins.RuntimeError",
        "message": "step failed for 3",
        "causes": [cause],
    }
    assert doc["steps"][0]["error"]["causes"] == [cause]
    page = client.get("/workflows/caused-1")
    assert page.status_code == 200
    facts = page.text.split('<dl class="facts">', 1)[1].split("</dl>", 1)[0]
    assert re.search(
        r'<ul class="causes"><li>caused by <b>builtins\.ValueError</b>: &lt;bad&gt; input 3</li></ul>',
        facts,
    ), facts
    steps = page.text.split('id="steps"', 1)[1]
    assert "caused by builtins.ValueError: &lt;bad&gt; input 3" in steps
    assert "<bad>" not in page.text


def test_the_list_shows_its_rows_first_and_counts_in_their_own_fragment(
    client: Any, recorded: Recorded, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wf.cli.ui import data

    monkeypatch.setattr(data.CountsCache, "FRESH", 600.0)  # no clock in this test
    first = client.get("/workflows", params={"status": "ERROR"})
    assert first.status_code == 200 and 'data-id="broken-1"' in first.text
    assert "counting…" in first.text and "data-soon" in first.text  # not counted yet
    assert 'data-live="/workflows?status=ERROR&amp;_partial=counts"' in first.text
    counts = client.get("/workflows", params={"status": "ERROR", "_partial": "counts"})
    assert counts.status_code == 200 and "<table" not in counts.text
    assert re.search(r'data-status="ERROR"[^>]*>\s*<b>1</b>', counts.text, re.S), counts.text
    assert "1 matching" in counts.text
    rows = client.get("/workflows", params={"status": "ERROR", "_partial": "1"})
    assert 'data-id="broken-1"' in rows.text and 'id="counts"' not in rows.text
    # counted a moment ago: the next view has them at once
    again = client.get("/workflows", params={"status": "ERROR"})
    assert "counting…" not in again.text and "1 matching" in again.text


def test_live_fragments_and_etags(client: Any, recorded: Recorded) -> None:
    first = client.get("/workflows/pipe-0", params={"_partial": "1"})
    assert first.status_code == 200 and "<html" not in first.text and 'id="timeline"' in first.text
    etag = first.headers["etag"]
    again = client.get(
        "/workflows/pipe-0", params={"_partial": "1"}, headers={"If-None-Match": etag}
    )
    assert again.status_code == 304 and again.content == b""
    doc = client.get("/api/workflows/pipe-0")
    assert (
        client.get(
            "/api/workflows/pipe-0", headers={"If-None-Match": doc.headers["etag"]}
        ).status_code
        == 304
    )
    # a change shows: a new ETag
    lst = client.get("/workflows", params={"_partial": "1"})
    import wf

    wf.cancel(recorded.running)
    wait_status(recorded.running, "CANCELLED")
    changed = client.get(
        "/workflows", params={"_partial": "1"}, headers={"If-None-Match": lst.headers["etag"]}
    )
    assert changed.status_code == 200 and changed.headers["etag"] != lst.headers["etag"]


def test_queues_and_executors(client: Any, recorded: Recorded) -> None:
    import wf

    from tests.ui import dash

    queue = wf.Queue("ui_q", concurrency=3, partition_concurrency=2)
    queue.enqueue(dash.report, 2, workflow_id="queued-1", partition_key="tenant-a").result(
        timeout=30
    )
    queues = {q["name"]: q for q in api(client, "/api/queues")}
    q = queues["ui_q"]
    assert q["concurrency"] == 3 and q["enqueued"] == 0 and q["running"] == 0
    assert q["partition_concurrency"] == 2
    assert len(q["created_per_minute"]) == 10 and sum(q["created_per_minute"]) == 1
    page = client.get("/queues")
    assert page.status_code == 200 and 'data-queue="ui_q"' in page.text and "<svg" in page.text
    assert "concurrency 2" in page.text
    executors = api(client, "/api/executors")
    mine = [e for e in executors if recorded.running in e["running"]]
    assert len(mine) == 1 and mine[0]["alive"] is True
    page = client.get("/executors")
    assert page.status_code == 200 and recorded.running in page.text


def test_actions_need_the_session_csrf_token(client: Any, recorded: Recorded) -> None:
    import wf

    wid = recorded.running
    token = csrf_of(client, wid)
    # no token, a wrong one, another session's: refused, nothing changed
    assert client.post(f"/api/workflows/{wid}/cancel").status_code == 403
    assert (
        client.post(f"/api/workflows/{wid}/cancel", headers={"X-CSRF-Token": "0" * 64}).status_code
        == 403
    )
    other = make_client()
    assert (
        other.post(f"/api/workflows/{wid}/cancel", headers={"X-CSRF-Token": token}).status_code
        == 403
    )
    form = client.post(f"/workflows/{wid}/cancel", data={"csrf": "bad"}, follow_redirects=False)
    assert form.status_code == 403 and "CSRF" in form.text
    assert wf.get_workflow(wid).status == "PENDING"

    # the form, with the page's token: cancelled, back to the page
    done = client.post(f"/workflows/{wid}/cancel", data={"csrf": token}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith(f"/workflows/{wid}?")
    assert wf.get_workflow(wid).status == "CANCELLED"
    page = client.get(done.headers["location"])
    assert 'id="status">CANCELLED' in page.text and "cancelled" in page.text
    assert wf.get_workflow(wid).cancel_reason == "wf ui"

    hdr = {"X-CSRF-Token": token}
    again = client.post(f"/api/workflows/{wid}/cancel", headers=hdr)
    assert again.status_code == 409 and "has ended" in again.json()["error"]
    # resume leaves it to a worker: back on its queue
    resumed = client.post(f"/api/workflows/{wid}/resume", headers=hdr)
    assert resumed.status_code == 200, resumed.text
    assert resumed.json()["status"] in ("ENQUEUED", "PENDING")
    wf.cancel(wid)
    assert client.post("/api/workflows/pipe-0/resume", headers=hdr).status_code == 409

    restarted = client.post("/api/workflows/pipe-0/restart", headers=hdr, data={"from_step": "3"})
    assert restarted.status_code == 200, restarted.text
    new = restarted.json()
    assert new["forked_from"] == "pipe-0" and new["forked_from_step"] == 3
    assert new["restarted_from"] == "pipe-0" and new["workflow_id"] != "pipe-0"
    form = client.post("/workflows/pipe-1/restart", data={"csrf": token}, follow_redirects=False)
    assert form.status_code == 303
    assert re.match(r"/workflows/[^/?]+\?notice=restarted", form.headers["location"])

    bad = client.post("/api/workflows/pipe-0/restart", headers=hdr, data={"from_step": "x"})
    assert bad.status_code == 400 and "from_step" in bad.json()["error"]
    # past the recorded steps (as `wf restart --from-step` refuses): 400, nothing written
    before = len(wf.list_workflows())
    far = client.post("/api/workflows/pipe-0/restart", headers=hdr, data={"from_step": "99"})
    assert far.status_code == 400 and "recorded step(s)" in far.json()["error"], far.text
    assert len(wf.list_workflows()) == before
    assert client.post("/api/workflows/nope/cancel", headers=hdr).status_code == 404
    assert client.post("/api/workflows/pipe-0/explode", headers=hdr).status_code == 404
    assert client.get("/api/workflows/pipe-0/cancel").status_code == 404  # a GET changes nothing


def test_read_only_has_no_buttons_and_refuses_actions(recorded: Recorded) -> None:
    import wf

    client = make_client(read_only=True)
    page = client.get(f"/workflows/{recorded.running}")
    assert page.status_code == 200 and "read-only" in page.text
    for button in ('id="cancel"', 'id="resume"', 'id="restart"'):
        assert button not in page.text
    token = csrf_of(client, recorded.running)
    res = client.post(f"/api/workflows/{recorded.running}/cancel", headers={"X-CSRF-Token": token})
    assert res.status_code == 403 and "read-only" in res.json()["error"]
    assert wf.get_workflow(recorded.running).status == "PENDING"


@pytest.mark.parametrize("path", ["/workflows", "/api/workflows", "/static/app.js", "/nope"])
def test_token_is_checked_on_every_request(launched: str, path: str) -> None:
    client = make_client(token="s3cret")
    refused = client.get(path)
    assert refused.status_code == 401 and "token" in refused.text
    assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
    allowed = client.get(path, headers={"Authorization": "Bearer s3cret"})
    assert allowed.status_code == (404 if path == "/nope" else 200)
    # ?token= once: a cookie, and the address bar loses the token
    first = client.get(path, params={"token": "s3cret", "status": "ERROR"}, follow_redirects=False)
    assert first.status_code == 303 and "token" not in first.headers["location"]
    assert "status=ERROR" in first.headers["location"]
    assert client.get(path).status_code == (404 if path == "/nope" else 200)  # the cookie
    assert make_client(token="s3cret").get(path, params={"token": "nope"}).status_code == 401


def test_token_guards_actions_too(recorded: Recorded) -> None:
    import wf

    client = make_client(token="s3cret")
    res = client.post(f"/api/workflows/{recorded.running}/cancel", headers={"X-CSRF-Token": "x"})
    assert res.status_code == 401
    assert wf.get_workflow(recorded.running).status == "PENDING"


def test_without_a_token_only_loopback_host_names_are_served(recorded: Recorded) -> None:
    from starlette.testclient import TestClient
    from wf.cli.ui.app import create_app

    app = create_app()
    for base, code in (
        ("http://127.0.0.1:8765", 200),
        ("http://localhost:8765", 200),
        ("http://[::1]:8765", 200),
        ("http://evil.example:8765", 403),
        ("http://10.0.0.5:8765", 403),
    ):
        assert TestClient(app, base_url=base).get("/api/workflows").status_code == code, base


def test_keyset_pages_hold_across_equal_creation_times(
    client: Any, recorded: Recorded, launched: str
) -> None:
    """Rows created in the same millisecond: the cursor's workflow_id breaks
    the tie, so paging sees each once, in (created_at, workflow_id) order."""
    import sqlalchemy as sa

    from tests.helpers import _engine

    url = launched
    table = "workflows" if url.startswith("sqlite") else "wf.workflows"
    eng = _engine(url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text(f"UPDATE {table} SET created_at = 1700000000000"))
    finally:
        eng.dispose()
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = api(client, "/api/workflows", limit=2, **({"before": cursor} if cursor else {}))
        seen += ids(page)
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == sorted({*recorded.pipelines, recorded.broken, recorded.running}, reverse=True)
    assert cursor is None
