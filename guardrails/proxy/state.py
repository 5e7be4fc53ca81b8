"""What the proxy's routes share: the per-app state built by the lifespan, the request id, and who is
calling (API key -> principal). Kept apart from the app factory so routes and handlers import it
without an import circle."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from fastapi import Request

from guardrails import access
from guardrails.keys import KeyCache
from guardrails.policy import Policy
from guardrails.proxy.errors import ProxyError
from guardrails.proxy.metrics import Metrics
from guardrails.proxy.upstream import Upstreams
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


async def authenticate(st: ProxyState, request: Request) -> Principal:
    key = presented_key(request)
    exists = await st.keys.has_active()
    found = None
    if exists and key:
        info = await st.keys.verify(key)
        found = info.principal() if info is not None else None
    return access.authenticate(key, found, exists, st.first_run)
