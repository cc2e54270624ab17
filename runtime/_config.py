"""Where the system and application databases are: SPEC §2's resolution order."""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from ._errors import ConfigurationError

DEFAULT_URL = "sqlite:///wf.sqlite"


# where a URL came from (Config.*_source), as `wf db status` names it
SOURCE_ARGUMENT = "argument"  # wf.configure(database_url=...) or the CLI's --db
SOURCE_ENV = "environment"  # WF_DATABASE_URL / WF_APP_DATABASE_URL
SOURCE_PYPROJECT = "pyproject"  # [tool.wf] in ./pyproject.toml
SOURCE_DEFAULT = "default"  # sqlite:///wf.sqlite, or the system database for the app's


# WF_POOLER: what sits between wf and Postgres. "transaction": a pooler
# (PgBouncer pool_mode=transaction) that gives each transaction any server
# connection, so wf prepares no statements and never LISTENs through it
POOLERS = ("transaction",)


@dataclass(frozen=True)
class Config:
    database_url: str
    app_database_url: str
    database_url_source: str = SOURCE_DEFAULT
    app_database_url_source: str = SOURCE_DEFAULT
    pooler: str | None = None
    # a direct URL wf LISTENs on behind a pooler (None there: waiters poll)
    listen_url: str | None = None
    # WF_RETENTION / [tool.wf] retention, in seconds: a worker deletes ended
    # workflows older than this in the background (None: keeps everything)
    retention: float | None = None
    # the code release this process runs (WF_APP_VERSION / app_version): its
    # workflows are stamped with it, and it adopts and dequeues only those of
    # its own release (or unversioned ones). None: every workflow, unstamped
    app_version: str | None = None

    def connection_options(self) -> dict[str, Any]:
        """How wf's Databases connect (engine.Database's keyword arguments)."""
        return {"pooled": self.pooler is not None, "listen_url": self.listen_url}


def _pyproject_settings() -> dict[str, object]:
    """``[tool.wf]`` of ./pyproject.toml; a file that is not valid TOML is a
    ConfigurationError naming it and the line (silently falling back to the
    default database would hide the mistake)."""
    path = Path.cwd() / "pyproject.toml"
    if not path.is_file():
        return {}
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigurationError(f"cannot read {path}: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigurationError(f"{path} is not valid TOML: {_toml_problem(e)}") from None
    tool = data.get("tool", {})
    section = tool.get("wf", {}) if isinstance(tool, dict) else {}
    if not isinstance(section, dict):
        raise ConfigurationError(f"{path}: [tool.wf] must be a table")
    return section


_TOML_WHERE = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$")


def _toml_problem(e: tomllib.TOMLDecodeError) -> str:
    """``line 3, column 9: Expected ']' ...`` from tomllib's message."""
    text = str(e)
    m = _TOML_WHERE.match(text)
    if m is None:
        return text
    return f"line {m.group(2)}, column {m.group(3)}: {m.group(1)}"


def resolve(database_url: str | None = None, app_database_url: str | None = None) -> Config:
    """First found wins: argument, environment, ``[tool.wf]`` in ./pyproject.toml, default."""
    settings: dict[str, object] | None = None

    def setting(key: str) -> str | None:
        nonlocal settings
        if settings is None:
            settings = _pyproject_settings()
        v = settings.get(key)
        return str(v) if v else None

    url, source = _first(
        (database_url, SOURCE_ARGUMENT),
        (os.environ.get("WF_DATABASE_URL"), SOURCE_ENV),
        (lambda: setting("database_url"), SOURCE_PYPROJECT),
        (DEFAULT_URL, SOURCE_DEFAULT),
    )
    app, app_source = _first(
        (app_database_url, SOURCE_ARGUMENT),
        (os.environ.get("WF_APP_DATABASE_URL"), SOURCE_ENV),
        (lambda: setting("app_database_url"), SOURCE_PYPROJECT),
        (url, SOURCE_DEFAULT),
    )
    pooler = (os.environ.get("WF_POOLER") or setting("pooler") or "").strip().lower() or None
    if pooler in ("none", "direct"):
        pooler = None
    if pooler is not None and pooler not in POOLERS:
        raise ConfigurationError(
            f"unsupported WF_POOLER {pooler!r}: use 'transaction' (PgBouncer's transaction "
            "pooling) or leave it unset"
        )
    listen = os.environ.get("WF_LISTEN_URL") or setting("listen_url")
    version = check_app_version(os.environ.get("WF_APP_VERSION") or setting("app_version"))
    retention_text = os.environ.get("WF_RETENTION") or setting("retention")
    retention = parse_age(retention_text, "WF_RETENTION / retention") if retention_text else None
    return Config(
        normalize_url(url),
        normalize_url(app),
        source,
        app_source,
        pooler=pooler,
        listen_url=normalize_url(listen) if listen else None,
        app_version=version,
        retention=retention,
    )


_AGE_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw]?)$", re.IGNORECASE)


