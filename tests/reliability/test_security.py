"""Security: no pickle (nor any other code-running decoder) anywhere; user text
reaches SQL only as bound parameters; passwords never printed; ``wf recover``
imports only the modules recorded workflows name, and says which."""

from __future__ import annotations

import ast
import json
import logging
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import wf

from tests.cli.conftest import Wf
from tests.helpers import REPO, child_env, marker_lines, raw_rows, run_app
from tests.reliability.pgcluster import PgCluster, available

pytestmark = pytest.mark.timeout(180)

TOKEN = "x'); DROP TABLE wf.workflows; --"
SECRET = "s3cret"


# -- no pickle -------------------------------------------------------------------------

FORBIDDEN_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "cloudpickle",
    "shelve",
    "marshal",
    "jsonpickle",
    "copyreg",
}
FORBIDDEN_NAMES = {"PickleType", "eval", "exec", "loads_pickle"}


def _sources() -> list[Path]:
    files = sorted((REPO / "runtime").rglob("*.py")) + sorted((REPO / "cli").rglob("*.py"))
    assert len(files) > 10
    return files


def test_no_pickle_or_code_running_decoder_in_the_source() -> None:
    found = []
    for path in _sources():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            mods: list[str] = []
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                mods = [node.module]
            line = getattr(node, "lineno", 0)
            for m in mods:
                if m.split(".")[0] in FORBIDDEN_MODULES:
                    found.append(f"{path.relative_to(REPO)}:{line} imports {m}")
            if isinstance(node, ast.Name | ast.Attribute):
                name = node.id if isinstance(node, ast.Name) else node.attr
                if name in FORBIDDEN_NAMES or name in FORBIDDEN_MODULES:
                    found.append(f"{path.relative_to(REPO)}:{line} uses {name}")
    assert found == []


def test_everything_stored_is_json(launched: str) -> None:
    """Inputs, outputs, errors, step results, messages and events of a
    workflow using every tagged type are stored as JSON text."""
    import datetime as dt
    import decimal
    import uuid

    value = {
        "when": dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
        "day": dt.date(2024, 5, 1),
        "id": uuid.UUID(int=7),
        "price": decimal.Decimal("1.10"),
        "raw": b"\x00\xff",
        "pair": (1, "a"),
        "tags": {"x"},
        "nan": float("nan"),
        3: "int key",
    }
    with wf.set_workflow_id("typed"):
        out = _typed(value)
    assert out["raw"] == b"\x00\xff" and out["pair"] == (1, "a")
    with pytest.raises(ValueError):
        wf.start(_typed_fails).result(timeout=30)
    texts: list[str] = []
    for table, cols in {
        "workflows": ("inputs", "output", "error"),
        "steps": ("output", "error"),
        "events": ("value",),
    }.items():
        for row in raw_rows(launched, table):
            texts += [row[c] for c in cols if row[c] is not None]
    assert len(texts) >= 8
    for t in texts:
        assert isinstance(t, str), t
        json.loads(t)


@wf.step()
def _typed_step(v: Any) -> Any:
    return v


@wf.workflow()
def _typed(v: Any) -> Any:
    got = _typed_step(v)
    wf.send(wf.workflow_id(), got, topic="t")
    wf.set_event("v", wf.recv(topic="t", timeout=10))
    return got


@wf.workflow()
def _typed_fails() -> None:
    raise ValueError("on purpose")


def test_decoding_never_imports_code(tmp_path: Path) -> None:
    """A stored value or error naming a class of a module this process has not
    imported decodes to plain data / a stand-in error; the module is not
    imported (a database row cannot make wf run code)."""
    from wf._records import ErrorInfo
    from wf._serialization import loads, rebuild_error

    assert "tests.apps.chaos_evil" not in sys.modules
    doc = json.dumps({"__wf__": "dataclass", "cls": "tests.apps.chaos_evil:Evil", "v": {"x": 1}})
    assert loads(doc) == {"x": 1}
    err = rebuild_error(ErrorInfo("tests.apps.chaos_evil.EvilError", "boom"))
    assert isinstance(err, wf.WorkflowFailedError) and "boom" in str(err)
    bogus = json.dumps({"__wf__": "dataclass", "cls": "os:system", "v": {"command": "true"}})
    assert loads(bogus) == {"command": "true"}
    assert "tests.apps.chaos_evil" not in sys.modules


