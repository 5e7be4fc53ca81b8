"""A hostile OpenAI-compatible upstream: it hides a payload in one answer field, chosen by the model name
`field:<name>:<payload>` (payload: ssn | secret | toxic), plain and streamed (3-character fragments of
every text field), and answers `error:<payload>` with an HTTP 500 whose message quotes the payload.
Every request body is recorded. Shared by tests/guardrails/test_answer_fields.py and
benchmarks/bench_adversarial.py."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

PAYLOADS = {
    "ssn": "536-22-8170",
    "secret": "ghp_" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Jh1Gf0DeCbA9",
    "toxic": "you are a worthless idiot",
}
# how a payload is said (a context word helps a real PII recogniser as it would in a real answer)
CONTEXT = {"ssn": "my SSN is {v}", "secret": "the key is {v}", "toxic": "{v}"}


def said(payload: str) -> str:
    return CONTEXT[payload].format(v=PAYLOADS[payload])


# answer fields a payload can hide in (message-level unless the name says otherwise)
FIELDS = ("content", "refusal", "reasoning_content", "reasoning", "tool_name", "tool_args", "function_call_args",
          "audio_transcript", "annotation_title", "content_parts", "extra_field", "vendor_data", "second_choice",
          "choice_extra")


def message_for(field: str, value: str, k: int) -> dict[str, Any]:
    msg: dict[str, Any] = {"role": "assistant", "content": "Here you are."}
    if field == "second_choice":
        if k == 1:
            msg["content"] = f"Also: {value}"
        return msg
    if k:
        return msg
    if field == "content":
        msg["content"] = f"The value is {value} ok."
    elif field == "refusal":
        msg.update(content=None, refusal=f"I refuse because {value}.")
    elif field in ("reasoning_content", "reasoning"):
        msg[field] = f"Thinking: {value}."
    elif field == "tool_name":
        msg.update(content=None, tool_calls=[{"id": "call_1", "type": "function",
                                              "function": {"name": f"fn {value}", "arguments": "{}"}}])
    elif field == "tool_args":
        msg.update(content=None, tool_calls=[{"id": "call_1", "type": "function", "function": {
            "name": "lookup", "arguments": json.dumps({"q": value})}}])
    elif field == "function_call_args":
        msg.update(content=None, function_call={"name": "lookup", "arguments": json.dumps({"q": value})})
    elif field == "audio_transcript":
        msg["audio"] = {"id": "audio_1", "data": "UklGRg==", "expires_at": 0, "transcript": f"Say {value}."}
    elif field == "annotation_title":
        msg["annotations"] = [{"type": "url_citation", "url_citation": {
            "url": "https://example.com/", "title": f"Page {value}", "start_index": 0, "end_index": 3}}]
    elif field == "content_parts":
        msg["content"] = [{"type": "text", "text": f"Part {value}."}]
    elif field == "extra_field":
        msg["vendor_note"] = f"Note {value}."
    elif field == "vendor_data":  # a field named like audio's base64 `data`, holding text
        msg["data"] = f"Data {value}."
    return msg


def _fragments(value: Any, size: int = 3) -> list[Any]:
    return [value[i:i + size] for i in range(0, len(value), size)] if isinstance(value, str) else [value]


def make_app(log: list[dict[str, Any]]) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await request.json()
        log.append(body)
        kind, _, rest = str(body.get("model", "")).partition(":")
        if kind == "error":
            return JSONResponse({"error": {"message": f"bad input near {said(rest)}", "type": "server_error",
                                           "code": "internal"}}, status_code=400)
        if kind == "echo":  # answers with the last user message (placeholders and all)
            last = body["messages"][-1]["content"]
            msgs = [{"role": "assistant", "content": f"Echo: {last}"}]
        else:
            field, _, payload = rest.partition(":")
            n = max(int(body.get("n") or 1), 2 if field == "second_choice" else 1)
            msgs = [message_for(field, said(payload), k) for k in range(n)]
        created = int(time.time())
        choice_extra = rest.startswith("choice_extra:")
        if not body.get("stream"):
            choices = []
            for k, m in enumerate(msgs):
                c: dict[str, Any] = {"index": k, "message": m, "finish_reason": "stop", "logprobs": None}
                if choice_extra and k == 0:
                    c["stop_reason"] = f"stopped at {said(rest.split(':')[-1])}"
                choices.append(c)
            return JSONResponse({"id": "chatcmpl-h", "object": "chat.completion", "created": created,
                                 "model": body["model"], "choices": choices})

        def sse() -> Iterator[str]:
            def ev(choices: list[dict[str, Any]]) -> str:
                return "data: " + json.dumps({"id": "chatcmpl-h", "object": "chat.completion.chunk",
                                              "created": created, "model": body["model"], "choices": choices}) + "\n\n"

            for k, m in enumerate(msgs):
                yield ev([{"index": k, "delta": {"role": "assistant"}, "finish_reason": None}])
                for key, value in m.items():
                    if key == "role" or value is None:
                        continue
                    if key == "tool_calls":
                        call = value[0]
                        yield ev([{"index": k, "finish_reason": None, "delta": {"tool_calls": [
                            {"index": 0, "id": call["id"], "type": "function", "function": {"name": "", "arguments": ""}}]}}])
                        for part in ("name", "arguments"):
                            for frag in _fragments(call["function"][part]):
                                yield ev([{"index": k, "finish_reason": None, "delta": {"tool_calls": [
                                    {"index": 0, "function": {part: frag}}]}}])
                    elif isinstance(value, dict):
                        for sub, sv in value.items():
                            for frag in _fragments(sv):
                                yield ev([{"index": k, "finish_reason": None, "delta": {key: {sub: frag}}}])
                    elif isinstance(value, list):
                        yield ev([{"index": k, "finish_reason": None, "delta": {key: value}}])
                    else:
                        for frag in _fragments(value):
                            yield ev([{"index": k, "finish_reason": None, "delta": {key: frag}}])
                extra = {"stop_reason": f"stopped at {said(rest.split(':')[-1])}"} if choice_extra and k == 0 else {}
                yield ev([{"index": k, "delta": {}, "finish_reason": "stop", **extra}])
            yield "data: [DONE]\n\n"

        return StreamingResponse(sse(), media_type="text/event-stream")

    return app


# -------------------------------------------------------------- what a caller can read (tests and bench)

SDK_FIELDS = frozenset({"model", "messages", "stream", "n", "user", "metadata", "stop", "response_format", "tools"})


def sdk_kwargs(body: dict[str, Any]) -> dict[str, Any]:
    """`create(**...)` arguments for a wire body: the SDK's own parameters, the rest as `extra_body` (which
    the SDK merges into the request on the wire)."""
    extra = {k: v for k, v in body.items() if k not in SDK_FIELDS}
    return {**{k: v for k, v in body.items() if k in SDK_FIELDS}, **({"extra_body": extra} if extra else {})}


def visible(items: list[Any]) -> list[str]:
    """Every text a caller can read from an answer, its chunks (fragments of each field joined), or raw
    response text (str items, kept as they are)."""
    from guardrails.wire.fields import leaves, to_plain

    joined: dict[tuple[Any, ...], str] = {}
    raw: list[str] = []
    for item in items:
        if isinstance(item, str):
            raw.append(item)
            continue
        for path, text in leaves(to_plain(item)):
            key = tuple(p for p in path if p != "choices")
            joined[key] = joined.get(key, "") + text
    return [*joined.values(), *raw]
