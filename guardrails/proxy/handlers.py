"""One guarded call through the proxy: authenticate, limit, parse, check input, route, call the
upstream (streamed or not), check output, restore, audit, answer.

Every outcome ends in exactly one audit record (`runtime.record(CallRecord(...))`), written before
the answer for plain calls and when the stream ends (or the client goes away) for streamed ones.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any, Literal

import anyio
from fastapi import Request
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from guardrails import access
from guardrails.callplan import Plan, plan_call, replan_for_route
from guardrails.errors import AccessDenied
from guardrails.policy import Role
from guardrails.proxy.app import ProxyState, _state, authenticate, request_id
from guardrails.proxy.errors import ACTION_HEADER, REQUEST_ID_HEADER, ProxyError, UpstreamError, dumps, json_response
from guardrails.proxy.schemas import ChatCompletionRequest, CompletionRequest, parse_body, validate
from guardrails.proxy.upstream import Endpoint, UpstreamClient
from guardrails.streaming import OutputStream
from guardrails.types import Action, CallContext, CallRecord, Decision, Principal
from guardrails.vault import PLACEHOLDER_RE

log = logging.getLogger("trustwall.proxy")

Kind = Literal["chat", "completions"]
_END = object()  # end of the upstream stream, in the relay's queue
UNAUTHENTICATED = Principal(id="unauthenticated", role="none")  # who a call is before its key is checked
_DRAIN_LIMIT = 64 * 1024 * 1024
Where = tuple[int, Any]  # (message index or -1, None | part index | ('args', k) | 'fcall' | 'suffix' | 'prediction')


# ------------------------------------------------------------------------------- request/response text


def _call_args(msg: dict[str, Any]) -> list[tuple[Any, str]]:
    """(field, text) for the argument strings of a message's tool calls (('args', k)) and of a legacy
    function_call ('fcall')."""
    out: list[tuple[Any, str]] = []
    calls = msg.get("tool_calls")
    if isinstance(calls, list):
        for k, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                out.append((("args", k), fn["arguments"]))
    fc = msg.get("function_call")
    if isinstance(fc, dict) and isinstance(fc.get("arguments"), str):
        out.append(("fcall", fc["arguments"]))
    return out


def _with_call_args(msg: dict[str, Any], field: Any, text: str) -> dict[str, Any]:
    """A copy of `msg` with the arguments at `field` (from _call_args) replaced by `text`."""
    if field == "fcall":
        return {**msg, "function_call": {**msg["function_call"], "arguments": text}}
    calls = list(msg["tool_calls"])
    call = calls[field[1]]
    calls[field[1]] = {**call, "function": {**call["function"], "arguments": text}}
    return {**msg, "tool_calls": calls}


def input_texts(body: dict[str, Any], kind: Kind) -> tuple[list[str], list[Where]]:
    """The texts detectors see, and where each came from: message contents and text parts, the
    arguments of earlier tool calls in the conversation (`("args", k)`), a legacy `function_call`'s
    arguments (`"fcall"`), a completion `suffix` and a predicted output (`prediction`). Tool and function
    definitions (written by the developer, not the user) and non-text parts pass through untouched."""
    texts: list[str] = []
    where: list[Where] = []
    if kind == "completions":
        prompt = body["prompt"]
        for i, p in enumerate([prompt] if isinstance(prompt, str) else prompt):
            texts.append(p)
            where.append((i, None))
        if isinstance(body.get("suffix"), str):
            texts.append(body["suffix"])
            where.append((-1, "suffix"))
        return texts, where
    for i, m in enumerate(body["messages"]):
        c = m.get("content")
        if isinstance(c, str):
            texts.append(c)
            where.append((i, None))
        elif isinstance(c, list):
            for j, part in enumerate(c):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    texts.append(part["text"])
                    where.append((i, j))
        for field, text in _call_args(m):
            texts.append(text)
            where.append((i, field))
    pred = body.get("prediction")
    if isinstance(pred, dict) and isinstance(pred.get("content"), str):
        texts.append(pred["content"])
        where.append((-1, "prediction"))
    return texts, where


def input_roles(body: dict[str, Any], kind: Kind, where: list[Where]) -> tuple[str | None, ...]:
    """The role each input text came from: the message's role for its content, "assistant" for tool-call
    arguments and predicted outputs (the model wrote them), "user" for completion prompts."""
    if kind == "completions":
        return tuple("user" for _ in where)
    msgs = body["messages"]
    out: list[str | None] = []
    for i, j in where:
        if i < 0 or not (j is None or isinstance(j, int)):
            out.append("assistant")
            continue
        r = msgs[i].get("role") if isinstance(msgs[i], dict) else None
        out.append(r if isinstance(r, str) else None)
    return tuple(out)


def with_input_texts(body: dict[str, Any], kind: Kind, where: list[Where], texts: tuple[str, ...]) -> dict[str, Any]:
    """A copy of `body` with the guarded texts put back (only the changed paths are copied)."""
    out = dict(body)
    if kind == "completions":
        prompts = [t for (i, j), t in zip(where, texts) if j is None]
        out["prompt"] = prompts[0] if isinstance(body["prompt"], str) else prompts
        for (i, j), t in zip(where, texts):
            if j == "suffix":
                out["suffix"] = t
        return out
    msgs = list(body["messages"])
    for (i, j), text in zip(where, texts):
        if i == -1:
            if j == "prediction" and body["prediction"].get("content") != text:
                out["prediction"] = {**body["prediction"], "content": text}
            continue
        m = msgs[i]
        if j is None:
            if m.get("content") != text:
                msgs[i] = {**m, "content": text}
        elif j == "fcall" or isinstance(j, tuple):
            if dict(_call_args(m))[j] != text:
                msgs[i] = _with_call_args(m, j, text)
        else:
            part = m["content"][j]
            if part.get("text") != text:
                parts = list(m["content"])
                parts[j] = {**part, "text": text}
                msgs[i] = {**m, "content": parts}
    out["messages"] = msgs
    return out


def output_texts(resp: dict[str, Any], kind: Kind) -> tuple[list[str], list[Where]]:
    """The answer texts output detectors see: each choice's content (None), its tool calls' arguments
    (('args', k)), a legacy function_call's arguments ('fcall') and a refusal ('refusal')."""
    texts: list[str] = []
    where: list[Where] = []
    for i, ch in enumerate(resp["choices"]):
        if not isinstance(ch, dict):
            raise UpstreamError(502, "Upstream answered with a malformed choice.", "upstream_bad_response", kind="malformed")
        if kind == "completions":
            if isinstance(ch.get("text"), str):
                texts.append(ch["text"])
                where.append((i, None))
            continue
        msg = ch.get("message")
        if not isinstance(msg, dict):
            continue
        if isinstance(msg.get("content"), str):
            texts.append(msg["content"])
            where.append((i, None))
        for field, text in _call_args(msg):
            texts.append(text)
            where.append((i, field))
        if isinstance(msg.get("refusal"), str):
            texts.append(msg["refusal"])
            where.append((i, "refusal"))
    return texts, where


