"""Issue 13's configuration pieces in-process (the CLI tests run them through
``wf``): where a URL came from, a broken pyproject.toml, masking that keeps
the separator, SQLite's own URL parameters, blank queue names."""

from __future__ import annotations

from pathlib import Path

import pytest
from wf import ConfigurationError
from wf._config import display_url, mask_text, normalize_url, resolve


def test_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert resolve().database_url_source == "default"
    assert resolve().app_database_url_source == "default"
    (tmp_path / "cwd" / "pyproject.toml").write_text(
        '[tool.wf]\ndatabase_url = "sqlite:///p.sqlite"\napp_database_url = "sqlite:///a.sqlite"\n'
    )
    cfg = resolve()
    assert (cfg.database_url, cfg.database_url_source) == ("sqlite:///p.sqlite", "pyproject")
    assert (cfg.app_database_url, cfg.app_database_url_source) == (
        "sqlite:///a.sqlite",
        "pyproject",
    )
    monkeypatch.setenv("WF_DATABASE_URL", "sqlite:///e.sqlite")
    assert resolve().database_url_source == "environment"
    assert resolve("sqlite:///x.sqlite").database_url_source == "argument"


def test_broken_pyproject_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "cwd" / "pyproject.toml"
    path.write_text('[project]\nname = "x"\n[tool.wf\n')
    with pytest.raises(ConfigurationError) as e:
        resolve()
    assert str(path) in str(e.value) and "line 3, column" in str(e.value)
    path.write_text('tool = "not a table"\n')
    assert resolve().database_url_source == "default"  # no [tool.wf]: nothing to read
    path.write_text('[tool]\nwf = "x"\n')
    with pytest.raises(ConfigurationError, match=r"\[tool.wf\] must be a table"):
        resolve()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("postgresql://u@h/x?password=pw: connection failed", "x?password=***: connection"),
        ("postgresql://u@h/x?password=pw&sslmode=require", "password=***&sslmode"),
        ("postgresql://u@h/x?password=p:w more", "password=*** more"),
        ("'postgresql://u@h/x?password=pw'", "password=***'"),
        ("postgresql://u:pw@h/x: failed", "u:***@h/x: failed"),
    ],
)
def test_masking_keeps_what_follows_the_password(text: str, masked: str) -> None:
    out = mask_text(text)
    assert masked in out and "pw" not in out.replace("password", "")


def test_sqlite_uri_parameters() -> None:
    url = normalize_url("sqlite:///wf.sqlite?mode=ro")
    assert url == "sqlite:///file:wf.sqlite?mode=ro&uri=true"
    assert display_url(url) == "sqlite:///wf.sqlite?mode=ro"
    assert normalize_url("sqlite:////abs/wf.sqlite?mode=ro") == (
        "sqlite:///file:/abs/wf.sqlite?mode=ro&uri=true"
    )
    assert normalize_url("sqlite:///wf.sqlite?timeout=5") == "sqlite:///wf.sqlite?timeout=5"
    given = "sqlite:///file:wf.sqlite?mode=ro&uri=true"
    assert normalize_url(given) == given
    with pytest.raises(ConfigurationError, match="'frob'"):
        normalize_url("sqlite:///wf.sqlite?frob=1")


def test_a_queue_needs_a_name() -> None:
    import wf

    for name in ("", " ", "\t"):
        with pytest.raises(ConfigurationError):
            wf.Queue(name)
