"""The dashboard's routes: HTML pages (each with a live fragment the page
polls with If-None-Match), the same data as JSON under /api, and the POST
actions (cancel, resume, restart from a step).

Every page and document carries an ETag (a hash of its body): a poll whose
view did not change gets 304 and no body. Actions need the session's CSRF
token and are refused (403) in read-only mode; they leave the work itself to
a worker (``detach``), as the dashboard has no workflow code of its own."""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from .. import errors
from . import data, render
from .security import CSRF_FIELD, CSRF_HEADER, SESSION_COOKIE, Security

ACTIONS = ("cancel", "resume", "restart")


@dataclass
class Settings:
    security: Security
    read_only: bool = False
    database: str = ""  # for humans: the password masked


# scripts only from the package's own /static (no inline script can run, should
# a value ever slip through escaping); never framed by another site
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _etagged(request: Request, body: bytes, media_type: str, status: int = 200) -> Response:
    etag = '"' + hashlib.sha1(body).hexdigest()[:24] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", **SECURITY_HEADERS}
    if status == 200 and request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, status_code=status, media_type=media_type, headers=headers)


def _failure(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and one-line message of a failed read or action."""
    import wf

    if isinstance(exc, errors.CliError):
        return (400 if exc.exit_code == errors.USAGE else 500), errors.describe(exc)
    if isinstance(exc, wf.WorkflowNotFoundError):
        return 404, errors.describe(exc)
    if isinstance(exc, wf.ConfigurationError | wf.SerializationError):
        return 400, errors.describe(exc)
    if isinstance(exc, wf.WorkflowConflictError):
        return 409, errors.describe(exc)
    if isinstance(exc, wf.DatabaseUnreachableError | wf.NoDatabaseError):
        return 503, errors.describe(exc)
    return 500, errors.describe(exc)


class Conflict(errors.CliError):
    """An action that does not apply to the workflow as it is (HTTP 409)."""


class Pages:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.counts = data.CountsCache()

    # -- sessions ------------------------------------------------------------------

    def _session(self, request: Request) -> tuple[str, bool]:
        sid = request.cookies.get(SESSION_COOKIE)
        if sid and 16 <= len(sid) <= 128:
            return sid, False
        return secrets.token_urlsafe(24), True

    def _base(self, request: Request, sid: str, page: str) -> dict[str, Any]:
        live = dict(request.query_params)
        live["_partial"] = "1"
        counts = {**live, "_partial": "counts"}
        counts.pop("before", None)
        counts.pop("limit", None)
        return {
            "counts_url": request.url.path + "?" + urlencode(counts),
            "page": page,
            "read_only": self.settings.read_only,
            "database": self.settings.database,
            "csrf": self.settings.security.csrf_for(sid),
            "live_url": request.url.path + "?" + urlencode(live),
            "notice": request.query_params.get("notice"),
            "quote": quote,
        }

    def _html(
        self,
        request: Request,
        page: str,
        gather: Callable[[], dict[str, Any]],
    ) -> Response:
        sid, new = self._session(request)
        ctx = self._base(request, sid, page)
        status = 200
        try:
            ctx.update(gather())
            name = page
        except Exception as exc:
            status, ctx["message"] = _failure(exc)
            name = "error"
        fragment = request.query_params.get("_partial")
        if fragment == "counts" and name == "workflows":
            name = "counts"
        body = render.page(name, ctx, partial=fragment in ("1", "counts")).encode()
        resp = _etagged(request, body, "text/html", status)
        if new:
            resp.set_cookie(SESSION_COOKIE, sid, httponly=True, samesite="strict")
        return resp

    # -- pages ---------------------------------------------------------------------

    def index(self, request: Request) -> Response:
        return RedirectResponse("/workflows", status_code=307)

    def workflows(self, request: Request) -> Response:
        fragment = request.query_params.get("_partial")
        # the rows' fragment never counts; the first view shows counts only when
        # cached (its counts fragment loads them at once): the rows come first
        counts = {"1": False, "counts": True}.get(fragment or "")

        def gather() -> dict[str, Any]:
            query = data.parse_list_query(_multi(request))
            return {"list": data.list_page(query, self.counts, counts), "query": query}

        return self._html(request, "workflows", gather)

    def workflow(self, request: Request) -> Response:
        wid = request.path_params["workflow_id"]
        return self._html(request, "workflow", lambda: {"wf": data.workflow_page(wid)})

    def queues(self, request: Request) -> Response:
        return self._html(request, "queues", lambda: {"queues": data.queues_page()})

    def executors(self, request: Request) -> Response:
        return self._html(request, "executors", lambda: {"executors": data.executors_page()})

    # -- JSON ----------------------------------------------------------------------

    def _json(self, request: Request, gather: Callable[[], Any]) -> Response:
        try:
            doc, status = gather(), 200
        except Exception as exc:
            status, message = _failure(exc)
            doc = {"error": message}
        body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
        return _etagged(request, body, "application/json", status)

    def api_workflows(self, request: Request) -> Response:
        return self._json(
            request,
            lambda: data.list_json(
                data.list_page(data.parse_list_query(_multi(request)), self.counts)
            ),
        )

    def api_workflow(self, request: Request) -> Response:
        wid = request.path_params["workflow_id"]
        return self._json(request, lambda: data.workflow_doc(data.workflow_page(wid)))

    def api_queues(self, request: Request) -> Response:
        return self._json(request, lambda: data.queues_json(data.queues_page()))

    def api_executors(self, request: Request) -> Response:
        return self._json(request, lambda: data.executors_json(data.executors_page()))

    # -- actions -------------------------------------------------------------------

    async def action(self, request: Request) -> Response:
        """POST /workflows/ID/ACTION (a form: redirects back to a page) or
        POST /api/workflows/ID/ACTION (JSON)."""
        wid = request.path_params["workflow_id"]
        verb = request.path_params["action"]
        api = request.url.path.startswith("/api/")
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        given = request.headers.get(CSRF_HEADER) or next(iter(form.get(CSRF_FIELD) or []), None)

        def refuse(status: int, message: str) -> Response:
            if api:
                return JSONResponse({"error": message}, status_code=status)
            return Response(message + "\n", status_code=status, media_type="text/plain")

        if verb not in ACTIONS:
            return refuse(404, f"no action {verb!r} (use {', '.join(ACTIONS)})")
        if self.settings.read_only:
            return refuse(403, "refused: the dashboard is read-only (wf ui --read-only)")
        if not self.settings.security.csrf_ok(request.cookies.get(SESSION_COOKIE), given):
            return refuse(403, "refused: missing or wrong CSRF token (reload the page)")
        try:
            doc = await run_in_threadpool(_act, wid, verb, form)
        except Exception as exc:
            status, message = _failure(exc)
            if isinstance(exc, Conflict):
                status = 409
            return refuse(status, message)
        if api:
            return JSONResponse(doc)
        target = doc["workflow_id"]
        notice = {
            "cancel": "cancelled",
            "resume": "resumed (a worker continues it)",
            "restart": f"restarted from {wid} (a worker runs it)",
        }[verb]
        return RedirectResponse(
            f"/workflows/{quote(target, safe='')}?{urlencode({'notice': notice})}", status_code=303
        )


def _multi(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


def _act(workflow_id: str, verb: str, form: dict[str, list[str]]) -> dict[str, Any]:
    import wf

    from .. import output

    info = wf.get_workflow(workflow_id)  # 404 if unknown
    if verb == "cancel":
        if info.status in wf.Status.ENDED:
            raise Conflict(f"workflow {workflow_id} has ended ({info.status}): nothing to cancel")
        wf.cancel(workflow_id, reason="wf ui")
        return output.workflow_json(wf.get_workflow(workflow_id))
    if verb == "resume":
        if info.status == wf.Status.SUCCESS:
            raise Conflict(f"workflow {workflow_id} succeeded: nothing to resume")
        wf.resume(workflow_id, detach=True)
        return output.workflow_json(wf.get_workflow(workflow_id))
    step_text = (form.get("from_step") or [""])[0].strip()
    from_step = None
    if step_text:
        if not step_text.isdigit() or int(step_text) < 1:
            raise errors.BadInput(f"from_step: {step_text!r} is not a position (1, 2, ...)")
        from_step = int(step_text)
    handle = wf.restart(workflow_id, from_step=from_step, detach=True)
    doc = output.workflow_json(handle.status())
    doc["restarted_from"] = workflow_id
    return doc


def routes(settings: Settings) -> list[Route]:
    p = Pages(settings)
    return [
        Route("/", p.index),
        Route("/workflows", p.workflows),
        Route("/workflows/{workflow_id:path}/{action:str}", p.action, methods=["POST"]),
        Route("/workflows/{workflow_id:path}", p.workflow),
        Route("/queues", p.queues),
        Route("/executors", p.executors),
        Route("/api/workflows", p.api_workflows),
        Route("/api/workflows/{workflow_id:path}/{action:str}", p.action, methods=["POST"]),
        Route("/api/workflows/{workflow_id:path}", p.api_workflow),
        Route("/api/queues", p.api_queues),
        Route("/api/executors", p.api_executors),
    ]