def parse_age(text: object, what: str = "an age", *, allow_zero: bool = False) -> float | None:
    """Seconds from ``30d``, ``12h``, ``90m``, ``45s``, ``2w`` or a bare number
    of seconds; ``off``/``none`` is None (no retention). Anything else, zero
    (unless ``allow_zero``) or negative is one ConfigurationError line naming
    ``what``."""
    t = str(text).strip()
    if t.lower() in ("off", "none") and not allow_zero:
        return None
    m = _AGE.match(t)
    seconds = float(m.group(1)) * _AGE_UNITS[(m.group(2) or "s").lower()] if m else -1.0
    if allow_zero and seconds == 0:
        return 0.0
    if not 0 < seconds < float("inf"):
        if allow_zero:
            raise ConfigurationError(
                f"{what}: {str(text)!r} is not an age (zero or a positive number of seconds, "
                "or e.g. 30d, 12h, 90m)"
            )
        raise ConfigurationError(
            f"{what}: {str(text)!r} is not an age (a positive number of seconds, or e.g. 30d, "
            "12h, 90m; 'off' for none)"
        )
    return seconds


def check_app_version(version: str | None) -> str | None:
    """An application version: a short label without blanks ("" or None: no version)."""
    if version is None or not str(version).strip():
        return None
    v = str(version).strip()
    if len(v) > 100 or any(c.isspace() for c in v):
        raise ConfigurationError(
            f"malformed app_version {v[:40]!r}: a label of at most 100 characters, no blanks"
        )
    return v


def _first(*candidates: tuple[object, str]) -> tuple[str, str]:
    """The first non-empty value (a callable is asked only when reached) and its source."""
    for value, source in candidates:
        v = value() if callable(value) else value
        if v:
            return str(v), source
    raise AssertionError("the last candidate is always set")  # pragma: no cover


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
        hosts = url_hosts(url)
        for host in hosts:  # each host[:port] of a multi-host URL on its own
            _ = urlsplit("//" + host).port  # raises on a malformed port
    except ValueError as e:
        raise ConfigurationError(f"malformed database URL {mask_url(url)!r}: {e}") from None
    if base in ("postgresql", "postgres"):
        if not rest or rest.startswith("/") and len(rest) == 1:
            raise ConfigurationError(
                f"malformed database URL {mask_url(url)!r}: no host or database"
            )
        if len(hosts) > 1:
            rest = _multihost_rest(rest, hosts, url)
        return "postgresql+psycopg://" + rest
    if base == "sqlite" and not rest.startswith("/"):
        raise ConfigurationError(
            f"malformed database URL {mask_url(url)!r}: use sqlite:///relative/path or sqlite:////abs/path"
        )
    return "sqlite://" + _sqlite_rest(rest, url)


