"""The proxy's side of a guarded call: HTTP only. Authenticate, rate-limit, read and parse the body,
then hand the lifecycle to `guardrails.call.Call` (access, input decision, route, output checks,
restoring, the one audit record) and the wire codec (`guardrails.wire.openai`), and frame the answer
as JSON or as server-sent events. Errors become OpenAI-style error bodies, never a 500.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import anyio
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from guardrails import access
from guardrails.answer import ChunkGuard, MalformedStream
from guardrails.call import Call, NoRoute
from guardrails.errors import AccessDenied
from guardrails.policy import Role
from guardrails.proxy.errors import ACTION_HEADER, REQUEST_ID_HEADER, ProxyError, UpstreamError, dumps, json_response
from guardrails.proxy.schemas import ChatCompletionRequest, CompletionRequest, parse_body, validate
from guardrails.proxy.state import ProxyState, authenticate, request_id, state_of
from guardrails.proxy.upstream import Endpoint, UpstreamClient
from guardrails.types import Action, CallContext, CallRecord, Principal
from guardrails.wire import openai as wire

log = logging.getLogger("trustwall.proxy")

_END = object()  # end of the upstream stream, in the relay's queue
UNAUTHENTICATED = Principal(id="unauthenticated", role="none")  # who a call is before its key is checked
_DRAIN_LIMIT = 64 * 1024 * 1024


class ProxyCall:
    def __init__(self, request: Request, kind: wire.Kind):
        self.request = request
        self.kind = kind
        self.endpoint: Endpoint = "chat/completions" if kind == "chat" else "completions"
        self.rid = request_id(request)
        self.path = request.url.path
        self.st: ProxyState | None = None
        self.call: Call[UpstreamClient] | None = None
        self.principal: Principal = UNAUTHENTICATED
        self.model: str | None = None
        self.upstream: str | None = None
        self.streaming = False
        self.t0 = time.perf_counter()
        self.started_at = time.time()

    # -- outcome ------------------------------------------------------------------------------

    def _headers(self, action: str) -> dict[str, str]:
        h = {REQUEST_ID_HEADER: self.rid, ACTION_HEADER: action}
        upstream = self.call.ctx.upstream if self.call is not None else self.upstream
        if upstream:
            h["x-trustwall-upstream"] = upstream
        return h

    def _observe(self, rec: CallRecord) -> None:
        """Prometheus metrics for the call's one record."""
        if self.st is None:
            return
        m, status = self.st.metrics, rec.status or 0
        if status < 400 or rec.error == "content_policy_violation":
            outcome = rec.final_action.label
        else:
            outcome = "deny" if status in (401, 403, 413, 429) else "error"
        m.requests.labels(self.path, outcome, str(status)).inc()
        m.latency.labels(self.path).observe((rec.total_ms or 0) / 1000)
        m.observe_decision(rec.input)
        m.observe_decision(rec.output)
        if rec.upstream_ms is not None and rec.upstream:
            m.upstream.labels(rec.upstream).observe(rec.upstream_ms / 1000)

    def _early_call(self) -> Call[UpstreamClient]:
        """The call of a request refused before its body was understood (auth, limits, parsing)."""
        ctx = CallContext(request_id=self.rid, principal=self.principal, model=self.model, upstream=self.upstream,
                          route="proxy", metadata={"path": self.path})
        call: Call[UpstreamClient] = Call(self.st.runtime, ctx, route=self.path, observe=self._observe)  # type: ignore[union-attr]
        call._t0, call.started_at = self.t0, self.started_at
        return call

    async def _record(self, status: int, error: str | None, final: Action | None) -> bool:
        """The call's one audit record; False when the sink failed (the answer is then withheld)."""
        if self.st is None:
            return True
        call = self.call or self._early_call()
        try:
            await call.record(status=status, error=error, final=final)
            return True
        except Exception:  # noqa: BLE001 - an audit failure must not become a 500
            log.exception("audit record %s could not be written", self.rid)
            return False

    def _final(self) -> Action:
        return self.call.final_action() if self.call is not None else Action.ALLOW

    async def run(self) -> Response:
        final: Action | None
        try:
            response = await self._run()
            if self.streaming:
                return response
            status, error, final = response.status_code, None, None
        except ProxyError as exc:
            if isinstance(exc, UpstreamError) and self.st is not None and self.upstream:
                self.st.metrics.upstream_errors.labels(self.upstream, exc.kind).inc()
            response, status, error = exc.response(self.rid), exc.status, exc.code
            final = Action.BLOCK if exc.action in ("block", "deny") else None
        except AccessDenied as exc:
            err = ProxyError(exc.status, str(exc), exc.code, action="deny", retry_after=exc.retry_after)
            response, status, error, final = err.response(self.rid), exc.status, exc.code, Action.BLOCK
        except ClientDisconnect:
            err = ProxyError(400, "The client went away before the request was read.", "client_disconnected")
            response, status, error, final = err.response(self.rid), 499, "client_disconnected", None
        except Exception as exc:  # noqa: BLE001 - never a 500
            log.exception("request %s failed", self.rid)
            err = ProxyError(502, "The proxy failed to complete the request.", "proxy_error")
            response, status, error, final = err.response(self.rid), 502, f"proxy_error:{type(exc).__name__}", None
        if not await self._record(status, error, final):
            return ProxyError(503, "The audit log is unavailable, so the answer is withheld.", "audit_unavailable"
                              ).response(self.rid)
        return response

    # -- steps --------------------------------------------------------------------------------

    async def _read_body(self, role: Role) -> bytes:
        limit = role.max_request_bytes
        cl = self.request.headers.get("content-length")
        if cl is not None and cl.isdigit() and int(cl) > limit:
            await self._drain(0)
            access.check_size(role, int(cl))
        chunks: list[bytes] = []
        size = 0
        async for chunk in self.request.stream():
            size += len(chunk)
            if size > limit:
                await self._drain(size)
                access.check_size(role, size)
            chunks.append(chunk)
        return b"".join(chunks)

    async def _drain(self, seen: int) -> None:
        """Read (and drop) the rest of an oversized body so the client gets our 413, not a reset."""
        try:
            async for chunk in self.request.stream():
                seen += len(chunk)
                if seen > _DRAIN_LIMIT:
                    break
        except Exception:  # noqa: BLE001 - the body is being refused anyway
            pass

    async def _run(self) -> Response:
        st = self.st = state_of(self.request)
        policy = st.policy
        self.principal = await authenticate(st, self.request)
        role = access.role_of(policy, self.principal)
        if role.rate_limit is not None:
            try:
                wait = await st.limiter.acquire(self.principal.id, role.rate_limit)
            except Exception as exc:  # noqa: BLE001 - a broken limiter refuses (fails closed)
                log.warning("rate limiter failed: %s", type(exc).__name__)
                raise ProxyError(503, "The rate limiter is unavailable.", "rate_limiter_unavailable") from None
            if wait is not None:
                raise ProxyError(429, f"Rate limit reached for role {self.principal.role!r}. Retry after {wait:.1f} s.",
                                 "rate_limit_exceeded", action="deny", retry_after=wait)
        raw = await self._read_body(role)
        data = parse_body(raw)
        req = validate(ChatCompletionRequest if self.kind == "chat" else CompletionRequest, data)
        self.model = req.model
        access.check_model(role, self.principal, req.model)
        client = st.upstreams.for_model(req.model)
        if client is None:
            raise ProxyError(404, f"The model {req.model!r} does not exist or no upstream serves it.", "model_not_found")
        self.upstream = client.name
        ctx = CallContext(request_id=self.rid, principal=self.principal, model=req.model, upstream=client.name,
                          route="proxy", metadata={"path": self.path})
        call = self.call = Call(st.runtime, ctx, route=self.path, access_upstream=client.name, observe=self._observe)
        call._t0, call.started_at = self.t0, self.started_at
        await call.admit()  # role, model, experiment variant and licence (AccessDenied: audited)

        found = wire.read_request(data, self.kind, pass_fields=policy.wire.pass_fields)
        dec = await call.check_input(found.texts, found.roles)
        if dec.blocked:
            cats = list(dec.blocking_categories or dec.categories)
            raise ProxyError(400, dec.message or policy.messages.block_input, "content_policy_violation",
                             type_="invalid_request_error", action="block", extra={"categories": cats})
        try:
            client = await call.route(dec, st.upstreams.clients, client, what="the policy's upstreams")
        except NoRoute as exc:  # audited by the call
            raise ProxyError(502, exc.decision.message or "", "route_unavailable", action="block") from None
        self.upstream = client.name
        body = wire.write_request(data, found, dec.texts, hash_key=st.runtime.pipeline.hash_key)
        if call.model_to_send != req.model:  # an experiment variant's model
            body["model"] = call.model_to_send
        if req.stream:
            return await self._stream(call, client, body)
        return await self._plain(call, client, body)

    async def _plain(self, call: Call[UpstreamClient], client: UpstreamClient, body: dict[str, Any]) -> Response:
        t = time.perf_counter()
        resp = await client.complete(self.endpoint, body)
        call.model_done(t)
        try:
            wire.read_answer(resp, self.kind)
        except ValueError:
            raise UpstreamError(502, "Upstream answered with a malformed choice.", "upstream_bad_response",
                                kind="malformed") from None
        # The echo upstream exists to show what the model receives: its answers keep the placeholders.
        dec, out = await call.check_answer(resp, self.kind, restore=client.spec.kind != "echo", record=False)
        headers = self._headers(call.final_action().label)
        headers["server-timing"] = (f"input;dur={call.input_ms:.2f}, upstream;dur={call.upstream_ms or 0:.2f}, "
                                    f"output;dur={call.output_ms:.2f}")
        return json_response(out, 200, headers)

    # -- streaming ----------------------------------------------------------------------------

    async def _stream(self, call: Call[UpstreamClient], client: UpstreamClient, body: dict[str, Any]) -> Response:
        stack = AsyncExitStack()
        t = time.perf_counter()
        events = await stack.enter_async_context(client.stream(self.endpoint, body))  # errors here: a status
        self.streaming = True
        guard = call.chunk_guard(self.kind, restore=client.spec.kind != "echo")
        assert call.input is not None
        return StreamingResponse(self._relay(call, guard, events, stack, t), media_type="text/event-stream",
                                 headers={**self._headers(call.input.action.label), "cache-control": "no-cache"})

    @staticmethod
    async def _pump(events: AsyncIterator[dict[str, Any]], q: asyncio.Queue[Any]) -> None:
        """Read upstream events into `q` while the relay is busy checking: the relay then takes every
        event that arrived meanwhile in one go, so a slow check means fewer, larger windows (not a
        growing backlog of small ones)."""
        try:
            async for ev in events:
                await q.put(ev)
            await q.put(_END)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the relay, which answers with an error event
            await q.put(exc)

    def _upstream_event_error(self, ev: dict[str, Any]) -> UpstreamError:
        # The upstream's own message is not passed on: it may echo the prompt or hold unchecked text.
        err = ev.get("error")
        code = err.get("code") if isinstance(err, dict) else None
        suffix = f" (upstream code {code})" if isinstance(code, str) and code.isidentifier() and len(code) < 64 else ""
        return UpstreamError(502, f"Upstream {self.upstream!r} failed mid-stream{suffix}.", "upstream_error",
                             kind="stream")

    def _malformed(self) -> UpstreamError:
        return UpstreamError(502, f"Upstream {self.upstream!r} sent a malformed stream event.", "upstream_bad_stream",
                             kind="malformed")

    @staticmethod
    def _sse(obj: dict[str, Any]) -> bytes:
        return b"data: " + dumps(obj) + b"\n\n"

    async def _relay(self, call: Call[UpstreamClient], guard: ChunkGuard, events: AsyncIterator[dict[str, Any]],
                     stack: AsyncExitStack, t_up: float) -> AsyncIterator[bytes]:
        st = self.st
        assert st is not None
        status, error = 200, None
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize=1024)
        pump = asyncio.ensure_future(self._pump(events, q))
        try:
            try:
                done = False
                while not done and guard.blocked is None:
                    batch = [await q.get()]
                    while not q.empty():
                        batch.append(q.get_nowait())
                    evs: list[dict[str, Any]] = []
                    for item in batch:
                        if item is _END:
                            done = True
                            break
                        if isinstance(item, UpstreamError):
                            raise item
                        if isinstance(item, BaseException):
                            raise self._malformed() from item
                        if isinstance(item, dict) and "error" in item and not item.get("choices"):
                            raise self._upstream_event_error(item)
                        evs.append(item)
                    try:
                        out = await guard.feed(evs)
                    except MalformedStream:
                        raise self._malformed() from None
                    for chunk in out:
                        yield self._sse(chunk)
                if guard.blocked is None:
                    for chunk in await guard.finish():
                        yield self._sse(chunk)
                if guard.blocked is not None:
                    decision = guard.blocked
                    for chunk in guard.refusal(decision.message or st.policy.messages.block_output):
                        yield self._sse(chunk)
                yield b"data: [DONE]\n\n"
            except UpstreamError as exc:
                status, error = exc.status, exc.code
                st.metrics.upstream_errors.labels(self.upstream or "", exc.kind).inc()
                yield self._sse(exc.body(self.rid))
        except (asyncio.CancelledError, GeneratorExit):
            status, error = 499, "client_disconnected"
            raise
        except Exception as exc:  # noqa: BLE001 - never leave a stream hanging
            log.exception("stream %s failed", self.rid)
            status, error = 502, f"proxy_error:{type(exc).__name__}"
            yield self._sse(ProxyError(502, "The proxy failed mid-stream.", "proxy_error").body(self.rid))
        finally:
            with anyio.CancelScope(shield=True):
                pump.cancel()
                try:
                    await pump
                except BaseException:  # noqa: BLE001 - cancelled or already failed: either way it is done
                    pass
                try:
                    await stack.aclose()  # closes the upstream response: a disconnect cancels the upstream call
                except Exception:  # noqa: BLE001
                    log.debug("closing upstream stream failed", exc_info=True)
                call.model_done(t_up)
                try:
                    await call.stream_done(guard, status=status, code=error)
                except Exception:  # noqa: BLE001 - the stream is over; the failure is logged
                    log.exception("audit record %s could not be written", self.rid)