def _usage(resp: dict[str, Any]) -> tuple[int | None, int | None]:
    u = resp.get("usage")
    if not isinstance(u, dict):
        return None, None
    p, c = u.get("prompt_tokens"), u.get("completion_tokens")
    return (p if isinstance(p, int) else None), (c if isinstance(c, int) else None)


def _final(*decisions: Decision | None) -> Action:
    return max((d.action for d in decisions if d is not None), default=Action.ALLOW)


class ArgRestorer:
    """Restores pseudonyms inside tool-call arguments, so a model that calls `send_mail(to="<PERSON_1>")`
    reaches the caller's tool with the real value (for the categories the role may see restored).

    Arguments are JSON text: restored values are JSON-escaped. In streams they arrive in fragments, so a
    placeholder split across fragments is held back until it closes (`feed`/`flush` per tool call).
    """

    _HOLD = re.compile(r"<[^<>]{0,62}$")

    def __init__(self, pipeline: Any, ctx: CallContext, *, enabled: bool = True):
        self._vault = ctx.vault if enabled else None
        self._allowed = pipeline.restore_allowed(ctx)
        self._pending: dict[Any, str] = {}

    @property
    def active(self) -> bool:
        return self._vault is not None and len(self._vault) > 0

    def _sub(self, m: re.Match[str]) -> str:
        hit = self._vault.lookup(m.group(1), m.group(2)) if self._vault is not None else None
        if hit is None or not self._allowed(hit[0]):
            return m.group(0)
        return json.dumps(hit[1], ensure_ascii=False)[1:-1]

    def restore(self, text: str) -> str:
        return PLACEHOLDER_RE.sub(self._sub, text) if self.active else text

    def feed(self, key: Any, fragment: str) -> str:
        text = self._pending.pop(key, "") + fragment
        m = self._HOLD.search(text)
        if m:
            self._pending[key] = text[m.start():]
            text = text[:m.start()]
        return self.restore(text)

    def flush(self, key: Any) -> str:
        return self.restore(self._pending.pop(key, ""))


