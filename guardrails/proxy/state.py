"""What the proxy's routes share: the per-app state built by the lifespan, the request id, and who is
calling (API key -> principal). Kept apart from the app factory so routes and handlers import it
without an import circle."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from guardrails import access
from guardrails.keys import KeyCache
from guardrails.policy import Policy
from guardrails.proxy.errors import ProxyError
from guardrails.proxy.metrics import Metrics
from guardrails.proxy.upstreams import Upstreams
from guardrails.ratelimit import RateLimiter
from guardrails.runtime import Runtime
from guardrails.types import Principal


@dataclass
class ProxyState:
    """Everything the routes need; built by the lifespan, one per app."""

    runtime: Runtime
    upstreams: Upstreams
    keys: KeyCache
    limiter: RateLimiter
    metrics: Metrics
    first_run: access.FirstRun

    @property
    def policy(self) -> Policy:
        return self.runtime.policy



def request_id(request: Request) -> str:
    rid = getattr(request.state, "trustwall_request_id", None)
    return rid or uuid.uuid4().hex


def state_of(request: Request) -> ProxyState:
    st = getattr(request.app.state, "trustwall", None)
    if st is None:
        raise ProxyError(503, "The proxy is still starting.", "not_ready")
    return st


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth:
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    key = request.headers.get("api-key") or request.headers.get("x-api-key")  # Azure OpenAI / Anthropic clients
    return key.strip() if key and key.strip() else None


async def principal_for_key(st: ProxyState, key: str | None) -> Principal:
    """Who a key stands for (the first-run rule applies while no key exists)."""
    exists = await st.keys.has_active()
    found = None
    if exists and key:
        info = await st.keys.verify(key)
        found = info.principal() if info is not None else None
    return access.authenticate(key, found, exists, st.first_run)


async def authenticate(st: ProxyState, request: Request) -> Principal:
    return await principal_for_key(st, presented_key(request))


def audit_source(st: ProxyState, since: str | None = None, until: str | None = None, principal: str | None = None,
                 action: str | None = None) -> tuple[Any, Any]:
    """The proxy's audit store and export filters (ProxyError 404 without an audit log, 400 bad filter)."""
    from guardrails.audit.export import make_filters

    sink = getattr(st.runtime.audit, "sink", None)
    if sink is None:
        raise ProxyError(404, "This proxy runs without an audit log.", "audit_disabled")
    try:
        return sink, make_filters(since, until, principal, action)
    except ValueError as exc:
        raise ProxyError(400, str(exc), "invalid_filter") from None
