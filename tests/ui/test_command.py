"""``wf ui`` as a command, in real processes: it serves on a port (0: any
free one, printed), refuses to open itself to the network without a token,
and fails with one line (creating nothing) on bad options or no database."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.cli.conftest import Wf
from tests.ui.conftest import need_ui_extra

need_ui_extra()


@pytest.fixture
def cwd() -> Path:
    return Path.cwd()


@pytest.fixture
def wf_cli(sqlite_database: str, cwd: Path) -> Wf:
    """SQLite: what is tested is the command's options and process; the
    routes are tested on both backends in test_routes.py."""
    return Wf(sqlite_database, cwd)


def serve(
    wf_cli: Wf, *args: str, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    """Start ``wf ui --port 0 ARGS``; return it and the URL it printed."""
    proc = wf_cli.spawn("ui", "--port", "0", *args, env=env)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("wf ui: serving "):
        proc.kill()
        raise AssertionError(f"no start line: {line!r}\n{wf_cli.finish(proc).describe()}")
    return proc, line.split()[3]


def stop(wf_cli: Wf, proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    res = wf_cli.finish(proc, timeout=30)
    assert res.code == 0, res.describe()
    assert "Traceback" not in res.err, res.describe()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_serves_the_database_and_stops_on_ctrl_c(wf_cli: Wf) -> None:
    wf_cli("db", "migrate").ok()
    proc, url = serve(wf_cli)
    try:
        assert url.startswith("http://127.0.0.1:")
        code, body = get(url + "api/workflows")
        assert code == 200 and json.loads(body)["workflows"] == []
        code, body = get(url + "static/app.css")
        assert code == 200 and "timeline" in body
    finally:
        stop(wf_cli, proc)


def test_a_token_guards_every_request(wf_cli: Wf) -> None:
    wf_cli("db", "migrate").ok()
    proc, url = serve(wf_cli, "--host", "0.0.0.0", env={"WF_UI_TOKEN": "tok-123"})
    try:
        port = url.rsplit(":", 1)[1].strip("/")
        base = f"http://127.0.0.1:{port}/"
        assert get(base + "api/workflows")[0] == 401
        assert get(base + "api/workflows", {"Authorization": "Bearer tok-123"})[0] == 200
    finally:
        stop(wf_cli, proc)


def test_bad_options_are_one_line_and_touch_nothing(wf_cli: Wf, cwd: Path) -> None:
    wf_cli("ui", "--host", "0.0.0.0").expect(2).one_line_error("--token", "0.0.0.0")
    wf_cli("ui", "--host", "::", "--token", " ").expect(2).one_line_error("must not be empty")
    # no database: exit 5, nothing created
    db = cwd / "none.sqlite"
    res = wf_cli("ui", "--db", f"sqlite:///{db}")
    res.expect(5).one_line_error()
    assert not db.exists()
    # the port is taken: one line
    wf_cli("db", "migrate").ok()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        wf_cli("ui", "--port", str(port)).expect(1).one_line_error(f"127.0.0.1:{port}")


def test_help_does_not_import_the_web_stack() -> None:
    code = (
        "import sys\n"
        "from wf.cli.main import main\n"
        "sys.argv = ['wf', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'jinja2') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "HEAVY []" in res.stdout, res.stdout + res.stderr
