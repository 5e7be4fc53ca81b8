"""The audit dashboard routes (admin roles only): GET /dashboard (the page), POST /dashboard/login (a key
typed into the page becomes an HttpOnly, SameSite=Strict cookie scoped to /dashboard), GET
/dashboard/export (the filtered exports the page links to), GET /dashboard/assets/dashboard.js.

Without a key: 401 and a sign-in form, no data; a key of a non-admin role: 403, no data. Scripts call
it with `Authorization: Bearer KEY` like the API.
"""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from guardrails import access
from guardrails.errors import AccessDenied
from guardrails.proxy.state import ProxyState, audit_source, presented_key, principal_for_key, request_id, state_of
from guardrails.proxy.errors import ProxyError

COOKIE = "trustwall_dashboard_key"


async def _admin(request: Request) -> ProxyState:
    """The proxy state when the caller holds an admin key (header, else the dashboard cookie)."""
    st = state_of(request)
    key = presented_key(request) or request.cookies.get(COOKIE)
    who = await principal_for_key(st, key)
    role = access.role_of(st.policy, who)
    if not role.admin:
        raise AccessDenied("The dashboard needs an admin role.", status=403, code="admin_only")
    return st


def _denied(request: Request, exc: AccessDenied | ProxyError, html: bool) -> Response:
    status = exc.status
    message = str(exc) if isinstance(exc, AccessDenied) else exc.message
    if html:
        from guardrails.dashboard.html import login_page

        return HTMLResponse(login_page(message, status), status_code=status, headers={"cache-control": "no-store"})
    if isinstance(exc, AccessDenied):
        return ProxyError(exc.status, str(exc), exc.code, action="deny").response(request_id(request))
    return exc.response(request_id(request))


def _chain_status(sink: Any, settings: Any) -> dict[str, Any]:
    from guardrails.audit import verify

    try:
        rep = verify(sink, settings)
    except Exception as exc:  # noqa: BLE001 - shown on the page, never a 500
        return {"ok": False, "summary": f"verification failed: {type(exc).__name__}", "last_checkpoint_seq": None}
    cps = [m for m in sink.marks() if m.kind == "checkpoint"]
    last = cps[-1] if cps else None
    return {"ok": rep.ok, "summary": rep.summary(), "records": rep.records,
            "last_checkpoint_seq": last.seq if last else None,
            "last_checkpoint_time": last.data.get("time") if last else None}


def register(app: FastAPI) -> None:
    """Mount the dashboard routes on the proxy app."""

    @app.get("/dashboard", include_in_schema=False)
    async def dashboard(request: Request, since: str | None = None, until: str | None = None) -> Response:
        from guardrails.audit.rows import rows_from_store
        from guardrails.dashboard.data import summarise
        from guardrails.dashboard.html import render

        try:
            st = await _admin(request)
            sink, filters = audit_source(st, since, until)
        except (AccessDenied, ProxyError) as exc:
            return _denied(request, exc, html=True)

        def build() -> tuple[dict[str, Any], dict[str, Any]]:
            return summarise(rows_from_store(sink, filters)), _chain_status(sink, st.runtime.settings)

        data, chain = await asyncio.to_thread(build)
        page = render(data, chain, policy_id=st.policy.id, query={"since": since or "", "until": until or ""})
        return HTMLResponse(page, headers={"cache-control": "no-store", "x-trustwall-request-id": request_id(request)})

    @app.get("/dashboard/data", include_in_schema=False)
    async def dashboard_data(request: Request, since: str | None = None, until: str | None = None) -> Response:
        """The page's figures as JSON (same numbers as the page)."""
        from guardrails.audit.rows import rows_from_store
        from guardrails.dashboard.data import summarise

        try:
            st = await _admin(request)
            sink, filters = audit_source(st, since, until)
        except (AccessDenied, ProxyError) as exc:
            return _denied(request, exc, html=False)
        data = await asyncio.to_thread(lambda: summarise(rows_from_store(sink, filters)))
        return Response(json.dumps(data), media_type="application/json", headers={"cache-control": "no-store"})

    @app.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        raw = await request.body()
        key = (parse_qs(raw.decode("utf-8", "replace")).get("key") or [""])[0].strip()
        try:
            st = state_of(request)
            who = await principal_for_key(st, key or None)
            if not access.role_of(st.policy, who).admin:
                raise AccessDenied("The dashboard needs an admin role.", status=403, code="admin_only")
        except (AccessDenied, ProxyError) as exc:
            return _denied(request, exc, html=True)
        resp = RedirectResponse("/dashboard", status_code=303)
        resp.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/dashboard",
                        secure=request.url.scheme == "https")
        return resp

    @app.get("/dashboard/export", include_in_schema=False)
    async def export(request: Request, format: str = "jsonl", since: str | None = None,  # noqa: A002
                     until: str | None = None, principal: str | None = None, action: str | None = None) -> Response:
        from guardrails.audit.export import FORMATS, MEDIA_TYPES, iter_export

        try:
            st = await _admin(request)
            if format not in FORMATS:
                raise ProxyError(400, f"format must be one of {', '.join(FORMATS)}", "invalid_format", param="format")
            sink, filters = audit_source(st, since, until, principal, action)
        except (AccessDenied, ProxyError) as exc:
            return _denied(request, exc, html=False)
        return StreamingResponse(iter_export(sink, format, filters), media_type=MEDIA_TYPES[format],
                                 headers={"content-disposition": f'attachment; filename="audit.{format}"'})

    @app.get("/dashboard/assets/dashboard.js", include_in_schema=False)
    async def script() -> Response:
        js = resources.files("guardrails.proxy").joinpath("assets/dashboard.js").read_text(encoding="utf-8")
        return Response(js, media_type="text/javascript; charset=utf-8", headers={"cache-control": "max-age=300"})
