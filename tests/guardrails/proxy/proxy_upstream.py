"""A small OpenAI-compatible upstream for the proxy tests and benchmarks (SSE included).

By default it echoes the last message's text. Extra body fields (which the proxy forwards untouched)
steer it: `test_reply` (the answer), `test_chunks` (the streamed pieces), `test_mode` (a fault or a
special answer), `test_delay` (seconds between chunks). Every request body it receives is recorded.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response, StreamingResponse


@dataclass
class UpstreamLog:
    name: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    cancelled: int = 0
    completed_streams: int = 0
    headers: list[dict[str, str]] = field(default_factory=list)

    def clear(self) -> None:
        self.requests.clear()
        self.headers.clear()
        self.cancelled = 0
        self.completed_streams = 0


def JSONResponse(obj: Any, status_code: int = 200) -> Response:  # noqa: N802 - ASCII-safe (lone surrogates)
    return Response(json.dumps(obj), status_code=status_code, media_type="application/json")


def _last_text(body: dict[str, Any]) -> str:
    if "prompt" in body:
        p = body["prompt"]
        return p if isinstance(p, str) else "\n".join(p)
    msgs = body.get("messages") or [{}]
    c = msgs[-1].get("content")
    if isinstance(c, list):
        return "".join(p.get("text", "") for p in c if isinstance(p, dict))
    return c or ""


def make_upstream_app(name: str = "upstream", log: UpstreamLog | None = None, record: bool = True) -> tuple[FastAPI, UpstreamLog]:
    log = log or UpstreamLog(name)
    app = FastAPI()

    async def handle(request: Request, kind: str) -> Response:
        body = await request.json()
        if record:
            log.requests.append(body)
            log.headers.append(dict(request.headers))
        mode = body.get("test_mode")
        model = body.get("model", "m")
        if mode == "fail-500":
            return JSONResponse({"error": {"message": "boom", "type": "server_error", "code": None}}, status_code=500)
        if mode == "fail-400":
            return JSONResponse({"error": {"message": "max_tokens is too large", "type": "invalid_request_error",
                                           "param": "max_tokens", "code": "invalid_value"}}, status_code=400)
        if mode == "fail-401":
            return JSONResponse({"error": {"message": "bad key", "type": "invalid_request_error"}}, status_code=401)
        if mode == "bad-json":
            return Response(b"{not json", media_type="application/json")
        if mode == "no-choices":
            return JSONResponse({"id": "x", "object": "chat.completion"})
        if mode == "slow":
            await asyncio.sleep(float(body.get("test_delay", 30)))
        reply = body.get("test_reply")
        if reply is None:
            reply = f"{name}: {_last_text(body)}" if body.get("test_prefix") else _last_text(body)
        created = int(time.time())
        usage = {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12}
        if not body.get("stream"):
            if kind == "completions":
                return JSONResponse({"id": "cmpl-1", "object": "text_completion", "created": created, "model": model,
                                     "choices": [{"index": 0, "text": reply, "finish_reason": "stop", "logprobs": None}],
                                     "usage": usage})
            msg: dict[str, Any] = {"role": "assistant", "content": reply}
            finish = "stop"
            if mode == "tools":
                msg = {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup",
                                                                      "arguments": body.get("test_args", "{\"id\": 42}")}}]}
                finish = "tool_calls"
            return JSONResponse({"id": "chatcmpl-1", "object": "chat.completion", "created": created, "model": model,
                                 "choices": [{"index": 0, "message": msg, "finish_reason": finish}], "usage": usage})

        chunks = body.get("test_chunks")
        if chunks is None:
            words = reply.split(" ")
            chunks = [w + (" " if i < len(words) - 1 else "") for i, w in enumerate(words)]
        delay = float(body.get("test_delay", 0))

        def ev(obj: dict[str, Any]) -> bytes:
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        async def gen():  # noqa: ANN202
            base = {"id": "chatcmpl-s", "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
                    "created": created, "model": model}

            def piece(text: str | None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
                if kind == "chat":
                    d = dict(delta)
                    if text is not None:
                        d["content"] = text
                    return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}
                return {**base, "choices": [{"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}]}

            try:
                if mode == "bad-sse":
                    yield ev(piece("fine so far. "))
                    yield b"data: {this is not json\n\n"
                    return
                if kind == "chat":
                    yield ev(piece("", role="assistant"))
                if mode == "tools":
                    yield ev({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": ""}}]},
                        "finish_reason": None}]})
                    for frag in body.get("test_arg_chunks", ["{\"id\": 42}"]):
                        yield ev({**base, "choices": [{"index": 0, "delta": {"tool_calls": [
                            {"index": 0, "function": {"arguments": frag}}]}, "finish_reason": None}]})
                    yield ev({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
                    yield b"data: [DONE]\n\n"
                    return
                if mode == "endless":
                    i = 0
                    while True:
                        yield ev(piece(f"word{i}. "))
                        i += 1
                        await asyncio.sleep(delay or 0.02)
                for c in chunks:
                    yield ev(piece(c))
                    if delay:
                        await asyncio.sleep(delay)
                if mode == "midstream-error":
                    yield ev({"error": {"message": "upstream exploded", "type": "server_error"}})
                    return
                yield ev(piece(None, "stop"))
                if (body.get("stream_options") or {}).get("include_usage"):
                    yield ev({**base, "choices": [], "usage": usage})
                yield b"data: [DONE]\n\n"
                log.completed_streams += 1
            except (asyncio.CancelledError, GeneratorExit):
                log.cancelled += 1
                raise

        return StreamingResponse(gen(), media_type="text/event-stream")

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        return await handle(request, "chat")

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await handle(request, "completions")

    @app.post("/openai/deployments/{deployment}/chat/completions")
    async def azure_chat(request: Request, deployment: str) -> Response:
        return await handle(request, "chat")

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Response:
        from guardrails.proxy.upstream import echo_vector, embedding_answer

        body = await request.json()
        if record:
            log.requests.append(body)
        inp = body.get("input")
        return JSONResponse(embedding_answer([inp] if isinstance(inp, str) else list(inp or []), body, echo_vector))

    @app.get("/v1/models")
    async def models() -> Response:
        return JSONResponse({"object": "list", "data": [{"id": m, "object": "model", "created": 0, "owned_by": name}
                                                        for m in ("gpt-test", "gpt-other", "local-llm")]})

    return app, log
