"""Who may talk to the dashboard, and which requests may change anything.

- A **token** (``--token`` / ``WF_UI_TOKEN``; required to bind anything but
  loopback) is checked on every request: an ``Authorization: Bearer`` header,
  a ``?token=`` query (which sets a cookie and redirects without it, so the
  token does not linger in the address bar), or that cookie.
- Without a token the server is loopback-only, and a request whose ``Host``
  is not a loopback name is refused: a web page elsewhere cannot reach it by
  rebinding its DNS name to 127.0.0.1.
- **CSRF**: every state change is a POST that carries the session's CSRF
  token (a form field or an ``X-CSRF-Token`` header). The token is an HMAC
  of the session cookie under a secret of this server process, so it is per
  session, needs no server-side store, and a page on another origin can
  neither read it nor forge it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qsl, urlencode

SESSION_COOKIE = "wf_ui_session"
TOKEN_COOKIE = "wf_ui_token"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

_LOOPBACK_NAMES = ("localhost", "localhost.", "ip6-localhost")


def is_loopback(host: str) -> bool:
    """Is ``host`` (a bind address or a Host header's name) this machine only?"""
    name = host.strip().strip("[]").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name part of a Host header (``[::1]:8765`` -> ``::1``)."""
    h = header.strip()
    if h.startswith("["):
        return h[1 : h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


@dataclass
class Security:
    token: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32))

    def csrf_for(self, session: str) -> str:
        return hmac.new(self.secret, session.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str | None, given: str | None) -> bool:
        if not session or not given:
            return False
        return hmac.compare_digest(self.csrf_for(session), given)

    def token_ok(self, given: str | None) -> bool:
        return self.token is None or (
            given is not None and hmac.compare_digest(given.encode(), self.token.encode())
        )


def cookies_of(scope: dict[str, Any]) -> dict[str, str]:
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(value.decode("latin-1"))
            except Exception:
                return {}
            return {k: m.value for k, m in jar.items()}
    return {}


def _header(scope: dict[str, Any], wanted: bytes) -> str | None:
    for name, value in scope.get("headers", []):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class GuardMiddleware:
    """ASGI middleware: the Host check and the token check, before any route
    (static files included) runs."""

    def __init__(self, app: Any, security: Security) -> None:
        self.app = app
        self.security = security

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sec = self.security
        if sec.token is None:
            host = _header(scope, b"host")
            if host is not None and not is_loopback(_host_name(host)):
                await _plain(send, 403, f"refused: Host {host!r} is not this machine (loopback)")
                return
            await self.app(scope, receive, send)
            return
        auth = _header(scope, b"authorization") or ""
        bearer = auth[7:].strip() if auth.lower().startswith("bearer ") else None
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
        cookie = cookies_of(scope).get(TOKEN_COOKIE)
        if sec.token_ok(bearer) or sec.token_ok(cookie):
            await self.app(scope, receive, send)
            return
        if sec.token_ok(query.get("token")) and scope.get("method") == "GET":
            # remember it in a cookie and drop it from the address bar
            query.pop("token", None)
            location = scope.get("path", "/") + ("?" + urlencode(query) if query else "")
            await send(
                {
                    "type": "http.response.start",
                    "status": 303,
                    "headers": [
                        (b"location", location.encode()),
                        (
                            b"set-cookie",
                            f"{TOKEN_COOKIE}={sec.token}; Path=/; HttpOnly; SameSite=Strict".encode(),
                        ),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        await _plain(
            send,
            401,
            "refused: this dashboard needs its token "
            "(open it as /?token=TOKEN, or send Authorization: Bearer TOKEN)",
        )


async def _plain(send: Any, status: int, text: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain; charset=utf-8")],
        }
    )
    await send({"type": "http.response.body", "body": (text + "\n").encode()})
