"""The bad-input catalogue (docs/reliability.md has the table): each hostile or
unlucky input, on both backends, and what the user gets.

Through the library: a WfError subclass raised before anything is written
(or a recorded ERROR when the workflow itself produced the bad value), never
a hang, never a workflow left PENDING. Through the CLI: one clear line on
stderr, the exit code of SPEC §5, and nothing written to the database.

The plain SPEC §5 list is tested in tests/cli/; the CLI cases here are the
extra catalogue (plus a few §5 ones the table lists)."""

from __future__ import annotations

import random
import string
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import wf

from tests.apps import chaos_badinput as app
from tests.cli.conftest import Result, Wf, database_untouched
from tests.helpers import marker_lines, raw_rows

pytestmark = pytest.mark.timeout(180)

APP = "tests.apps.chaos_badinput"
DROP = "'; DROP TABLE wf.workflows; --"


def _workflow_rows(db_url: str) -> list[dict[str, Any]]:
    return raw_rows(db_url, "workflows")


def _within(seconds: float, fn: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run ``fn`` in a thread; fail the test if it has not returned (or raised)
    after ``seconds`` — a hang is the one unacceptable answer."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        pytest.fail(f"no answer after {seconds}s: the call hangs")
    return box.get("value"), box.get("error")


def _random_text(n: int) -> str:
    """Text that does not compress (an index entry of its full size)."""
    rng = random.Random(n)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(n))


def _nested(depth: int) -> Any:
    v: Any = []
    for _ in range(depth - 1):
        v = [v]
    return v


# -- the library -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [object(), {1, object()}, lambda: 1, threading.Lock()],
    ids=["object", "set-of-object", "lambda", "lock"],
)
def test_unserializable_args_rejected_before_anything_is_written(launched: str, bad: Any) -> None:
    with pytest.raises(wf.SerializationError, match="cannot store"):
        wf.start(app.echo, bad)
    with pytest.raises(wf.SerializationError):
        app.echo(bad)
    assert _workflow_rows(launched) == []


def test_ten_megabyte_string_round_trips(launched: str) -> None:
    big = "x" * 10_000_000 + "é"
    started = time.monotonic()
    handle = wf.start(app.echo, big)
    assert handle.result(timeout=120) == big
    assert wf.get_workflow(handle.workflow_id).inputs == {"args": [big], "kwargs": {}}
    assert time.monotonic() - started < 60


def test_ten_thousand_nested_lists_rejected_cleanly(launched: str) -> None:
    with pytest.raises(wf.SerializationError, match="nested"):
        wf.start(app.echo, _nested(10_000))
    assert _workflow_rows(launched) == []
    # nesting within the limit is fine
    assert app.echo(_nested(150)) == _nested(150)


def test_bytes_that_are_not_utf8_round_trip(launched: str) -> None:
    raw = bytes(range(256))
    assert app.echo(raw) == raw
    assert app.echo({"k": b"\xff\xfe\x00"}) == {"k": b"\xff\xfe\x00"}


def test_text_with_lone_surrogates_rejected_before_anything_is_written(launched: str) -> None:
    """Undecodable bytes smuggled into a str (Python's surrogateescape, as in
    a non-UTF-8 command-line argument) cannot be stored as UTF-8 text: a
    SerializationError, not the database driver's UnicodeEncodeError."""
    bad = b"caf\xe9".decode("utf-8", "surrogateescape")
    _, err = _within(30, lambda: wf.start(app.echo, bad))
    assert isinstance(err, wf.SerializationError), repr(err)
    assert _workflow_rows(launched) == []


def test_error_message_with_undecodable_bytes_is_recorded(launched: str) -> None:
    """An exception whose message holds undecodable bytes (a file name from
    os.listdir, say) still ends the workflow in ERROR: its final write must
    not fail and leave it PENDING for ever."""
    handle = wf.start(app.raises_undecodable)
    _, err = _within(30, lambda: handle.result(timeout=20))
    assert isinstance(err, ValueError), repr(err)
    info = wf.get_workflow(handle.workflow_id)
    assert info.status == wf.Status.ERROR, info
    assert info.error is not None and "caf" in info.error.message
    # the same from a step, caught by the workflow; and in a durable log line
    assert wf.start(app.survives_undecodable_step).result(timeout=20).startswith("caught: ")
    assert wf.start(app.logs_undecodable).result(timeout=20) == "ok"


@pytest.mark.parametrize("status", ["BOGUS", "", "pending;", "SUCCESS' OR '1'='1"])
def test_unknown_status_names(launched: str, status: str) -> None:
    with pytest.raises(wf.ConfigurationError, match="unknown status"):
        wf.list_workflows(status=status)
    assert wf.list_workflows(status=["success", "Error"]) == []  # case does not matter