# ---------------------------------------------------------------------------------------- the call


class GuardedCall:
    def __init__(self, request: Request, kind: Kind):
        self.request = request
        self.kind = kind
        self.endpoint: Endpoint = "chat/completions" if kind == "chat" else "completions"
        self.rid = request_id(request)
        self.route = request.url.path
        self.t0 = time.perf_counter()
        self.started_at = time.time()
        self.principal: Principal = UNAUTHENTICATED
        self.model: str | None = None
        self.upstream: str | None = None
        self.dec_in: Decision | None = None
        self.dec_out: Decision | None = None
        self.upstream_ms: float | None = None
        self.input_ms = 0.0
        self.tokens: tuple[int | None, int | None] = (None, None)
        self.st: ProxyState | None = None
        self.streaming = False
        self.plan: Plan | None = None  # issue 18: experiment variant + licence of this call

    # -- outcome ------------------------------------------------------------------------------

    def _headers(self, action: str) -> dict[str, str]:
        h = {REQUEST_ID_HEADER: self.rid, ACTION_HEADER: action}
        if self.upstream:
            h["x-trustwall-upstream"] = self.upstream
        return h

    async def _record(self, status: int, error: str | None, final: Action, streamed: bool = False) -> bool:
        """Write the audit record; False when the sink failed (the caller then refuses to answer)."""
        st = self.st
        total_ms = (time.perf_counter() - self.t0) * 1000
        if st is not None:
            m = st.metrics
            if status < 400 or error == "content_policy_violation":
                outcome = final.label
            else:
                outcome = "deny" if status in (401, 403, 413, 429) else "error"
            m.requests.labels(self.route, outcome, str(status)).inc()
            m.latency.labels(self.route).observe(total_ms / 1000)
            m.observe_decision(self.dec_in)
            m.observe_decision(self.dec_out)
            if self.upstream_ms is not None and self.upstream:
                m.upstream.labels(self.upstream).observe(self.upstream_ms / 1000)
        if st is None:
            return True
        rec = CallRecord(
            request_id=self.rid, principal=self.principal, route=self.route, model=self.model, upstream=self.upstream,
            input=self.dec_in, output=self.dec_out, started_at=self.started_at, upstream_ms=self.upstream_ms,
            total_ms=total_ms, status=status, error=error, prompt_tokens=self.tokens[0],
            completion_tokens=self.tokens[1], final_action=final, streamed=streamed,
            **(self.plan.record_fields() if self.plan is not None else {}),  # issue 18
        )
        try:
            await st.runtime.record(rec)
            return True
        except Exception:  # noqa: BLE001 - an audit failure must not become a 500
            log.exception("audit record %s could not be written", self.rid)
            return False

    async def run(self) -> Response:
        try:
            response = await self._run()
            if self.streaming:
                return response
            status = response.status_code
            error = None
            final = _final(self.dec_in, self.dec_out)
        except ProxyError as exc:
            if isinstance(exc, UpstreamError) and self.st is not None and self.upstream:
                self.st.metrics.upstream_errors.labels(self.upstream, exc.kind).inc()
            response, status, error = exc.response(self.rid), exc.status, exc.code
            final = Action.BLOCK if exc.action in ("block", "deny") else _final(self.dec_in, self.dec_out)
        except AccessDenied as exc:
            err = ProxyError(exc.status, str(exc), exc.code, action="deny", retry_after=exc.retry_after)
            response, status, error, final = err.response(self.rid), exc.status, exc.code, Action.BLOCK
        except ClientDisconnect:
            err = ProxyError(400, "The client went away before the request was read.", "client_disconnected")
            response, status, error, final = err.response(self.rid), 499, "client_disconnected", _final(self.dec_in)
        except Exception as exc:  # noqa: BLE001 - never a 500
            log.exception("request %s failed", self.rid)
            err = ProxyError(502, "The proxy failed to complete the request.", "proxy_error")
            response, status, error, final = err.response(self.rid), 502, f"proxy_error:{type(exc).__name__}", _final(self.dec_in)
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
        st = self.st = _state(self.request)
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
        # issue 18: an experiment may assign another upstream / model; licences may refuse (403)
        self.plan = plan_call(policy, self.principal, req.model, client.name, self.rid)
        client, self.upstream = st.upstreams[self.plan.upstream], self.plan.upstream
        data = data if self.plan.model in (None, req.model) else {**data, "model": self.plan.model}
        ctx = CallContext(request_id=self.rid, principal=self.principal, model=req.model, upstream=client.name,
                          route="proxy", metadata={"path": self.route})

        texts, where = input_texts(data, self.kind)
        ctx.roles = input_roles(data, self.kind, where)
        t_in = time.perf_counter()
        dec = self.dec_in = await st.runtime.pipeline.check_input(texts, ctx)
        self.input_ms = (time.perf_counter() - t_in) * 1000
        if dec.blocked:
            cats = list(dec.blocking_categories or dec.categories)
            raise ProxyError(400, dec.message or policy.messages.block_input, "content_policy_violation",
                             type_="invalid_request_error", action="block", extra={"categories": cats})
        if dec.upstream:
            try:
                client = st.upstreams[dec.upstream]
            except KeyError:
                raise ProxyError(502, f"Route upstream {dec.upstream!r} is not configured.", "route_unavailable") from None
            self.upstream = ctx.upstream = client.name
            self.plan = replan_for_route(policy, self.principal, self.plan, client.name)  # issue 18: its licence
        access.check_categories(role, self.principal, client.name, access.passing_categories(dec))
        body = with_input_texts(data, self.kind, where, dec.texts)
        if req.stream:
            return await self._stream(st, client, body, ctx)
        return await self._plain(st, client, body, ctx)

    async def _plain(self, st: ProxyState, client: UpstreamClient, body: dict[str, Any], ctx: CallContext) -> Response:
        t = time.perf_counter()
        resp = await client.complete(self.endpoint, body)
        self.upstream_ms = (time.perf_counter() - t) * 1000
        self.tokens = _usage(resp)
        texts, where = output_texts(resp, self.kind)
        pipeline = st.runtime.pipeline
        t_out = time.perf_counter()
        dec = self.dec_out = await pipeline.check_output(texts, ctx)
        output_ms = (time.perf_counter() - t_out) * 1000
        choices = [dict(c) for c in resp["choices"]]
        if dec.blocked:
            message = dec.message or st.policy.messages.block_output
            for c in choices:
                if self.kind == "chat":
                    c["message"] = {"role": "assistant", "content": message}
                else:
                    c["text"] = message
                c["finish_reason"] = "content_filter"
                c["logprobs"] = None
        else:
            # The echo upstream exists to show what the model receives: its answers keep the placeholders.
            restore = client.spec.kind != "echo"
            args = ArgRestorer(pipeline, ctx, enabled=restore)
            for (i, field), text in zip(where, dec.texts):
                c = choices[i]
                if field is None:
                    restored = pipeline.restore(text, ctx) if restore else text
                    if self.kind == "chat":
                        c["message"] = {**c["message"], "content": restored}
                    else:
                        c["text"] = restored
                    continue
                if field == "refusal":
                    c["message"] = {**c["message"], "refusal": pipeline.restore(text, ctx) if restore else text}
                else:  # checked (and redacted) call arguments, pseudonyms restored JSON-escaped
                    c["message"] = _with_call_args(c["message"], field, args.restore(text))
            for c in choices:
                if "logprobs" in c:
                    c["logprobs"] = None  # token-level text bypasses the output checks
        out = {**resp, "choices": choices}
        headers = self._headers(_final(self.dec_in, dec).label)
        headers["server-timing"] = (f"input;dur={self.input_ms:.2f}, upstream;dur={self.upstream_ms:.2f}, "
                                    f"output;dur={output_ms:.2f}")
        return json_response(out, 200, headers)

    # -- streaming ----------------------------------------------------------------------------

    async def _stream(self, st: ProxyState, client: UpstreamClient, body: dict[str, Any], ctx: CallContext) -> Response:
        stack = AsyncExitStack()
        t = time.perf_counter()
        events = await stack.enter_async_context(client.stream(self.endpoint, body))  # errors here: a status
        self.streaming = True
        assert self.dec_in is not None
        return StreamingResponse(self._relay(st, events, stack, ctx, t, restore=client.spec.kind != "echo"), media_type="text/event-stream",
                                 headers={**self._headers(self.dec_in.action.label), "cache-control": "no-cache"})

    def _chunk(self, meta: dict[str, Any], choices: list[dict[str, Any]]) -> bytes:
        obj = {"id": meta.get("id") or f"chatcmpl-{self.rid}",
               "object": "chat.completion.chunk" if self.kind == "chat" else "text_completion",
               "created": meta.get("created") or int(self.started_at), "model": meta.get("model") or self.model,
               "choices": choices}
        if meta.get("system_fingerprint"):
            obj["system_fingerprint"] = meta["system_fingerprint"]
        return b"data: " + dumps(obj) + b"\n\n"

    def _text_choice(self, idx: int, text: str, finish: str | None = None) -> dict[str, Any]:
        if self.kind == "chat":
            return {"index": idx, "delta": {"content": text} if text or finish is None else {}, "finish_reason": finish}
        return {"index": idx, "text": text, "finish_reason": finish, "logprobs": None}

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
        err = ev.get("error")
        msg = err.get("message") if isinstance(err, dict) else str(err)
        return UpstreamError(502, f"Upstream {self.upstream!r} failed mid-stream: {str(msg)[:500]}", "upstream_error",
                             kind="stream")

    def _malformed(self) -> UpstreamError:
        return UpstreamError(502, f"Upstream {self.upstream!r} sent a malformed stream event.", "upstream_bad_stream",
                             kind="malformed")

    async def _relay(self, st: ProxyState, events: AsyncIterator[dict[str, Any]], stack: AsyncExitStack,
                     ctx: CallContext, t_up: float, *, restore: bool = True) -> AsyncIterator[bytes]:
        pipeline = st.runtime.pipeline
        streams: dict[int, OutputStream] = {}
        finished: set[int] = set()
        meta: dict[str, Any] = {}
        status, error = 200, None
        blocked: OutputStream | None = None
        q: asyncio.Queue[Any] = asyncio.Queue(maxsize=1024)
        pump = asyncio.ensure_future(self._pump(events, q))
        args = ArgRestorer(pipeline, ctx, enabled=restore)  # restore=False: echo shows what the model receives
        # Tool-call arguments are output-checked like text: one OutputStream per (choice, call index), never
        # restored by it (the ArgRestorer restores JSON-escaped after the check).
        tool_streams: dict[tuple[int, int], OutputStream] = {}

        async def check_calls(idx: int, calls: Any) -> Any:
            nonlocal blocked
            if not isinstance(calls, list):
                return calls
            out = []
            for call in calls:
                fn = call.get("function") if isinstance(call, dict) else None
                if isinstance(fn, dict) and isinstance(fn.get("arguments"), str):
                    key = (idx, call.get("index", 0) if isinstance(call.get("index", 0), int) else 0)
                    ts = tool_streams.get(key)
                    if ts is None:
                        ts = tool_streams[key] = OutputStream(pipeline, ctx, restore=False)
                    released = await ts.feed(fn["arguments"])
                    if ts.blocked:
                        blocked = ts
                        return None
                    call = {**call, "function": {**fn, "arguments": args.feed(key, released)}}
                out.append(call)
            return out

        async def finish_calls(idx: int) -> list[dict[str, Any]] | None:
            """Check and release the rest of each tool call of choice `idx`; None when one blocks."""
            nonlocal blocked
            held = []
            for key in [k for k in tool_streams if k[0] == idx]:
                ts = tool_streams[key]
                tail = await ts.finish()
                if ts.blocked:
                    blocked = ts
                    return None
                rest = args.feed(key, tail) + args.flush(key)
                if rest:
                    held.append({"index": key[1], "function": {"arguments": rest}})
            return held

        async def close_choice(idx: int) -> tuple[list[bytes], bool]:
            """Check and release what choice `idx` still holds (tool-call arguments, then the text tail):
            the chunks to send, and False when a check blocked (`blocked` is set)."""
            nonlocal blocked
            held = await finish_calls(idx)
            if held is None:
                return [], False
            out = []
            if held:
                out.append(self._chunk(meta, [{"index": idx, "delta": {"tool_calls": held}, "finish_reason": None}]))
            stream = streams[idx]
            tail = await stream.finish()
            if stream.blocked:
                blocked = stream
                return out, False
            if tail:
                out.append(self._chunk(meta, [self._text_choice(idx, tail)]))
            return out, True

        def block_chunks() -> list[bytes]:
            assert blocked is not None
            message = blocked.decision.message or st.policy.messages.block_output
            idxs = sorted(set(streams) | {0})
            return [self._chunk(meta, [self._text_choice(i, message, "content_filter") for i in idxs]),
                    b"data: [DONE]\n\n"]

        def stream_for(idx: int) -> OutputStream:
            s = streams.get(idx)
            if s is None:
                s = streams[idx] = OutputStream(pipeline, ctx, restore=restore)
            return s

        try:
            try:
                done = False
                while not done and blocked is None:
                    batch = [await q.get()]
                    while not q.empty():
                        batch.append(q.get_nowait())
                    texts: dict[int, list[str]] = {}
                    reasons: dict[int, str] = {}
                    late: list[bytes] = []  # usage chunks: after the text they account for
                    for item in batch:
                        if item is _END:
                            done = True
                            break
                        if isinstance(item, UpstreamError):
                            raise item
                        if isinstance(item, BaseException):
                            raise self._malformed() from item
                        ev = item
                        if "error" in ev and not ev.get("choices"):
                            raise self._upstream_event_error(ev)
                        for k in ("id", "created", "model", "system_fingerprint"):
                            if ev.get(k) is not None:
                                meta[k] = ev[k]
                        p, c = _usage(ev)
                        if p is not None or c is not None:
                            self.tokens = (p, c)
                        choices = ev.get("choices")
                        if not isinstance(choices, list):
                            raise self._malformed()
                        if not choices:
                            if ev.get("usage") is not None:
                                late.append(b"data: " + dumps(ev) + b"\n\n")  # the usage chunk (stream_options)
                            continue
                        for ch in choices:
                            if blocked is not None:
                                break
                            if not isinstance(ch, dict):
                                raise self._malformed()
                            idx = ch.get("index", 0)
                            idx = idx if isinstance(idx, int) else 0
                            stream_for(idx)
                            if self.kind == "chat":
                                delta = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
                                text = delta.get("content")
                                rest = {k: v for k, v in delta.items() if k != "content"}
                                if "tool_calls" in rest:
                                    rest["tool_calls"] = await check_calls(idx, rest["tool_calls"])
                                    if blocked is not None:
                                        break
                                if rest:  # role, checked tool_calls, function_call, refusal
                                    yield self._chunk(meta, [{"index": idx, "delta": rest, "finish_reason": None}])
                            else:
                                text = ch.get("text")
                            if isinstance(text, str) and text:
                                texts.setdefault(idx, []).append(text)
                            reason = ch.get("finish_reason")
                            if reason and idx not in finished:
                                reasons[idx] = str(reason)
                    if blocked is not None:
                        break
                    for idx, parts in texts.items():
                        stream = streams[idx]
                        released = await stream.feed("".join(parts))
                        if stream.blocked:
                            blocked = stream
                            break
                        if released:
                            yield self._chunk(meta, [self._text_choice(idx, released)])
                    if blocked is not None:
                        break
                    for idx, reason in reasons.items():
                        out, closed = await close_choice(idx)
                        for chunk in out:
                            yield chunk
                        if not closed:
                            break
                        finished.add(idx)
                        yield self._chunk(meta, [self._text_choice(idx, "", reason)])
                    if blocked is not None:
                        break
                    for chunk in late:
                        yield chunk
                if blocked is None:
                    for idx in [i for i in streams if i not in finished]:
                        out, closed = await close_choice(idx)
                        for chunk in out:
                            yield chunk
                        if not closed:
                            break
                if blocked is not None:
                    for b in block_chunks():
                        yield b
                else:
                    yield b"data: [DONE]\n\n"
            except UpstreamError as exc:
                status, error = exc.status, exc.code
                st.metrics.upstream_errors.labels(self.upstream or "", exc.kind).inc()
                yield b"data: " + dumps(exc.body(self.rid)) + b"\n\n"
        except (asyncio.CancelledError, GeneratorExit):
            status, error = 499, "client_disconnected"
            raise
        except Exception as exc:  # noqa: BLE001 - never leave a stream hanging
            log.exception("stream %s failed", self.rid)
            status, error = 502, f"proxy_error:{type(exc).__name__}"
            yield b"data: " + dumps(ProxyError(502, "The proxy failed mid-stream.", "proxy_error").body(self.rid)) + b"\n\n"
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
                self.upstream_ms = (time.perf_counter() - t_up) * 1000
                decs = [s.decision for s in [*streams.values(), *tool_streams.values()]]
                if blocked is not None:
                    self.dec_out = blocked.decision
                elif decs:
                    self.dec_out = max(decs, key=lambda d: d.action)
                final = Action.BLOCK if blocked is not None else _final(self.dec_in, self.dec_out)
                await self._record(status, error, final, streamed=True)
