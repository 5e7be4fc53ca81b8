"""The proxy's side of a guarded call: HTTP only. Authenticate, rate-limit, read and parse the body,
then hand the lifecycle to `guardrails.call.Call` (access, input decision, route, output checks,
restoring, the one audit record) and the wire codec (`guardrails.wire.openai`), and frame the answer
as JSON or as server-sent events. Errors become error bodies in the route's shape, never a 500.

Every route (chat, completions, embeddings, Anthropic messages, responses) runs this one class; what
differs between them is a `guardrails.proxy.routes.RouteCodec` (schema, translation to the OpenAI
shape the checks read, answer shape, event framing, error shape).
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
from guardrails.proxy.errors import ACTION_HEADER, REQUEST_ID_HEADER, ProxyError, UpstreamError, json_response
from guardrails.proxy.route_anthropic import MessagesCodec
from guardrails.proxy.route_responses import ResponsesCodec
from guardrails.proxy.routes import CompletionsCodec, EmbeddingsCodec, RouteCodec
from guardrails.proxy.schemas import parse_body
from guardrails.proxy.state import ProxyState, authenticate, request_id, state_of
from guardrails.proxy.upstream import Endpoint
from guardrails.proxy.upstreams import UpstreamClient
from guardrails.types import Action, CallContext, CallRecord, Principal
from guardrails.wire import openai as wire

log = logging.getLogger("trustwall.proxy")

_END = object()  # end of the upstream stream, in the relay's queue
UNAUTHENTICATED = Principal(id="unauthenticated", role="none")  # who a call is before its key is checked
_DRAIN_LIMIT = 64 * 1024 * 1024


def codec_for(name: str) -> RouteCodec:
    """The codec of a route by name (chat, completions, embeddings, messages, responses)."""
    codecs: dict[str, type[RouteCodec]] = {"chat": RouteCodec, "completions": CompletionsCodec,
                                           "embeddings": EmbeddingsCodec, "messages": MessagesCodec,
                                           "responses": ResponsesCodec}
    return codecs[name]()


class ProxyCall:
    def __init__(self, request: Request, route: RouteCodec | str):
        self.request = request
        self.codec = route if isinstance(route, RouteCodec) else codec_for(route)
        self.kind = self.codec.kind  # the answer kind the output checks read (None: no text answer)
        self.endpoint: Endpoint = self.codec.endpoint
        self.rid = request_id(request)
        self.path = request.url.path
        self.st: ProxyState | None = None
        self.call: Call[UpstreamClient] | None = None
        self.principal: Principal = UNAUTHENTICATED
        self.model: str | None = None
        self.upstream: str | None = None
        self.streaming = False
        self.request_data: dict[str, Any] = {}
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
        return Call(self.st.runtime, ctx, route=self.path, observe=self._observe,  # type: ignore[union-attr]
                    started=(self.started_at, self.t0))

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
            response, status, error = self.codec.error_response(exc, self.rid), exc.status, exc.code
            final = Action.BLOCK if exc.action in ("block", "deny") else None
        except AccessDenied as exc:
            err = ProxyError(exc.status, str(exc), exc.code, action="deny", retry_after=exc.retry_after)
            response, status, error, final = self.codec.error_response(err, self.rid), exc.status, exc.code, Action.BLOCK
        except ClientDisconnect:
            err = ProxyError(400, "The client went away before the request was read.", "client_disconnected")
            response, status, error, final = self.codec.error_response(err, self.rid), 499, "client_disconnected", None
        except Exception as exc:  # noqa: BLE001 - never a 500
            log.exception("request %s failed", self.rid)
            err = ProxyError(502, "The proxy failed to complete the request.", "proxy_error")
            response, status, error, final = (self.codec.error_response(err, self.rid), 502,
                                              f"proxy_error:{type(exc).__name__}", None)
        if not await self._record(status, error, final):
            return self.codec.error_response(ProxyError(
                503, "The audit log is unavailable, so the answer is withheld.", "audit_unavailable"), self.rid)
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
        req = self.codec.validate(data)
        self.model = req.model
        access.check_model(role, self.principal, req.model)
        client = st.upstreams.for_model(req.model)
        if client is None:
            raise ProxyError(404, f"The model {req.model!r} does not exist or no upstream serves it.", "model_not_found")
        self.upstream = client.name
        ctx = CallContext(request_id=self.rid, principal=self.principal, model=req.model, upstream=client.name,
                          route="proxy", metadata={"path": self.path})
        call = self.call = Call(st.runtime, ctx, route=self.path, access_upstream=client.name, observe=self._observe,
                                started=(self.started_at, self.t0))
        await call.admit()  # role, model, experiment variant and licence (AccessDenied: audited)

        self.request_data = data  # as the client sent it (the codec answers in its terms)
        data = self.codec.to_wire(data, policy.wire.pass_fields)  # the OpenAI-shaped request (Anthropic and Responses: translated)
        found = self.codec.read(data, policy.wire.pass_fields)
        call.unchecked = wire.unchecked_parts(data)  # images, audio, files: forwarded unchecked, recorded
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
        if self.codec.streamed(req):
            return await self._stream(call, client, body)
        return await self._plain(call, client, body)

    async def _plain(self, call: Call[UpstreamClient], client: UpstreamClient, body: dict[str, Any]) -> Response:
        t = time.perf_counter()
        resp = await client.complete(self.endpoint, body)
        call.model_done(t)
        if self.kind is None:  # embeddings: vectors, no text to check or restore
            call.usage(resp)
            out = resp
        else:
            try:  # (the answer is read once, there; a malformed one raises before any check runs)
                # The echo upstream exists to show what the model receives: its answers keep the placeholders.
                dec, out = await call.check_answer(resp, self.kind, restore=client.spec.kind != "echo", record=False)
            except wire.MalformedAnswer:
                raise UpstreamError(502, "Upstream answered with a malformed choice.", "upstream_bad_response",
                                    kind="malformed") from None
            out = self.codec.answer(out, self.request_data, self.rid)
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
        assert self.kind is not None
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

    async def _relay(self, call: Call[UpstreamClient], guard: ChunkGuard, events: AsyncIterator[dict[str, Any]],
                     stack: AsyncExitStack, t_up: float) -> AsyncIterator[bytes]:
        st = self.st
        assert st is not None
        status, error = 200, None
        framer = self.codec.framer(self.rid, call.model_to_send, self.request_data)
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
                    for frame in framer.chunks(out):
                        yield frame
                if guard.blocked is None:
                    for frame in framer.chunks(await guard.finish()):
                        yield frame
                if guard.blocked is not None:
                    decision = guard.blocked
                    for frame in framer.chunks(guard.refusal(decision.message or st.policy.messages.block_output)):
                        yield frame
                for frame in framer.end():
                    yield frame
            except UpstreamError as exc:
                status, error = exc.status, exc.code
                st.metrics.upstream_errors.labels(self.upstream or "", exc.kind).inc()
                for frame in framer.error(self.codec.error_body(exc, self.rid)):
                    yield frame
        except (asyncio.CancelledError, GeneratorExit):
            status, error = 499, "client_disconnected"
            raise
        except Exception as exc:  # noqa: BLE001 - never leave a stream hanging
            log.exception("stream %s failed", self.rid)
            status, error = 502, f"proxy_error:{type(exc).__name__}"
            for frame in framer.error(self.codec.error_body(
                    ProxyError(502, "The proxy failed mid-stream.", "proxy_error"), self.rid)):
                yield frame
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
