"""Where the system database is (SPEC §2): --db > WF_DATABASE_URL >
[tool.wf] database_url in ./pyproject.toml > sqlite:///wf.sqlite; malformed
URLs are a ConfigurationError; passwords are never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
import wf
from wf._config import DEFAULT_URL, display_url, mask_text, mask_url, resolve


def write_pyproject(directory: Path, body: str) -> None:
    (directory / "pyproject.toml").write_text(body, encoding="utf-8")


# The autouse fixture in conftest.py clears WF_* and puts us in an empty CWD.


def test_default_is_a_sqlite_file_in_the_current_directory() -> None:
    assert DEFAULT_URL == "sqlite:///wf.sqlite"
    cfg = resolve()
    assert cfg.database_url == "sqlite:///wf.sqlite"
    assert cfg.app_database_url == cfg.database_url


def test_pyproject_beats_default() -> None:
    write_pyproject(Path.cwd(), '[tool.wf]\ndatabase_url = "sqlite:///from-pyproject.sqlite"\n')
    assert resolve().database_url == "sqlite:///from-pyproject.sqlite"


def test_environment_beats_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    write_pyproject(Path.cwd(), '[tool.wf]\ndatabase_url = "sqlite:///from-pyproject.sqlite"\n')
    monkeypatch.setenv("WF_DATABASE_URL", "sqlite:///from-env.sqlite")
    assert resolve().database_url == "sqlite:///from-env.sqlite"


def test_argument_beats_environment_and_pyproject(monkeypatch: pytest.MonkeyPatch) -> None:
    write_pyproject(Path.cwd(), '[tool.wf]\ndatabase_url = "sqlite:///from-pyproject.sqlite"\n')
    monkeypatch.setenv("WF_DATABASE_URL", "sqlite:///from-env.sqlite")
    assert resolve("sqlite:///from-arg.sqlite").database_url == "sqlite:///from-arg.sqlite"


def test_only_the_pyproject_of_the_current_directory_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_pyproject(tmp_path, '[tool.wf]\ndatabase_url = "sqlite:///parent.sqlite"\n')
    child = tmp_path / "child"
    child.mkdir()
    monkeypatch.chdir(child)
    assert resolve().database_url == DEFAULT_URL


def test_pyproject_without_a_wf_section_gives_default() -> None:
    write_pyproject(
        Path.cwd(), '[project]\nname = "x"\n\n[tool.other]\ndatabase_url = "sqlite:///no.sqlite"\n'
    )
    assert resolve().database_url == DEFAULT_URL


def test_app_database_defaults_to_system_database_and_has_its_own_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("WF_DATABASE_URL", "sqlite:///sys.sqlite")
    assert resolve().app_database_url == "sqlite:///sys.sqlite"
    write_pyproject(Path.cwd(), '[tool.wf]\napp_database_url = "sqlite:///app-pyproject.sqlite"\n')
    assert resolve().app_database_url == "sqlite:///app-pyproject.sqlite"
    monkeypatch.setenv("WF_APP_DATABASE_URL", "sqlite:///app-env.sqlite")
    assert resolve().app_database_url == "sqlite:///app-env.sqlite"
    assert (
        resolve(app_database_url="sqlite:///app-arg.sqlite").app_database_url
        == "sqlite:///app-arg.sqlite"
    )


def test_absolute_sqlite_path_has_four_slashes(tmp_path: Path) -> None:
    url = "sqlite:///" + str(tmp_path / "x.sqlite")
    assert url.startswith("sqlite:////")
    assert resolve(url).database_url == url


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres@127.0.0.1:5432/postgres",
        "postgresql://user:secret@db.example.com/app",
        "postgres://user@localhost/app",
    ],
)
def test_postgres_urls_are_accepted(url: str) -> None:
    cfg = resolve(url)
    # whatever driver suffix is used internally, it shows as the URL given (masked)
    assert display_url(cfg.database_url).split("://", 1)[1] == mask_url(url).split("://", 1)[1]
    assert "secret" not in display_url(cfg.database_url)


@pytest.mark.parametrize(
    "url",
    [
        "not a url",
        "wf.sqlite",
        "/tmp/wf.sqlite",
        "mysql://root@localhost/db",
        "http://example.com/db",
        "postgresql://",
        "sqlite:wf.sqlite",
        "://nothing",
    ],
)
def test_malformed_urls_raise_configuration_error(url: str) -> None:
    with pytest.raises(wf.ConfigurationError):
        resolve(url)


def test_malformed_url_from_environment_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WF_DATABASE_URL", "mysql://x@y/z")
    with pytest.raises(wf.ConfigurationError):
        resolve()


def test_malformed_url_from_pyproject_raises() -> None:
    write_pyproject(Path.cwd(), '[tool.wf]\ndatabase_url = "nonsense"\n')
    with pytest.raises(wf.ConfigurationError):
        resolve()


def test_configuration_error_does_not_leak_the_password() -> None:
    with pytest.raises(wf.ConfigurationError) as info:
        resolve("mysql://admin:hunter2@db/x")
    assert "hunter2" not in str(info.value)
    assert isinstance(info.value, wf.WfError)


# -- masking ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://alice:s3cret@db:5432/app", "postgresql://alice:***@db:5432/app"),
        ("postgresql://alice:p%40ss%3Aw0rd@db/app", "postgresql://alice:***@db/app"),
        ("postgresql://alice@db/app", "postgresql://alice@db/app"),
        ("postgresql://db/app", "postgresql://db/app"),
        ("sqlite:///wf.sqlite", "sqlite:///wf.sqlite"),
        ("sqlite:////abs/path/wf.sqlite", "sqlite:////abs/path/wf.sqlite"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_display_url_masks_and_drops_our_driver_suffix() -> None:
    assert (
        display_url("postgresql+psycopg://bob:topsecret@h:5433/d")
        == "postgresql://bob:***@h:5433/d"
    )
    shown = display_url(resolve("postgresql://bob:topsecret@h/d").database_url)
    assert "topsecret" not in shown and "***" in shown


def test_mask_text_removes_passwords_from_messages() -> None:
    url = "postgresql://bob:topsecret@h/d"
    msg = f"could not connect to {url}: password topsecret rejected"
    out = mask_text(msg, url)
    assert "topsecret" not in out
    assert "***" in out
