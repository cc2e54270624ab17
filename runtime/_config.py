"""Where the system and application databases are: SPEC §2's resolution order."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ._errors import ConfigurationError

DEFAULT_URL = "sqlite:///wf.sqlite"


@dataclass(frozen=True)
class Config:
    database_url: str
    app_database_url: str


def _pyproject_settings() -> dict[str, object]:
    path = Path.cwd() / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}
    section = data.get("tool", {}).get("wf", {})
    return section if isinstance(section, dict) else {}


def resolve(database_url: str | None = None, app_database_url: str | None = None) -> Config:
    """First found wins: argument, environment, ``[tool.wf]`` in ./pyproject.toml, default."""
    settings: dict[str, object] | None = None

    def setting(key: str) -> str | None:
        nonlocal settings
        if settings is None:
            settings = _pyproject_settings()
        v = settings.get(key)
        return str(v) if v else None

    url = (
        database_url or os.environ.get("WF_DATABASE_URL") or setting("database_url") or DEFAULT_URL
    )
    app = (
        app_database_url
        or os.environ.get("WF_APP_DATABASE_URL")
        or setting("app_database_url")
        or url
    )
    return Config(normalize_url(url), normalize_url(app))


_SCHEMES = ("postgresql", "postgres", "sqlite")


def normalize_url(url: str) -> str:
    """Check a URL's shape and give SQLAlchemy the driver we use (psycopg 3)."""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://", url)
    if not m:
        raise ConfigurationError(
            f"malformed database URL {mask_url(url)!r}: expected postgresql://… or sqlite:///…"
        )
    scheme = m.group(1).lower()
    base = scheme.split("+", 1)[0]
    if base not in _SCHEMES:
        raise ConfigurationError(
            f"unsupported database URL scheme {scheme!r} in {mask_url(url)!r}: use postgresql:// or sqlite:///"
        )
    rest = url[m.end() :]
    try:
        _ = urlsplit(url).port  # parses the host and port; raises on a malformed one
    except ValueError as e:
        raise ConfigurationError(f"malformed database URL {mask_url(url)!r}: {e}") from None
    if base in ("postgresql", "postgres"):
        if not rest or rest.startswith("/") and len(rest) == 1:
            raise ConfigurationError(
                f"malformed database URL {mask_url(url)!r}: no host or database"
            )
        return "postgresql+psycopg://" + rest
    if base == "sqlite" and not rest.startswith("/"):
        raise ConfigurationError(
            f"malformed database URL {mask_url(url)!r}: use sqlite:///relative/path or sqlite:////abs/path"
        )
    return "sqlite://" + rest


_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&\s]*)", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with its password (in the authority or the query) shown as ***."""
    return _QUERY_PASSWORD.sub(r"\1***", _PASSWORD.sub(r"\1***\3", url))


def mask_text(text: str, *urls: str) -> str:
    """Remove any password of ``urls`` (or any URL-looking password) from ``text``."""
    out = mask_url(text)
    for u in urls:
        for pattern in (_PASSWORD, _QUERY_PASSWORD):
            m = pattern.search(u)
            if m and m.group(2):
                out = out.replace(m.group(2), "***")
    return out


def display_url(url: str) -> str:
    """A URL for humans: password masked, our driver suffix dropped."""
    return mask_url(url.replace("postgresql+psycopg://", "postgresql://", 1))