# -- SQL gets user text only as bound parameters ------------------------------------------


@pytest.fixture
def sql_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The text of every SQL statement this process sends: wf's own (raw
    driver pools and transactions), through SQLAlchemy (user transactions)
    and through psycopg directly (its LISTEN connection)."""
    import psycopg
    from sqlalchemy.engine import Engine

    statements: list[str] = []

    def before(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    original = psycopg.Cursor.execute

    def execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        statements.append(query if isinstance(query, str) else repr(query))
        return original(self, query, params, **kw)

    # wf's own statements on either driver (sqlite3's cursor cannot be patched)
    from wf._sysdb import driver

    run_on, in_tx = driver.Pool._run_on, driver.RawConnection.execute

    def pool_run_on(self: Any, conn: Any, cur: Any, sql: str, params: Any) -> Any:
        statements.append(sql)
        return run_on(self, conn, cur, sql, params)

    def tx_execute(self: Any, sql: str, params: Any = None) -> Any:
        statements.append(sql)
        return in_tx(self, sql, params)

    sa.event.listen(Engine, "before_cursor_execute", before)
    monkeypatch.setattr(psycopg.Cursor, "execute", execute)
    monkeypatch.setattr(driver.Pool, "_run_on", pool_run_on)
    monkeypatch.setattr(driver.RawConnection, "execute", tx_execute)
    try:
        yield statements
    finally:
        sa.event.remove(Engine, "before_cursor_execute", before)


@wf.workflow(name=f"hostile{TOKEN}")
def hostile(x: str) -> str:
    wf.logger.info("log line %s", x)
    wf.set_event(x, x)
    wf.send(wf.workflow_id(), x, topic=x)
    got = wf.recv(topic=x, timeout=10)
    wf.sleep(0.01)
    return f"{got}|{_echo_step(x)}"


@wf.step(name=f"step{TOKEN}")
def _echo_step(x: str) -> str:
    return x


@wf.workflow()
def waits(topic: str) -> Any:
    return wf.recv(topic=topic, timeout=60)


def test_hostile_text_reaches_sql_only_as_parameters(db_url: str, sql_log: list[str]) -> None:
    queue = f"q{TOKEN}"
    wf.launch(database_url=db_url, queues=[queue])  # an undeclared queue: served, no limits
    wid = TOKEN
    h = wf.start(hostile, TOKEN, workflow_id=wid)
    assert h.result(timeout=60) == f"{TOKEN}|{TOKEN}"
    assert wf.get_event(wid, TOKEN, timeout=5) == TOKEN
    assert wf.get_workflow(wid).name == f"hostile{TOKEN}"
    assert [s.name for s in wf.list_steps(wid)][-1] == f"step{TOKEN}"
    assert any(TOKEN in line.message for line in wf.list_logs(wid))
    assert [w.workflow_id for w in wf.list_workflows(name=f"hostile{TOKEN}")] == [wid]
    assert wf.list_workflows(name=f"x' OR '1'='1{TOKEN}") == []

    # a queue, a dedup ID, a message from outside with an idempotency key
    q = wf.start(waits, TOKEN, workflow_id=f"{TOKEN}-q", queue=queue)
    wf.send(q.workflow_id, "hello", topic=TOKEN, idempotency_key=TOKEN)
    wf.send(q.workflow_id, "again", topic=TOKEN, idempotency_key=TOKEN)  # deduplicated
    assert q.result(timeout=60) == "hello"
    assert [w.workflow_id for w in wf.list_workflows(queue=queue)] == [f"{TOKEN}-q"]

    # management calls
    r = wf.restart(wid, from_step=2, workflow_id=f"{TOKEN}-r")
    assert r.result(timeout=60) == f"{TOKEN}|{TOKEN}"
    c = wf.start(waits, "never", workflow_id=f"{TOKEN}-c")
    wf.cancel(c.workflow_id)
    assert wf.get_workflow(c.workflow_id).status == wf.Status.CANCELLED
    with pytest.raises(wf.WorkflowNotFoundError):
        wf.get_workflow(TOKEN + "' OR '1'='1")

    leaked = [s for s in sql_log if "DROP TABLE" in s]
    assert leaked == [], leaked[:3]
    assert len(sql_log) > 20
    ids = {r["workflow_id"] for r in raw_rows(db_url, "workflows")}
    assert {wid, f"{TOKEN}-q", f"{TOKEN}-r", f"{TOKEN}-c"} <= ids


def test_hostile_text_through_the_cli(db_url: str) -> None:
    cli = Wf(db_url, Path.cwd())
    app = "tests.apps.chaos_badinput"
    cli("start", "--id", TOKEN, f"{app}:talk", TOKEN, TOKEN).ok()
    cli("start", "--detach", "--queue", TOKEN, "--id", f"{TOKEN}-d", f"{app}:echo", "1").ok()
    cli("send", TOKEN, '"late"', "--topic", TOKEN, "--idempotency-key", TOKEN).ok()
    assert cli("status", "--json", TOKEN).ok().json()["output"] == {"topic": TOKEN}
    assert len(cli("steps", "--json", TOKEN).ok().json()) >= 3
    cli("logs", TOKEN).ok()
    assert cli("list", "--json", "--queue", TOKEN).ok().json()[0]["workflow_id"] == f"{TOKEN}-d"
    assert cli("list", "--json", "--name", TOKEN).ok().json() == []
    cli("cancel", f"{TOKEN}-d").ok()
    assert {r["workflow_id"] for r in raw_rows(db_url, "workflows")} == {TOKEN, f"{TOKEN}-d"}


# -- passwords are never printed ---------------------------------------------------------------

DOWN = f"postgresql://postgres:{SECRET}@127.0.0.1:1/x"


@pytest.mark.parametrize(
    "args",
    [
        ["list"],
        ["list", "--json"],
        ["list", "--debug"],
        ["status", "some-id"],
        ["db", "status"],
        ["db", "migrate", "--debug"],
        ["start", "tests.apps.chaos_badinput:echo", "1"],
        ["recover"],
    ],
    ids=lambda a: " ".join(a),
)
def test_password_of_an_unreachable_database_is_never_printed(args: list[str]) -> None:
    cli = Wf(None, Path.cwd())
    res = cli(*args, "--db", DOWN, db=False)
    assert res.code == 5, res.describe()
    assert SECRET not in res.out + res.err, res.describe()
    assert "***" in res.err, res.describe()


@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://postgres@127.0.0.1:1/x?password={SECRET}",
        f"postgresql://127.0.0.1:1/x?sslmode=disable&password={SECRET}",
    ],
)
def test_password_in_the_query_string_is_never_printed(url: str) -> None:
    cli = Wf(None, Path.cwd())
    res = cli("list", "--db", url, db=False)
    assert res.code == 5, res.describe()
    assert SECRET not in res.out + res.err, res.describe()
    res = cli("list", db=False, env={"WF_DATABASE_URL": url})
    assert SECRET not in res.out + res.err, res.describe()


def test_password_never_in_library_errors_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(wf.DatabaseUnreachableError) as info:
        wf.launch(database_url=DOWN)
    chain: list[BaseException] = []
    e: BaseException | None = info.value
    while e is not None:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for err in chain:
        assert SECRET not in str(err) and SECRET not in repr(err), repr(err)
    assert SECRET not in caplog.text


@pytest.fixture(scope="module")
def password_pg() -> Iterator[PgCluster]:
    why = available()
    if why is not None:
        pytest.skip(f"cannot start a private Postgres cluster: {why}")
    cluster = PgCluster(password=SECRET)
    try:
        yield cluster
    finally:
        cluster.destroy()


def test_password_of_a_real_database_is_never_printed(
    password_pg: PgCluster, tmp_path: Path
) -> None:
    """Against a server that needs the password: every command's output, a
    wrong password's error, and a worker's log through an outage."""
    url = password_pg.create_database("secure")
    wrong = url.replace(SECRET, SECRET + "WRONG")
    cli = Wf(None, Path.cwd())
    outputs: list[str] = []

    def run(*args: str, code: int = 0) -> None:
        res = cli(*args, db=False)
        assert res.code == code, res.describe()
        outputs.append(res.out + res.err)

    run("db", "migrate", "--db", url)
    run("db", "status", "--db", url)
    assert "***" in outputs[-1]
    assert SECRET not in wf.schema_status(url).url and "***" in wf.schema_status(url).url
    run("start", "--db", url, "--id", "p-1", "tests.apps.chaos_badinput:echo", "1")
    run("status", "--db", url, "p-1")
    run("list", "--db", url, "--json")
    run("status", "--db", url, "nope", code=4)
    run("list", "--db", wrong, code=5)
    assert "password authentication failed" in outputs[-1]

    log = tmp_path / "worker.log"
    with open(log, "w") as out:
        worker = subprocess.Popen(
            [str(Path(sys.executable).parent / "wf"), "worker", "tests.apps.chaos_badinput"]
            + ["--db", url, "--debug"],
            env=child_env(None),
            cwd=str(REPO),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "wf worker" not in log.read_text():
            assert worker.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        password_pg.stop("immediate")
        time.sleep(4)
        password_pg.start()
        time.sleep(2)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    text = log.read_text()
    assert "***" in text and "unreachable" in text, text
    outputs.append(text)
    for o in outputs:
        assert SECRET not in o.replace(SECRET + "WRONG", "<wrong>"), o
        assert SECRET + "WRONG" not in o, o


# -- wf recover imports only what recorded workflows name -----------------------------------------


def test_recover_imports_only_the_modules_recorded_workflows_name(
    db_url: str, tmp_path: Path
) -> None:
    markers = tmp_path / "markers.txt"
    env = {"WF_TEST_MARKERS": str(markers)}
    crashed = run_app(
        "tests.apps.chaos_recover_a",
        "start",
        "rec-1",
        "job",
        "[3]",
        db_url=db_url,
        env={**env, "WF_TEST_KILL_AT": "in_first"},
    )
    assert crashed.killed, crashed.describe()

    # rows a hostile database writer might plant, under an executor that is gone
    from wf import _root as _executor
    from wf._core import encode_inputs

    wf.configure(database_url=db_url)
    db = _executor.client()
    pwned = tmp_path / "pwned"
    evil = tmp_path / "evil_module.py"
    evil.write_text(f"open({str(tmp_path / 'evil-imported')!r}, 'w').close()\n")
    for wid, name, args in [
        ("planted-os", "os:system", [f"touch {pwned}"]),
        ("planted-path", f"{evil}:f", []),
        ("planted-missing", "tests.apps.no_such_module:f", []),
    ]:
        assert db.insert_workflow(
            workflow_id=wid,
            status="PENDING",
            name=name,
            inputs=encode_inputs(args, {}),
            executor_id="gone-executor",
        )
    wf.shutdown()

    cli = Wf(db_url, Path.cwd())
    res = cli("recover", env=env, timeout=120)
    lines = marker_lines(markers)
    assert any(ln.startswith("imported chaos_recover_a") for ln in lines[1:]), res.describe()
    assert not any("chaos_recover_b" in ln for ln in lines), lines
    assert not (tmp_path / "evil-imported").exists(), (
        "recover imported a file path from the database"
    )
    assert not pwned.exists(), "recover ran os.system"
    assert cli("status", "--json", "rec-1").ok().json()["output"] == 8
    # it says which modules it imported, and what it left
    assert "tests.apps.chaos_recover_a" in res.err, res.describe()
    for wid in ("planted-os", "planted-path", "planted-missing"):
        assert wid in res.err, res.describe()
    assert res.code == 1, res.describe()  # some could not be recovered