def test_sql_metacharacters_are_just_text(launched: str) -> None:
    with wf.set_workflow_id(DROP):
        assert app.talk(DROP, DROP) == {"topic": DROP}
    info = wf.get_workflow(DROP)
    assert info.workflow_id == DROP and info.status == wf.Status.SUCCESS
    assert wf.get_event(DROP, DROP, timeout=0) == {"topic": DROP}
    assert wf.list_workflows(name="x' OR '1'='1") == []
    assert [w.workflow_id for w in wf.list_workflows(name="talk")] == [DROP]
    assert len(_workflow_rows(launched)) == 1


def test_ten_thousand_character_id_answers_promptly(launched: str) -> None:
    """An ID of 10,000 random characters (too big for a Postgres index entry
    when it does not compress) either works, or is refused with a clear
    WfError before anything is written; it must not hang retrying."""
    long_id = _random_text(10_000)

    def run() -> Any:
        with wf.set_workflow_id(long_id):
            return app.echo(7)

    value, err = _within(30, run)
    if err is None:
        assert value == 7
        assert wf.get_workflow(long_id).status == wf.Status.SUCCESS
    else:
        assert isinstance(err, wf.WfError), repr(err)
        assert "long" in str(err) or "10000" in str(err) or "10,000" in str(err), str(err)
        assert _workflow_rows(launched) == []
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow(long_id + "x")


def test_module_that_raises_on_import(launched: str) -> None:
    from wf._loader import import_module

    with pytest.raises(wf.ConfigurationError, match="chaos_broken refuses to import"):
        import_module("tests.apps.chaos_broken")
    with pytest.raises(wf.ConfigurationError, match="no module named"):
        import_module("tests.apps.no_such_module_here")


def test_workflow_returning_an_unserializable_value_ends_in_error(launched: str) -> None:
    handle = wf.start(app.returns_unserializable)
    with pytest.raises(wf.SerializationError):
        handle.result(timeout=30)
    info = wf.get_workflow(handle.workflow_id)
    assert info.status == wf.Status.ERROR
    assert info.error is not None and "SerializationError" in info.error.type


