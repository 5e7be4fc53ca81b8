"""The FastAPI app: OpenAI-compatible routes in front of guarded upstreams.

`create_app(runtime_or_settings, ...)`: given Settings, the app's lifespan builds the runtime (policy,
detectors, audit sink) once and closes it at shutdown; given a built Runtime, the caller owns it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardrails import access
from guardrails.errors import AccessDenied, ConfigError
from guardrails.keys import KeyCache, KeyStore, open_key_store
from guardrails.policy import Policy, Upstream
from guardrails.proxy.errors import ACTION_HEADER, REQUEST_ID_HEADER, ProxyError, dumps, json_response
from guardrails.proxy.metrics import Metrics
from guardrails.proxy.dashboard import register as register_dashboard
from guardrails.proxy.state import ProxyState, audit_source, authenticate, request_id, state_of
from guardrails.proxy.schemas import (AnthropicMessagesRequest, ChatCompletionRequest, CompletionRequest,
                                      EmbeddingRequest, ErrorResponse, ModelList, ResponsesRequest)
from guardrails.proxy.upstreams import Upstreams
from guardrails.ratelimit import RateLimiter, open_rate_limiter
from guardrails.runtime import Runtime, abuild_runtime, limit_blas_threads
from guardrails.settings import Settings

log = logging.getLogger("trustwall.proxy")

UPSTREAM_OVERRIDE_KEY_ENV = "TRUSTWALL_UPSTREAM_API_KEY"


def upstream_specs(policy: Policy, override: str | None) -> tuple[list[Upstream], str]:
    """The policy's upstreams, with the default one replaced by `--upstream URL|echo` when given
    (keeping its name, so roles and routes that name it still apply)."""
    specs = list(policy.upstreams)
    default = policy.default_upstream_name
    if not override:
        return specs, default
    base = policy.upstream(default)
    if override == "echo":
        new = Upstream(name=default, kind="echo", models=base.models)
    else:
        if not override.startswith(("http://", "https://")):
            raise ConfigError(f"--upstream must be 'echo' or an http(s):// base URL, not {override!r}")
        new = Upstream(name=default, kind="openai", url=override, api_key_env=UPSTREAM_OVERRIDE_KEY_ENV,
                       models=base.models, connect_timeout_s=base.connect_timeout_s, timeout_s=base.timeout_s)
    return [new if s.name == default else s for s in specs], default


class HeaderMiddleware:
    """Gives every request an id and every response the x-trustwall-* headers; turns any exception
    that escaped a route into a 502 OpenAI-style error (never a 500)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = uuid.uuid4().hex
        scope.setdefault("state", {})["trustwall_request_id"] = rid
        started = False

        async def send_wrapper(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                if REQUEST_ID_HEADER.encode() not in names:
                    headers.append((REQUEST_ID_HEADER.encode(), rid.encode()))
                if ACTION_HEADER.encode() not in names:
                    headers.append((ACTION_HEADER.encode(), b"none"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:  # noqa: BLE001 - the last line of defence: never a 500
            log.exception("unhandled error in request %s", rid)
            if not started:
                resp = ProxyError(502, "The proxy failed to complete the request.", "proxy_error").response(rid)
                await resp(scope, receive, send)


_ERR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorResponse, "description": desc} for code, desc in (
        (400, "Malformed request, or input blocked by the content policy (code content_policy_violation)"),
        (401, "Missing or invalid API key"), (403, "Model, upstream or data category not allowed for this role"),
        (404, "No upstream serves this model"), (413, "Request body over the role's limit"),
        (429, "Rate limit reached (see Retry-After)"), (502, "Upstream failed"), (503, "Not ready / audit unavailable"),
        (504, "Upstream timed out"))
}


def _body_schema(model: type) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def create_app(runtime_or_settings: Runtime | Settings | None = None, *, host: str = "127.0.0.1",
               allow_anonymous: bool = False, upstream: str | None = None, keys: KeyStore | None = None,
               limiter: RateLimiter | None = None, audit: Any = True, key_cache_ttl_s: float = 1.0,
               max_inflight: int | None = None) -> FastAPI:
    """Build the proxy app.

    runtime_or_settings: a built Runtime (the caller owns and closes it) or Settings (the lifespan builds
      the runtime with `audit` and closes it). None means Settings() from the environment.
    host: the address the server binds to; decides the first-run rule (keyless calls only on loopback).
    upstream: 'echo' or a base URL that replaces the policy's default upstream (`--upstream`).
    keys / limiter: injected stores (default: from settings: SQLite/PostgreSQL keys, memory/Redis limits).
    max_inflight: bound on in-flight guarded calls (default: settings.max_inflight); above it 503 + Retry-After.
    """
    src = runtime_or_settings if runtime_or_settings is not None else Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):  # noqa: ANN202
        closers: list[Any] = []
        try:
            # The proxy owns its process: one BLAS thread unless configured (see limit_blas_threads),
            # set before the detectors load so the spaCy pipelines pick numpy's BLAS (detectors.nlp).
            blas = (src.settings if isinstance(src, Runtime) else src).blas_threads or 1
            log.info("BLAS threads: %s (was %s)", blas, limit_blas_threads(blas))
            if isinstance(src, Runtime):
                runtime = src
            else:
                runtime = await abuild_runtime(src, audit=audit)
                closers.append(runtime.aclose)
            store = keys
            if store is None:
                store = await asyncio.to_thread(open_key_store, runtime.settings)
                closers.append(lambda s=store: asyncio.to_thread(s.close))
            exists = await asyncio.to_thread(store.has_active)
            why = access.startup_error(runtime.policy, host, exists, allow_anonymous)
            if why:
                raise ConfigError(why)
            lim = limiter
            if lim is None:
                lim = open_rate_limiter(runtime.settings.redis_url)
                closers.append(lim.aclose)
            specs, default = upstream_specs(runtime.policy, upstream)
            ups = Upstreams(specs, default)
            closers.append(ups.aclose)
            metrics = Metrics()
            if app.state.shedder is not None:  # issue 19 hook: shedding counters on /metrics
                app.state.shedder.register(metrics.registry)
            app.state.trustwall = ProxyState(
                runtime=runtime, upstreams=ups, keys=KeyCache(store, ttl_s=key_cache_ttl_s), limiter=lim,
                metrics=metrics,
                first_run=access.FirstRun(runtime.policy.access.anonymous_role, access.is_loopback(host), allow_anonymous),
            )
            log.info("trustwall proxy ready: policy %s, upstreams %s (default %s)", runtime.policy.id,
                     ", ".join(f"{s.name}={s.kind}" for s in specs), default)
            yield
        finally:
            app.state.trustwall = None
            for close in reversed(closers):
                try:
                    res = close()
                    if asyncio.iscoroutine(res) or isinstance(res, asyncio.Future):
                        await res
                except Exception:  # noqa: BLE001
                    log.exception("error while shutting down")

    app = FastAPI(title="trustwall proxy", version="1", lifespan=lifespan,
                  description="OpenAI-compatible proxy: every call passes the trustwall policy.")
    app.state.trustwall = None
    # issue 19 hook: load shedding (guardrails/proxy/shedding.py), inside HeaderMiddleware so 503s get its headers
    from guardrails.proxy.shedding import LoadShedder, LoadShedMiddleware
    limit = max_inflight if max_inflight is not None else (
        src.settings if isinstance(src, Runtime) else src).max_inflight
    app.state.shedder = LoadShedder(limit) if limit else None
    if app.state.shedder is not None:
        app.add_middleware(LoadShedMiddleware, shedder=app.state.shedder)
    app.add_middleware(HeaderMiddleware)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        msg = {404: "Unknown path.", 405: "Method not allowed."}.get(exc.status_code, str(exc.detail))
        status = exc.status_code if exc.status_code < 500 else 502
        return ProxyError(status, msg, {404: "unknown_url", 405: "method_not_allowed"}.get(exc.status_code)).response(
            request_id(request))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return ProxyError(400, "Invalid request.", "invalid_request").response(request_id(request))

    from guardrails.proxy.handlers import ProxyCall

    @app.post("/v1/chat/completions", responses=_ERR_RESPONSES, openapi_extra=_body_schema(ChatCompletionRequest),
              summary="Chat completion (stream or not), guarded")
    async def chat_completions(request: Request) -> Response:
        return await ProxyCall(request, "chat").run()

    @app.post("/v1/completions", responses=_ERR_RESPONSES, openapi_extra=_body_schema(CompletionRequest),
              summary="Text completion (stream or not), guarded")
    async def completions(request: Request) -> Response:
        return await ProxyCall(request, "completions").run()

    # issue 17: the same call lifecycle behind the other routes today's clients speak (guardrails.proxy.routes)
    @app.post("/v1/embeddings", responses=_ERR_RESPONSES, openapi_extra=_body_schema(EmbeddingRequest),
              summary="Embeddings, input guarded (redaction and pseudonymisation apply before embedding)")
    async def embeddings(request: Request) -> Response:
        return await ProxyCall(request, "embeddings").run()

    @app.post("/v1/messages", responses=_ERR_RESPONSES, openapi_extra=_body_schema(AnthropicMessagesRequest),
              summary="Anthropic Messages (stream or not), guarded; errors in Anthropic's shape")
    async def messages(request: Request) -> Response:
        return await ProxyCall(request, "messages").run()

    @app.post("/v1/responses", responses=_ERR_RESPONSES, openapi_extra=_body_schema(ResponsesRequest),
              summary="OpenAI Responses (stream or not), guarded, translated to chat completions")
    async def responses(request: Request) -> Response:
        return await ProxyCall(request, "responses").run()

    @app.get("/v1/models", responses={**_ERR_RESPONSES, 200: {"model": ModelList}}, summary="Models this caller may use")
    async def models(request: Request) -> Response:
        rid = request_id(request)
        try:
            st = state_of(request)
            principal = await authenticate(st, request)
            role = access.role_of(st.policy, principal)
            names = await st.upstreams.model_names()
        except AccessDenied as exc:
            return ProxyError(exc.status, str(exc), exc.code, action="deny").response(rid)
        except ProxyError as exc:
            return exc.response(rid)
        from guardrails.licences import model_licence  # issue 18: each model's licence

        data = [{"id": m, "object": "model", "created": 0, "owned_by": names[m],
                 "licence": model_licence(st.policy, names[m], m)} for m in access.visible_models(role, names)]
        return json_response({"object": "list", "data": data}, headers={REQUEST_ID_HEADER: rid, ACTION_HEADER: "allow"})

    @app.get("/v1/audit/export", responses=_ERR_RESPONSES, summary="Stream the audit log (admin roles only)")
    async def audit_export(request: Request, format: str = "jsonl", since: str | None = None,  # noqa: A002
                           until: str | None = None, principal: str | None = None, action: str | None = None) -> Response:
        from starlette.responses import StreamingResponse

        from guardrails.audit.export import FORMATS, MEDIA_TYPES, iter_export

        rid = request_id(request)
        try:
            st = state_of(request)
            who = await authenticate(st, request)
            role = access.role_of(st.policy, who)
            if not role.admin:
                raise AccessDenied("The audit export needs an admin role.", status=403, code="admin_only")
            if format not in FORMATS:
                raise ProxyError(400, f"format must be one of {', '.join(FORMATS)}", "invalid_format", param="format")
            sink, filters = audit_source(st, since, until, principal, action)
        except AccessDenied as exc:
            return ProxyError(exc.status, str(exc), exc.code, action="deny").response(rid)
        except ProxyError as exc:
            return exc.response(rid)
        return StreamingResponse(iter_export(sink, format, filters), media_type=MEDIA_TYPES[format],
                                 headers={REQUEST_ID_HEADER: rid, ACTION_HEADER: "allow",
                                          "content-disposition": f'attachment; filename="audit.{format}"'})

    register_dashboard(app)  # GET /dashboard (admin roles)

    @app.get("/healthz", summary="Liveness")
    async def healthz() -> Response:
        return json_response({"status": "ok"})

    @app.get("/readyz", summary="Readiness: policy and detectors loaded", responses={503: {"model": ErrorResponse}})
    async def readyz(request: Request) -> Response:
        st = getattr(request.app.state, "trustwall", None)
        if st is None:
            return ProxyError(503, "The proxy is still starting.", "not_ready").response(request_id(request))
        policy = st.policy
        info = st.runtime.info()["detectors"]  # what each detector loaded, and on which device (read back)
        # issue 19 hook: remote model backends (Open Inference Protocol) must be live and loaded
        from guardrails.inference.readiness import remote_readiness
        remote = await remote_readiness(st.runtime)
        if any(not r["ready"] for r in remote.values()):
            down = ", ".join(f"{n} ({r['reason'] or 'not ready'})" for n, r in sorted(remote.items()) if not r["ready"])
            return ProxyError(503, f"Remote model not ready: {down}", "not_ready").response(request_id(request))
        return json_response({"status": "ready", "policy": policy.id, "policy_version": policy.digest, "remote": remote,
                              "detectors": sorted(st.runtime.detectors),
                              "devices": {n: d.get("device", "cpu") for n, d in info.items()},
                              "detector_info": info,
                              "upstreams": {n: c.spec.kind for n, c in st.upstreams.clients.items()}})

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics(request: Request) -> Response:
        st = getattr(request.app.state, "trustwall", None)
        body = st.metrics.render() if st is not None else b""
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    default_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = default_openapi()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (ChatCompletionRequest, CompletionRequest, EmbeddingRequest, AnthropicMessagesRequest,
                      ResponsesRequest):
            js = model.model_json_schema(ref_template="#/components/schemas/{model}")
            comps.update(js.pop("$defs", {}))
            comps[model.__name__] = js
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


__all__ = ["create_app", "ProxyState", "dumps"]
