"""The dashboard's ASGI application: routes, the package's static files,
and the guard (Host and token checks) in front of everything.

wf must be configured (``wf.configure``) before the app serves; the app
launches no executor: it reads the record and its actions leave the work to
the workers."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from .routes import Settings, routes
from .security import GuardMiddleware, Security

STATIC = Path(__file__).parent / "static"


def create_app(
    *, read_only: bool = False, token: str | None = None, database: str = ""
) -> Starlette:
    security = Security(token=token or None)
    settings = Settings(security=security, read_only=read_only, database=database)
    return Starlette(
        routes=[
            *routes(settings),
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ],
        middleware=[Middleware(GuardMiddleware, security=security)],
    )
