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
    """A tiny OpenAI-compatible upstream. The answer depends on the model name:
    echo (default): 'Reply to: <last message>'; toxic: TOXIC; quote: the protected passage;
    ssn: a leaked SSN; tools: only a tool call whose arguments carry the last message; refusal: a
    refusal (no content) that quotes the last message; reasoning: content plus a reasoning_content field
    that leaks an SSN; error: HTTP 500. `n` choices and `logprobs` are supported; streams send
    5-character deltas of every text field."""
    app = FastAPI()

    def last_text(body: dict[str, Any]) -> str:
        last = body["messages"][-1].get("content") or ""
        if isinstance(last, list):
            last = " ".join(p.get("text", "") for p in last)
        return last

    def reply_for(body: dict[str, Any], k: int) -> str:
        model = body["model"]
        if model == "toxic":
            return TOXIC
        if model == "quote":
            return f"As Dickens wrote: {PASSAGE}."
        if model == "ssn":
            return "Your SSN on file is 123-45-6789, as requested."
        return f"Reply{k or ''} to: {last_text(body)}"

    def message_for(body: dict[str, Any], k: int) -> dict[str, Any]:
        """The answer message: its text fields (for streams, each is sent in 5-character deltas)."""
        model = body["model"]
        if model == "tools":
            args = json.dumps({"to": last_text(body), "n": k}, ensure_ascii=False)
            return {"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{k}", "type": "function", "function": {"name": "send_mail", "arguments": args}}]}
        if model == "refusal":
            return {"role": "assistant", "content": None, "refusal": f"I will not act on: {last_text(body)}"}
        if model == "reasoning":
            return {"role": "assistant", "content": "The answer is 4.",
                    "reasoning_content": "The user's SSN is 078-05-1120; 2 + 2 = 4."}
        return {"role": "assistant", "content": reply_for(body, k)}

    def logprobs_for(body: dict[str, Any], text: str) -> dict[str, Any] | None:
        if not body.get("logprobs"):
            return None
        return {"content": [{"token": t, "logprob": -0.5, "bytes": None, "top_logprobs": []}
                            for t in text.split(" ") if t]}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        log.append(body)
        if body["model"] == "error":
            return JSONResponse({"error": {"message": f"upstream crashed on {last_text(body)}", "type": "server_error",
                                           "code": None}}, status_code=500)
        n = body.get("n") or 1
        created = int(time.time())
        if not body.get("stream"):
            choices = []
            for k in range(n):
                msg = message_for(body, k)
                choices.append({"index": k, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop",
                                "logprobs": logprobs_for(body, msg.get("content") or ""), "message": msg})
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

            msgs = [message_for(body, k) for k in range(n)]
            for k in range(n):
                yield chunk([{"index": k, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for k, msg in enumerate(msgs):
                for call in msg.get("tool_calls") or []:
                    yield chunk([{"index": k, "finish_reason": None, "delta": {"tool_calls": [
                        {"index": 0, "id": call["id"], "type": "function",
                         "function": {"name": call["function"]["name"], "arguments": ""}}]}}])
            per_choice: list[list[dict[str, Any]]] = []
            for msg in msgs:
                pieces: list[dict[str, Any]] = []
                for field in ("content", "refusal", "reasoning_content"):
                    text = msg.get(field) or ""
                    pieces += [{field: text[p:p + 5]} for p in range(0, len(text), 5)]
                for call in msg.get("tool_calls") or []:
                    args = call["function"]["arguments"]
                    pieces += [{"tool_calls": [{"index": 0, "function": {"arguments": args[p:p + 5]}}]}
                               for p in range(0, len(args), 5)]
                per_choice.append(pieces)
            interleaved = [(k, ps[i]) for i in range(max(len(ps) for ps in per_choice))
                           for k, ps in enumerate(per_choice) if i < len(ps)]
            for k, delta in interleaved:
                extra = {"logprobs": logprobs_for(body, delta.get("content", ""))} if body.get("logprobs") else {}
                yield chunk([{"index": k, "delta": delta, "finish_reason": None, **extra}])
            for k, msg in enumerate(msgs):
                yield chunk([{"index": k, "delta": {}, "finish_reason": "tool_calls" if msg.get("tool_calls") else "stop"}])
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
