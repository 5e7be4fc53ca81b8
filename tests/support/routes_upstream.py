"""A test upstream for every route: the OpenAI-compatible one of `openai_upstream` (chat completions)
plus POST /v1/embeddings (deterministic vectors, float or base64) and POST /v1/messages in the Anthropic
Messages format (plain and streamed events). Every request body is logged, with the headers."""

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

from guardrails.proxy.upstream import echo_vector, embedding_answer
from support.openai_upstream import TOXIC, make_server_app


def _last_text(body: dict[str, Any]) -> str:
    content = body["messages"][-1].get("content")
    if isinstance(content, list):
        return " ".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return content or ""


def make_routes_app(log: list[dict[str, Any]], headers: list[dict[str, str]]) -> FastAPI:
    """Anthropic models: toxic (TOXIC), tools (one tool_use block carrying the last text), broken (the
    stream breaks with an error event after some text), reject (400 quoting the prompt), nostream (a
    JSON answer even when a stream was asked for), anything else 'Reply to: <last text>'."""
    app = make_server_app(log)

    @app.post("/v1/embeddings")
    async def embeddings(request: Request) -> Any:
        body = await request.json()
        log.append(body)
        inp = body["input"]
        return JSONResponse(embedding_answer([inp] if isinstance(inp, str) else inp, body, echo_vector))

    @app.post("/v1/messages")
    async def messages(request: Request) -> Any:
        body = await request.json()
        log.append(body)
        headers.append(dict(request.headers))
        model = body["model"]
        text = TOXIC if model.endswith("toxic") else f"Reply to: {_last_text(body)}"
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}]
        if model.endswith("tools"):
            blocks = [{"type": "tool_use", "id": "toolu_1", "name": "send_mail", "input": {"to": _last_text(body)}}]
        stop = "tool_use" if model.endswith("tools") else "end_turn"
        if model.endswith("reject"):
            return JSONResponse({"type": "error", "error": {"type": "invalid_request_error",
                                                            "message": f"bad request about {_last_text(body)}"}},
                                status_code=400)
        if not body.get("stream") or model.endswith("nostream"):
            return JSONResponse({"id": "msg_up", "type": "message", "role": "assistant", "model": model,
                                 "content": blocks, "stop_reason": stop, "stop_sequence": None,
                                 "usage": {"input_tokens": 9, "output_tokens": 6}})

        def sse() -> Iterator[str]:
            def ev(name: str, data: dict[str, Any]) -> str:
                return f"event: {name}\ndata: {json.dumps(data)}\n\n"

            yield ev("message_start", {"type": "message_start", "message": {
                "id": "msg_up", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 9, "output_tokens": 1}}})
            yield ev("ping", {"type": "ping"})
            for i, b in enumerate(blocks):
                if b["type"] == "text":
                    yield ev("content_block_start", {"type": "content_block_start", "index": i,
                                                     "content_block": {"type": "text", "text": ""}})
                    for p in range(0, len(b["text"]), 5):
                        if model.endswith("broken") and p >= 10:
                            yield ev("error", {"type": "error", "error": {"type": "overloaded_error",
                                                                         "message": "Overloaded"}})
                            return
                        yield ev("content_block_delta", {"type": "content_block_delta", "index": i,
                                                         "delta": {"type": "text_delta", "text": b["text"][p:p + 5]}})
                else:
                    yield ev("content_block_start", {"type": "content_block_start", "index": i, "content_block": {
                        "type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
                    args = json.dumps(b["input"])
                    for p in range(0, len(args), 5):
                        yield ev("content_block_delta", {"type": "content_block_delta", "index": i, "delta": {
                            "type": "input_json_delta", "partial_json": args[p:p + 5]}})
                yield ev("content_block_stop", {"type": "content_block_stop", "index": i})
            yield ev("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                       "usage": {"output_tokens": 6}})
            yield ev("message_stop", {"type": "message_stop"})

        return StreamingResponse(sse(), media_type="text/event-stream")

    @app.post("/v1/responses")
    async def responses(request: Request) -> Any:
        """A native Responses server: models as for /v1/messages (toxic, tools, else 'Reply to: ...')."""
        body = await request.json()
        log.append(body)
        headers.append(dict(request.headers))
        model = body["model"]
        last = [i for i in body["input"] if i.get("type") == "message"][-1]["content"]
        last = last if isinstance(last, str) else " ".join(p.get("text", "") for p in last)
        text = TOXIC if model.endswith("toxic") else f"Reply to: {last}"
        usage = {"input_tokens": 9, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 6,
                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 15}
        if model.endswith("tools"):
            items = [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "send_mail",
                      "arguments": json.dumps({"to": last}), "status": "completed"}]
        else:
            items = [{"type": "reasoning", "id": "rs_1", "summary": []},
                     {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                      "content": [{"type": "output_text", "text": text, "annotations": []}]}]
        done = {"id": "resp_up", "object": "response", "created_at": 1, "status": "completed", "model": model,
                "output": items, "usage": usage}
        if not body.get("stream"):
            return JSONResponse(done)

        def sse() -> Iterator[str]:
            seq = iter(range(10_000))

            def ev(kind: str, **data: Any) -> str:
                return f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': next(seq), **data})}\n\n"

            yield ev("response.created", response={**done, "status": "in_progress", "output": []})
            for i, item in enumerate(items):
                if item["type"] == "message":
                    yield ev("response.output_item.added", output_index=i, item={**item, "content": []})
                    for p in range(0, len(text), 5):
                        yield ev("response.output_text.delta", item_id="msg_1", output_index=i, content_index=0,
                                 delta=text[p:p + 5])
                elif item["type"] == "function_call":
                    yield ev("response.output_item.added", output_index=i, item={**item, "arguments": ""})
                    for p in range(0, len(item["arguments"]), 5):
                        yield ev("response.function_call_arguments.delta", item_id="fc_1", output_index=i,
                                 delta=item["arguments"][p:p + 5])
                yield ev("response.output_item.done", output_index=i, item=item)
            yield ev("response.completed", response=done)

        return StreamingResponse(sse(), media_type="text/event-stream")

    return app


@contextmanager
def serve_routes_upstream() -> Iterator[tuple[str, list[dict[str, Any]], list[dict[str, str]]]]:
    """Run it in a thread; yields (base_url ending in /v1, request bodies, request headers)."""
    log: list[dict[str, Any]] = []
    headers: list[dict[str, str]] = []
    server = uvicorn.Server(uvicorn.Config(make_routes_app(log, headers), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the test upstream did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1", log, headers
    finally:
        server.should_exit = True
        thread.join(10)
