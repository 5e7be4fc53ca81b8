"""A tiny OpenAI-compatible upstream for tests (FastAPI + uvicorn on an ephemeral loopback port)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from support.decorator_kit import PASSAGE

TOXIC = "Frankly, you are an idiot and everyone knows it."


def make_server_app(log: list[dict[str, Any]]) -> FastAPI:
    """A tiny OpenAI-compatible upstream. The reply depends on the model name:
    echo (default): 'Reply to: <last message>'; toxic: TOXIC; quote: the protected passage;
    ssn: a leaked SSN. `n` choices are supported; streams send 5-character deltas."""
    app = FastAPI()

    def reply_for(body: dict[str, Any], k: int) -> str:
        model = body["model"]
        if model == "toxic":
            return TOXIC
        if model == "quote":
            return f"As Dickens wrote: {PASSAGE}."
        if model == "ssn":
            return "Your SSN on file is 123-45-6789, as requested."
        last = body["messages"][-1]["content"]
        if isinstance(last, list):
            last = " ".join(p.get("text", "") for p in last)
        return f"Reply{k or ''} to: {last}"

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        log.append(body)
        n = body.get("n") or 1
        created = int(time.time())
        if not body.get("stream"):
            choices = [{"index": k, "finish_reason": "stop", "logprobs": None,
                        "message": {"role": "assistant", "content": reply_for(body, k)}} for k in range(n)]
            return JSONResponse({"id": "chatcmpl-upstream", "object": "chat.completion", "created": created,
                                 "model": body["model"], "choices": choices,
                                 "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}})

        def sse() -> Iterator[str]:
            def chunk(choices: list[dict[str, Any]], usage: dict[str, int] | None = None) -> str:
                data = {"id": "chatcmpl-upstream", "object": "chat.completion.chunk", "created": created,
                        "model": body["model"], "choices": choices}
                if usage is not None:
                    data["usage"] = usage
                return f"data: {json.dumps(data)}\n\n"

            for k in range(n):
                yield chunk([{"index": k, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            texts = [reply_for(body, k) for k in range(n)]
            for pos in range(0, max(len(t) for t in texts), 5):
                for k, t in enumerate(texts):
                    if pos < len(t):
                        yield chunk([{"index": k, "delta": {"content": t[pos:pos + 5]}, "finish_reason": None}])
            for k in range(n):
                yield chunk([{"index": k, "delta": {}, "finish_reason": "stop"}])
            if (body.get("stream_options") or {}).get("include_usage"):
                yield chunk([], {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18})
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    return app


@contextmanager
def serve_upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Run the upstream in a thread; yields (base_url ending in /v1, the list of request bodies)."""
    log: list[dict[str, Any]] = []
    config = uvicorn.Config(make_server_app(log), host="127.0.0.1", port=0, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test upstream did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/v1", log
    server.should_exit = True
    thread.join(10)
