"""Load shedding: a bound on in-flight guarded calls per replica; above it, 503 + Retry-After at once.

Without a bound, an overloaded replica queues every call (detector batches, upstream connections,
audit queue) until clients time out: latency grows without limit and every caller loses. With
`max_inflight` (setting TRUSTWALL_MAX_INFLIGHT, `trustwall serve --max-inflight`) a call that arrives
while that many guarded calls are running is answered immediately:

    HTTP 503, Retry-After: 1
    {"error": {"message": "The proxy is at capacity; retry shortly.", "type": "server_error",
               "code": "overloaded", ...}}

(on /v1/messages the same in Anthropic's shape, `{"type": "error", "error": {"type":
"overloaded_error", ...}}`), so the load balancer / client retries elsewhere or later (the official openai client retries 503s with
back-off by itself). Only the guarded routes count (POST /v1/chat/completions, /v1/completions,
/v1/embeddings, /v1/messages, /v1/responses); a call
counts until its last byte is sent (streams included). Health, readiness and metrics are never shed.
One event loop per process: a plain counter, no lock.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send

from guardrails.proxy.errors import ProxyError

GUARDED_PATHS = frozenset({"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/messages",
                           "/v1/responses"})


class LoadShedder:
    """Counts in-flight guarded calls; `shed` counts refusals (exposed on /metrics by the app)."""

    def __init__(self, limit: int, retry_after_s: float = 1.0):
        if limit < 1:
            raise ValueError("max_inflight must be at least 1")
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.inflight = 0
        self.peak = 0
        self.shed = 0

    def try_enter(self) -> bool:
        if self.inflight >= self.limit:
            self.shed += 1
            return False
        self.inflight += 1
        self.peak = max(self.peak, self.inflight)
        return True

    def leave(self) -> None:
        self.inflight -= 1

    def register(self, registry: Any) -> None:
        """Expose `trustwall_inflight_calls`, `trustwall_max_inflight` and `trustwall_shed_total` on the
        app's Prometheus registry (read when scraped; an autoscaler can scale on the shed rate)."""
        registry.register(_Collector(self))


class _Collector:
    def __init__(self, shedder: LoadShedder):
        self.s = shedder

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        yield GaugeMetricFamily("trustwall_inflight_calls", "Guarded calls in flight", value=self.s.inflight)
        yield GaugeMetricFamily("trustwall_max_inflight", "Load-shedding bound (max_inflight)", value=self.s.limit)
        yield CounterMetricFamily("trustwall_shed", "Guarded calls refused with 503 (over max_inflight)",
                                  value=self.s.shed)


class LoadShedMiddleware:
    def __init__(self, app: ASGIApp, shedder: LoadShedder):
        self.app = app
        self.shedder = shedder

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or scope.get("path") not in GUARDED_PATHS:
            await self.app(scope, receive, send)
            return
        if not self.shedder.try_enter():
            rid = scope.get("state", {}).get("trustwall_request_id", "")
            err = ProxyError(503, "The proxy is at capacity; retry shortly.", "overloaded", type_="server_error",
                             retry_after=self.shedder.retry_after_s, action="shed")
            resp = err.response(rid)
            if scope.get("path") == "/v1/messages":  # Anthropic clients read their own error shape
                from guardrails.proxy.errors import json_response
                from guardrails.wire import anthropic

                keep = {k: v for k, v in resp.headers.items() if k not in ("content-length", "content-type")}
                resp = json_response(anthropic.error_body(503, err.message, rid, code=err.code), 503, keep)
            await resp(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            self.shedder.leave()
