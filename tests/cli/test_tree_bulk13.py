"""wf tree, and wf cancel / wf resume by filter with their confirmation (issue 13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import WORKFLOW_KEYS, Wf
from tests.cli.test_show13 import H2, family, in_terminal


@pytest.fixture
def db_url(sqlite_database: str) -> str:
    """SQLite only: what these tests check is the command line's rendering
    and selection, the same on both backends (the records and filters behind
    them are tested on both in tests/integration/test_operator_records.py)."""
    return sqlite_database


def test_tree_piped_json_and_ids(wf_cli: Wf) -> None:
    wid = family(wf_cli)
    out = wf_cli("tree", wid).ok().out
    lines = out.splitlines()
    assert [ln.split()[:3] for ln in lines] == [
        [wid, "SUCCESS", "family"],
        ["fam-3", "SUCCESS", "kid"],
        ["fam-4", "SUCCESS", "kid"],
        ["fam-5", "SUCCESS", "nest"],
        ["fam-5-1", "SUCCESS", "nest"],
    ]
    assert [len(ln) - len(ln.lstrip()) for ln in lines] == [0, 2, 2, 2, 4]
    doc = wf_cli("tree", "-o", "json", wid).ok().json()
    assert WORKFLOW_KEYS <= set(doc) and doc["workflow_id"] == wid
    assert [c["workflow_id"] for c in doc["children"]] == ["fam-3", "fam-4", "fam-5"]
    assert doc["children"][2]["children"][0]["workflow_id"] == "fam-5-1"
    assert doc["children"][0]["children"] == []
    assert wf_cli("tree", "-o", "ids", wid).ok().out.split() == [
        wid,
        "fam-3",
        "fam-4",
        "fam-5",
        "fam-5-1",
    ]
    rows = wf_cli("tree", "-o", "jsonl", wid).ok().out.splitlines()
    assert len(rows) == 5
    # a leaf is a tree of one
    assert wf_cli("tree", "fam-4").ok().out.split()[:2] == ["fam-4", "SUCCESS"]
    wf_cli("tree", "ghost").expect(4).one_line_error("ghost")


def test_tree_on_a_terminal_draws_guides(wf_cli: Wf) -> None:
    wid = family(wf_cli)
    code, screen = in_terminal(wf_cli, "tree", wid)
    assert code == 0, screen
    assert "├── fam-3" in screen and "└── fam-5" in screen and "    └── fam-5-1" in screen


def test_tree_is_cut_below_its_depth_guard(wf_cli: Wf) -> None:
    wf_cli("start", "--id", "deep", f"{H2}:nest", "55").ok()
    lines = wf_cli("tree", "deep").ok().out.splitlines()
    assert len(lines) == 1 + 50 + 1  # the root, 50 levels, and the note
    assert "not shown" in lines[-1]


def _enqueue(wf_cli: Wf, n: int, name: str = "kid") -> list[str]:
    """n workflows waiting on a queue no worker serves."""
    return [
        wf_cli("start", "--detach", "-q", "h2_unserved", f"{H2}:{name}", str(i)).ok().out.strip()
        for i in range(n)
    ]


def test_bulk_cancel_needs_yes_without_a_terminal(wf_cli: Wf) -> None:
    ids = _enqueue(wf_cli, 3)
    wf_cli("cancel", "--status", "ENQUEUED").expect(2).one_line_error("3 workflows", "--yes")
    assert all(wf_cli.status(w)["status"] == "ENQUEUED" for w in ids)  # nothing changed
    res = wf_cli("cancel", "--name", "kid", "--queue", "h2_unserved", "--yes").ok()
    assert res.out.strip() == "cancelled 3 workflows"
    for w in ids:
        info = wf_cli.status(w)
        assert info["status"] == "CANCELLED"
        assert info["cancel_reason"].startswith("wf cancel by ") and "@" in info["cancel_reason"]
    res = wf_cli("cancel", "--name", "kid", "--yes").ok()  # nothing left to cancel
    assert res.out == "" and "no workflows match" in res.err


def test_bulk_cancel_json_ids_and_bad_input(wf_cli: Wf) -> None:
    ids = _enqueue(wf_cli, 2)
    docs = wf_cli("cancel", "-s", "ENQUEUED", "--yes", "--json").ok().json()
    assert sorted(d["workflow_id"] for d in docs) == sorted(ids)
    assert all(d["status"] == "CANCELLED" for d in docs)
    more = _enqueue(wf_cli, 2)
    assert sorted(wf_cli("cancel", "-s", "ENQUEUED", "-y", "-o", "ids").ok().out.split()) == sorted(
        more
    )
    fresh = _enqueue(wf_cli, 1)
    wf_cli("cancel", fresh[0], "--status", "ENQUEUED").expect(2).one_line_error("not both")
    wf_cli("cancel").expect(2).one_line_error("IDs")
    wf_cli("cancel", "--status", "SUCCESS", "--yes").expect(2).one_line_error("SUCCESS")
    wf_cli("cancel", "--since", "yesterday-ish", "--yes").expect(2).one_line_error("--since")
    wf_cli("cancel", "--queue", "", "--yes").expect(2).one_line_error("--queue")
    assert wf_cli.status(fresh[0])["status"] == "ENQUEUED"
    # by ID, as before: one line each
    assert wf_cli("cancel", fresh[0]).ok().out.strip() == f"cancelled {fresh[0]}"


def test_bulk_cancel_asks_on_a_terminal(wf_cli: Wf) -> None:
    ids = _enqueue(wf_cli, 2)
    code, screen = in_terminal(wf_cli, "cancel", "--status", "ENQUEUED", answer="n")
    assert code == 1 and "cancel 2 workflows? [y/N]" in screen and "nothing cancelled" in screen
    assert all(wf_cli.status(w)["status"] == "ENQUEUED" for w in ids)
    code, screen = in_terminal(wf_cli, "cancel", "--status", "ENQUEUED", answer="y")
    assert code == 0 and "cancelled 2 workflows" in screen, screen
    assert all(wf_cli.status(w)["status"] == "CANCELLED" for w in ids)


def test_bulk_resume_detach_leaves_them_to_a_worker(wf_cli: Wf) -> None:
    ids = _enqueue(wf_cli, 3)
    wf_cli("cancel", "-s", "ENQUEUED", "--yes").ok()
    wf_cli("resume", "--status", "CANCELLED", "--detach").expect(2).one_line_error("--yes")
    res = wf_cli("resume", "--status", "CANCELLED", "--detach", "--yes").ok()
    assert sorted(res.out.split()) == sorted(ids) and "resumed 3 workflows" in res.err
    assert all(wf_cli.status(w)["status"] == "ENQUEUED" for w in ids)
    wf_cli("resume", "--status", "SUCCESS", "--yes").expect(2).one_line_error("SUCCESS")
    wf_cli("resume", ids[0], "--name", "kid").expect(2).one_line_error("not both")


def test_bulk_resume_runs_them_here(wf_cli: Wf, marker: Path) -> None:
    procs = [wf_cli.spawn("start", "--id", f"g{i}", f"{H2}:gated", str(marker)) for i in range(2)]
    for i, p in enumerate(procs):
        wf_cli.wait_status(f"g{i}", "PENDING", proc=p)
    wf_cli("cancel", "--name", "gated", "--yes").ok()
    for p in procs:
        assert wf_cli.finish(p).code == 3
    marker.touch()
    docs = wf_cli("resume", "--name", "gated", "--yes", "-o", "json").ok().json()
    assert sorted(d["workflow_id"] for d in docs) == ["g0", "g1"]
    assert all(d["status"] == "SUCCESS" for d in docs)