def test_step_returning_an_unserializable_value(
    launched: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step ran (once); its result cannot be recorded, so the call raises
    SerializationError in the workflow, which may catch it."""
    markers = tmp_path / "markers.txt"
    monkeypatch.setenv("WF_TEST_MARKERS", str(markers))
    with pytest.raises(wf.SerializationError):
        wf.start(app.uses_bad_step).result(timeout=30)
    assert wf.start(app.survives_bad_step).result(timeout=30) == "caught: SerializationError"
    assert marker_lines(markers) == ["step_returning_unserializable"] * 2
    failed = [w for w in wf.list_workflows(name="uses_bad_step")]
    assert [s.error.type.rpartition(".")[2] for s in wf.list_steps(failed[0].workflow_id)] == [
        "SerializationError"
    ]


def test_plain_python_recursion_in_a_workflow(launched: str) -> None:
    handle = wf.start(app.python_recursion)
    with pytest.raises(RecursionError):
        handle.result(timeout=30)
    assert wf.get_workflow(handle.workflow_id).status == wf.Status.ERROR


def test_recursion_bomb_ends_and_leaves_nothing_pending(launched: str) -> None:
    """A workflow that calls itself for ever (each call a child workflow)
    ends in ERROR promptly, and every workflow it created has ended: none is
    left PENDING for recovery to run again (which would start the bomb anew
    from the middle, for ever)."""
    _, err = _within(60, lambda: app.bomb())
    assert isinstance(err, RecursionError | wf.WfError), repr(err)
    time.sleep(1.0)  # anything still running in the background has ended
    rows = _workflow_rows(launched)
    pending = [r["workflow_id"][-40:] for r in rows if r["status"] not in ("SUCCESS", "ERROR")]
    assert pending == [], f"{len(pending)} of {len(rows)} bomb workflows not ended"
    # a restarted process recovers what this one left: nothing
    before = len(rows)
    wf.shutdown()
    wf.launch(database_url=launched)
    time.sleep(2.0)
    assert len(_workflow_rows(launched)) == before, "recovery ran the bomb again"


# -- the command line ----------------------------------------------------------------------


@pytest.fixture
def cli(db_url: str) -> Wf:
    return Wf(db_url, Path.cwd())


def _one_line(res: Result, code: int, *needles: str) -> None:
    assert res.code == code, res.describe()
    lines = [ln for ln in res.err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"expected one line on stderr:\n{res.describe()}"
    assert "Traceback" not in res.err, res.describe()
    for n in needles:
        assert n in lines[0], f"{n!r} not in the error line:\n{res.describe()}"


BAD_START = {
    "unknown module": (["tests.apps.no_such_module:f"], "no module named"),
    "unknown function": ([f"{APP}:nope"], "nope"),
    "not a workflow": ([f"{APP}:plain", "1"], "not a workflow"),
    "a step, not a workflow": ([f"{APP}:plain_step", "1"], "not a workflow"),
    "module raises on import": (["tests.apps.chaos_broken:x"], "chaos_broken refuses to import"),
    "too many args": ([f"{APP}:echo", "1", "2", "3"], "argument"),
    "kwargs not JSON": ([f"{APP}:echo", "--kwargs", "{x"], "--kwargs"),
    "kwargs not an object": ([f"{APP}:echo", "--kwargs", "[1]"], "--kwargs"),
    "10,000 nested lists": ([f"{APP}:echo", "[" * 10_000 + "]" * 10_000], "nested"),
    "non-UTF-8 bytes": ([f"{APP}:echo", b"caf\xe9".decode("utf-8", "surrogateescape")], "UTF-8"),
    "malformed timeout": ([f"{APP}:echo", "--timeout", "soonish"], "soonish"),
}


@pytest.mark.parametrize("case", list(BAD_START))
def test_cli_start_bad_input_is_one_line_exit_2_and_writes_nothing(
    cli: Wf, db_url: str, case: str
) -> None:
    args, needle = BAD_START[case]
    res = cli("start", *args)
    _one_line(res, 2, needle)
    assert database_untouched(db_url), f"{case}: the database was written to"


BAD_ANYWHERE = {
    "malformed URL": (["list", "--db", "nonsense"], 2, "malformed database URL"),
    "unparsable URL": (["list", "--db", "postgresql://u:p@[::1:1/x"], 2, "URL"),
    "unknown scheme": (["list", "--db", "mysql://localhost/x"], 2, "mysql"),
    "unknown status": (["list", "--status", "BOGUS"], 2, "BOGUS"),
    "malformed time": (["list", "--since", "yesterdayish"], 2, "yesterdayish"),
    "unknown ID": (["status", "no-such-workflow"], 4, "no-such-workflow"),
    "SQL in an unknown ID": (["status", DROP], 4, "DROP TABLE"),
    "10,000-character unknown ID": (["status", _random_text(10_000)], 4, "no workflow"),
    "unknown ID to cancel": (["cancel", "nope"], 4, "nope"),
    "unknown log level": (["logs", "--level", "LOUD"], 2, "LOUD"),
}


@pytest.mark.parametrize("case", list(BAD_ANYWHERE))
def test_cli_bad_input_anywhere(cli: Wf, db_url: str, case: str) -> None:
    args, code, needle = BAD_ANYWHERE[case]
    if code == 4:  # an unknown ID needs a database to be unknown in (reads create none)
        cli("db", "migrate").ok()
    res = cli(*args)
    _one_line(res, code, needle)
    assert _rows_or_none(db_url) in (None, []), case


def _rows_or_none(db_url: str) -> list[dict[str, Any]] | None:
    if database_untouched(db_url):
        return None
    return _workflow_rows(db_url)


def test_cli_huge_argument_round_trips(cli: Wf) -> None:
    """One command-line argument can be at most 128 KiB on Linux (larger
    values go through the API); 100,000 characters work."""
    big = "y" * 100_000
    res = cli("start", "--json", f"{APP}:echo", big, timeout=120).ok()
    assert res.json()["output"] == big


def test_cli_sql_metacharacters_in_ids_and_names(cli: Wf, db_url: str) -> None:
    res = cli("start", "--json", "--id", DROP, f"{APP}:echo", DROP).ok()
    assert res.json()["workflow_id"] == DROP and res.json()["output"] == DROP
    assert cli("status", "--json", DROP).ok().json()["status"] == "SUCCESS"
    assert cli("list", "--json", "--name", "x' OR '1'='1").ok().json() == []
    assert cli("list", "--json", "--queue", DROP).ok().json() == []
    assert [w["workflow_id"] for w in cli("list", "--json").ok().json()] == [DROP]


def test_cli_ten_thousand_character_id(cli: Wf, db_url: str) -> None:
    long_id = _random_text(10_000)
    res = cli("start", "--json", "--id", long_id, f"{APP}:echo", "1", timeout=60)
    if res.code == 0:
        assert res.json()["workflow_id"] == long_id
        assert cli("status", "--json", long_id).ok().json()["status"] == "SUCCESS"
    else:
        _one_line(res, 2, "ID")
        assert _rows_or_none(db_url) in (None, [])


@pytest.mark.parametrize(
    "target, code, kind",
    [
        ("returns_unserializable", 1, "SerializationError"),
        ("uses_bad_step", 1, "SerializationError"),
        ("python_recursion", 1, "RecursionError"),
    ],
)
def test_cli_workflow_that_fails_on_its_own_bad_value(
    cli: Wf, target: str, code: int, kind: str
) -> None:
    res = cli("start", "--json", f"{APP}:{target}", timeout=60)
    assert res.code == code, res.describe()
    doc = res.json()
    assert doc["status"] == "ERROR" and kind in doc["error"]["type"], doc


def test_cli_recursion_bomb(cli: Wf, db_url: str) -> None:
    res = cli("start", "--json", f"{APP}:bomb", timeout=120)
    assert res.code == 1, res.describe()
    rows = _workflow_rows(db_url)
    pending = [r for r in rows if r["status"] not in ("SUCCESS", "ERROR")]
    assert pending == [], f"{len(pending)} of {len(rows)} left {pending[0]['status']}"
