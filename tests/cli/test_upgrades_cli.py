"""`wf replay` and the patch records in `wf steps` (SPEC §3.1, §5): a team
checks recorded workflows against a new release before deploying it."""

from __future__ import annotations

from tests.cli.conftest import Wf

FLOW = "tests.apps.upgrades:flow"


def _code(release: str) -> dict[str, str]:
    return {"WF_TEST_CODE": release}


def test_replay_reports_agreement_and_divergence_per_release(wf_cli: Wf) -> None:
    wf_cli("start", FLOW, "1", "--id", "c1", env=_code("v1")).ok()
    wf_cli("start", FLOW, "1", "--id", "c2", env=_code("v2")).ok()
    steps = wf_cli("steps", "c2", "--json").ok().json()
    assert [(s["kind"], s["name"]) for s in steps][1] == ("patch", "use-b2")
    before = wf_cli("list", "--json").ok().json()

    both = wf_cli("replay", "c1", "c2", "--json", env=_code("v2")).ok().json()
    assert [(d["workflow_id"], d["ok"], d["complete"]) for d in both] == [
        ("c1", True, True),
        ("c2", True, True),
    ]
    bad = wf_cli("replay", "c1", env=_code("bad")).expect(1)
    assert "DIVERGES" in bad.out and "position 2" in bad.out and "wf.patched" in bad.out
    by_status = wf_cli("replay", "--status", "SUCCESS", "-o", "json", env=_code("v4")).expect(1)
    verdicts = {d["workflow_id"]: d["ok"] for d in by_status.json()}
    assert verdicts == {"c1": False, "c2": True}
    assert wf_cli("list", "--json").ok().json() == before  # nothing written


def test_replay_bad_input(wf_cli: Wf) -> None:
    wf_cli("start", FLOW, "1", "--id", "c1", env=_code("v1")).ok()
    wf_cli("replay", "nope").expect(4)
    wf_cli("replay").expect(2).one_line_error("replay")
    wf_cli("resume", "c1", "--version", " ").expect(2).one_line_error("--version")
    wf_cli("restart", "c1", "--version", "a b").expect(2).one_line_error("--version")
    assert len(wf_cli("list", "--json").ok().json()) == 1  # nothing started