def url_hosts(url: str) -> list[str]:
    """The ``host[:port]`` entries of a URL's authority, in order: one for
    most URLs, several for a multi-host Postgres URL
    (``postgresql://u@h1:5432,h2:5433/db``, which libpq tries in turn)."""
    netloc = urlsplit(url).netloc
    return netloc.rpartition("@")[2].split(",")


# libpq's target_session_attrs values (PostgreSQL 14+)
_SESSION_ATTRS = ("any", "read-write", "read-only", "primary", "standby", "prefer-standby")


def _multihost_rest(rest: str, hosts: list[str], url: str) -> str:
    """Check the hosts of a multi-host URL; without ``target_session_attrs``
    ask libpq for a writable node (``read-write``): wf writes on every
    connection, and the first host that answers may be a standby (libpq's
    default, ``any``), which wf would take for an outage for ever."""
    if any(not h for h in hosts):
        raise ConfigurationError(f"malformed database URL {mask_url(url)!r}: an empty host")
    query = rest.partition("?")[2]
    attrs = [v for k, v in parse_qsl(query, keep_blank_values=True) if k == "target_session_attrs"]
    if not attrs:
        return (
            rest
            + ("&" if query else "" if rest.endswith("?") else "?")
            + ("target_session_attrs=read-write")
        )
    if attrs[-1] not in _SESSION_ATTRS:
        raise ConfigurationError(
            f"unsupported target_session_attrs {attrs[-1]!r} in {mask_url(url)!r}: use "
            "read-write (or primary)"
        )
    return rest


# query parameters SQLAlchemy's SQLite driver takes itself, and those of SQLite's
# own URI filenames (https://sqlite.org/uri.html): any other one would be ignored
_PYSQLITE_PARAMS = frozenset(
    ("timeout", "isolation_level", "detect_types", "check_same_thread", "cached_statements", "uri")
)
_SQLITE_URI_PARAMS = frozenset(("mode", "cache", "immutable", "nolock", "vfs", "psow"))


def _sqlite_rest(rest: str, url: str) -> str:
    """``/path?query`` of a SQLite URL as the driver must see it. SQLite's own
    parameters (``?mode=ro``) work only in a URI filename, which the driver
    opens when the URL says ``uri=true``: say it for the user (else the
    parameter is dropped with a warning and a read-only wish is ignored).
    An unknown parameter is refused rather than ignored."""
    path, sep, query = rest.partition("?")
    if not sep or not query:
        return path
    keys = {k.lower() for k, _ in parse_qsl(query, keep_blank_values=True)}
    unknown = sorted(keys - _PYSQLITE_PARAMS - _SQLITE_URI_PARAMS)
    if unknown:
        raise ConfigurationError(
            f"unsupported parameter {unknown[0]!r} in the SQLite URL {mask_url(url)!r} "
            f"(SQLite takes {', '.join(sorted(_SQLITE_URI_PARAMS))}, and timeout)"
        )
    if not keys & _SQLITE_URI_PARAMS or "uri" in keys:
        return rest
    # sqlite:///wf.sqlite?mode=ro -> the URI filename file:wf.sqlite?mode=ro
    return f"/file:{path[1:]}?{query}&uri=true"


_PASSWORD = re.compile(r"(://[^:/@\s]*:)([^@\s]*)(@)")
# the value ends at the next parameter, a blank, a quote or bracket, or a ":"
# right before one of those (the separator of "URL: message", not the password's)
_QUERY_PASSWORD = re.compile(r"([?&]password=)([^&\s'\")]*?)(?=&|:?(?:[\s'\")]|$))", re.IGNORECASE)


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
    """A URL for humans: password masked, our driver suffix (and the URI form
    _sqlite_rest gave a SQLite URL) dropped."""
    if url.startswith("sqlite:///file:") and url.endswith("&uri=true"):
        url = "sqlite:///" + url[len("sqlite:///file:") : -len("&uri=true")]
    return mask_url(url.replace("postgresql+psycopg://", "postgresql://", 1))
