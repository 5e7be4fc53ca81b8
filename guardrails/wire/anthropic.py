"""The Anthropic Messages API, translated to and from the OpenAI chat shape the checks read.

Client side (`POST /v1/messages`): `to_chat(request)` gives the chat request every check reads (system
-> a system message; text blocks -> text parts; image blocks -> image_url parts, passed unchecked like
images in chat; tool_use blocks -> the assistant's tool_calls; tool_result blocks -> tool messages;
tools and tool_choice -> function tools). `to_message(answer)` turns a checked chat answer into an
Anthropic message and `EventWriter` turns checked chat chunks into Anthropic's server-sent events
(message_start, content_block_start / delta / stop, message_delta, message_stop).

Upstream side (upstream kind `anthropic`): `from_chat(request)` is the reverse translation,
`answer_to_chat(message)` and `ChunkReader` turn Anthropic answers and events into chat answers and
chunks, so every upstream looks the same to the call lifecycle.

Rules: `thinking` / `redacted_thinking` blocks in the history are dropped (the model's own earlier
reasoning, which a chat upstream cannot take); `document`, `search_result`, server-tool and any other
block types are refused (400 unsupported_content_block): they cannot be translated and would otherwise
pass unchecked.
"""

from __future__ import annotations

import json
import time
from typing import Any

from guardrails.wire.translate import (StreamState, Untranslatable, chat_message, chat_usage, image_url_part,
                                       parse_args, text_of)

DEFAULT_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; a chat request without one gets this
_DROPPED_BLOCKS = frozenset({"thinking", "redacted_thinking"})
# top-level fields with no chat counterpart that change nothing the checks or a chat upstream see
_IGNORED = frozenset({"service_tier", "anthropic_version", "anthropic_beta", "context_management", "thinking"})
_STOP_TO_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                   "refusal": "content_filter", "pause_turn": "stop", "model_context_window_exceeded": "length"}
_FINISH_TO_STOP = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use",
                   "function_call": "tool_use", "content_filter": "refusal"}


# ------------------------------------------------------------------------- client side: request


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    src = block.get("source") if isinstance(block.get("source"), dict) else {}
    if src.get("type") == "base64" and isinstance(src.get("data"), str):
        return image_url_part(f"data:{text_of(src.get('media_type')) or 'image/png'};base64,{src['data']}")
    if src.get("type") == "url" and isinstance(src.get("url"), str):
        return image_url_part(src["url"])
    raise Untranslatable("Only base64 and url image sources are supported.", "unsupported_content_block", where)


def _tool_result_text(content: Any, where: str) -> str | list[dict[str, Any]]:
    if isinstance(content, str) or content is None:
        return content or ""
    if not isinstance(content, list):
        raise Untranslatable("tool_result content must be a string or a list of blocks.", "invalid_value", where)
    parts: list[dict[str, Any]] = []
    for j, b in enumerate(content):
        if isinstance(b, dict) and b.get("type") == "text":
            parts.append({"type": "text", "text": text_of(b.get("text"))})
        elif isinstance(b, dict) and b.get("type") == "image":
            parts.append(_image(b, f"{where}.{j}"))
        else:
            raise Untranslatable("tool_result blocks may hold text and images only.", "unsupported_content_block",
                                 f"{where}.{j}")
    if all(p["type"] == "text" for p in parts):
        return "".join(p["text"] for p in parts)
    return parts


def _message(i: int, msg: dict[str, Any]) -> list[dict[str, Any]]:
    role = msg.get("role")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    parts: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    results: list[dict[str, Any]] = []
    for j, b in enumerate(content if isinstance(content, list) else []):
        where = f"messages.{i}.content.{j}"
        kind = b.get("type") if isinstance(b, dict) else None
        if kind == "text":
            parts.append({"type": "text", "text": text_of(b.get("text"))})
        elif kind == "image":
            parts.append(_image(b, where))
        elif kind == "tool_use" and role == "assistant":
            calls.append({"id": text_of(b.get("id")), "type": "function", "function": {
                "name": text_of(b.get("name")), "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False)}})
        elif kind == "tool_result" and role == "user":
            text = _tool_result_text(b.get("content"), where)
            if b.get("is_error"):
                text = f"[tool error] {text}" if isinstance(text, str) else text
            results.append({"role": "tool", "tool_call_id": text_of(b.get("tool_use_id")), "content": text})
        elif kind in _DROPPED_BLOCKS:
            continue
        else:
            raise Untranslatable(f"Content blocks of type {kind!r} are not supported on this route.",
                                 "unsupported_content_block", where)
    out: list[dict[str, Any]] = list(results)  # tool results answer the previous assistant turn: first
    if calls:
        text = "".join(p.get("text", "") for p in parts if p["type"] == "text")
        out.append({"role": "assistant", "content": text or None, "tool_calls": calls})
    elif parts:
        simple = all(p["type"] == "text" for p in parts)
        out.append({"role": role, "content": "".join(p["text"] for p in parts) if simple and role == "assistant"
                    else parts})
    return out


def _tools(tools: Any) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(tools or []):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str) or (t.get("type") not in (None, "custom")):
            raise Untranslatable("Only custom tools (name, description, input_schema) are supported.",
                                 "unsupported_tool", f"tools.{i}")
        fn: dict[str, Any] = {"name": t["name"], "parameters": t.get("input_schema") or {"type": "object"}}
        if isinstance(t.get("description"), str):
            fn["description"] = t["description"]
        out.append({"type": "function", "function": fn})
    return out


def _tool_choice(tc: Any) -> Any:
    if not isinstance(tc, dict):
        raise Untranslatable("tool_choice must be an object.", "invalid_value", "tool_choice")
    kind = tc.get("type")
    if kind == "tool" and isinstance(tc.get("name"), str):
        return {"type": "function", "function": {"name": tc["name"]}}
    if kind in ("auto", "any", "none"):
        return {"auto": "auto", "any": "required", "none": "none"}[kind]
    raise Untranslatable("tool_choice type must be auto, any, tool or none.", "invalid_value", "tool_choice")


def to_chat(req: dict[str, Any]) -> dict[str, Any]:
    """The chat request for an Anthropic Messages request (see the module's rules)."""
    out: dict[str, Any] = {"model": req["model"], "max_tokens": req["max_tokens"]}
    messages: list[dict[str, Any]] = []
    system = req.get("system")
    if isinstance(system, str) and system:
        messages.append({"role": "system", "content": system})
    elif isinstance(system, list):
        for j, b in enumerate(system):
            if not isinstance(b, dict) or b.get("type") != "text":
                raise Untranslatable("system blocks must be text blocks.", "unsupported_content_block", f"system.{j}")
        messages.append({"role": "system", "content": "".join(text_of(b.get("text")) for b in system)})
    for i, msg in enumerate(req.get("messages") or []):
        messages.extend(_message(i, msg))
    out["messages"] = messages
    for key in ("temperature", "top_p", "top_k"):
        if req.get(key) is not None:
            out[key] = req[key]
    if req.get("stop_sequences"):
        out["stop"] = req["stop_sequences"]
    if req.get("tools"):
        out["tools"] = _tools(req["tools"])
    if req.get("tool_choice") is not None:
        out["tool_choice"] = _tool_choice(req["tool_choice"])
    meta = req.get("metadata")
    if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
        out["user"] = meta["user_id"]  # hashed like any end-user id
    if req.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    known = {"model", "max_tokens", "messages", "system", "temperature", "top_p", "top_k", "stop_sequences", "tools",
             "tool_choice", "metadata", "stream"}
    for key in req:
        if key not in known and key not in _IGNORED:
            raise Untranslatable(f"The parameter {key!r} is not supported on this route.", "unsupported_parameter", key)
    return out


# ------------------------------------------------------------------------- client side: answers


def _blocks(text: str, tools: list[tuple[str, str, str]]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if text or not tools:
        blocks.append({"type": "text", "text": text})
    for call_id, name, args in tools:
        blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": parse_args(args)})
    return blocks


def to_message(resp: dict[str, Any], *, request_id: str, model: str | None) -> dict[str, Any]:
    """An Anthropic message for a checked chat answer (a refused answer stops with `refusal`)."""
    msg, finish = chat_message(resp)
    text = text_of(msg.get("content")) + text_of(msg.get("refusal"))
    tools = []
    for tc in msg.get("tool_calls") or []:
        fn = tc.get("function") if isinstance(tc, dict) and isinstance(tc.get("function"), dict) else {}
        tools.append((text_of(tc.get("id")) or f"toolu_{request_id}", text_of(fn.get("name")),
                      text_of(fn.get("arguments"))))
    p, c = chat_usage(resp)
    return {"id": f"msg_{request_id}", "type": "message", "role": "assistant", "model": resp.get("model") or model or "",
            "content": _blocks(text, tools), "stop_reason": _FINISH_TO_STOP.get(str(finish), "end_turn"),
            "stop_sequence": None, "usage": {"input_tokens": p, "output_tokens": c}}


class EventWriter:
    """Checked chat chunks in, Anthropic stream events out. Text streams as text_delta events as soon as
    it is released; a tool call becomes one tool_use block when its (checked) name and arguments are
    complete, at the end of the answer. message_delta and message_stop come at `end()`."""

    def __init__(self, request_id: str, model: str | None):
        self.rid = request_id
        self.st = StreamState(model=model)
        self.index = -1
        self.open_text = False
        self.started = False

    def _start(self) -> list[tuple[str, dict[str, Any]]]:
        if self.started:
            return []
        self.started = True
        return [("message_start", {"type": "message_start", "message": {
            "id": f"msg_{self.rid}", "type": "message", "role": "assistant", "model": self.st.model or "",
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self.st.prompt_tokens, "output_tokens": 0}}})]

    def _close_text(self) -> list[tuple[str, dict[str, Any]]]:
        if not self.open_text:
            return []
        self.open_text = False
        return [("content_block_stop", {"type": "content_block_stop", "index": self.index})]

    def feed(self, chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out = self._start()
        for chunk in chunks:
            text, _ = self.st.take(chunk)
            if text:
                if not self.open_text:
                    self.index += 1
                    self.open_text = True
                    out.append(("content_block_start", {"type": "content_block_start", "index": self.index,
                                                        "content_block": {"type": "text", "text": ""}}))
                out.append(("content_block_delta", {"type": "content_block_delta", "index": self.index,
                                                    "delta": {"type": "text_delta", "text": text}}))
        return out

    def end(self) -> list[tuple[str, dict[str, Any]]]:
        out = self._start() + self._close_text()
        for k in sorted(self.st.tools):
            call = self.st.tools[k]
            self.index += 1
            out.append(("content_block_start", {"type": "content_block_start", "index": self.index, "content_block": {
                "type": "tool_use", "id": call.id or f"toolu_{self.rid}_{k}", "name": call.name, "input": {}}}))
            out.append(("content_block_delta", {"type": "content_block_delta", "index": self.index, "delta": {
                "type": "input_json_delta", "partial_json": json.dumps(parse_args(call.arguments), ensure_ascii=False)}}))
            out.append(("content_block_stop", {"type": "content_block_stop", "index": self.index}))
        stop = _FINISH_TO_STOP.get(self.st.finish or "stop", "end_turn")
        out.append(("message_delta", {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None},
                                      "usage": {"output_tokens": self.st.completion_tokens}}))
        out.append(("message_stop", {"type": "message_stop"}))
        return out


# ---------------------------------------------------------------------------- errors


_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 499: "invalid_request_error",
                503: "overloaded_error", 504: "timeout_error"}


def error_body(status: int, message: str, request_id: str | None = None, **extra: Any) -> dict[str, Any]:
    """Anthropic's error shape ({"type": "error", "error": {"type", "message"}}); our code and request id
    ride along as extra fields."""
    err: dict[str, Any] = {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}
    err.update({k: v for k, v in extra.items() if v is not None})
    body: dict[str, Any] = {"type": "error", "error": err}
    if request_id:
        body["request_id"] = request_id
    return body


# ------------------------------------------------------------------------- upstream side


def _content_blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for p in content or []:
        if not isinstance(p, dict):
            continue
        if p.get("type") == "text":
            blocks.append({"type": "text", "text": text_of(p.get("text"))})
        elif p.get("type") == "image_url":
            url = text_of((p.get("image_url") or {}).get("url"))
            if url.startswith("data:") and ";base64," in url:
                media, data = url[5:].split(";base64,", 1)
                blocks.append({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            else:
                blocks.append({"type": "image", "source": {"type": "url", "url": url}})
        else:
            raise Untranslatable(f"Content parts of type {p.get('type')!r} cannot go to an anthropic upstream.",
                                 "unsupported_content_block")
    return blocks


def from_chat(req: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic Messages request for a (checked) chat request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if messages and messages[-1]["role"] == role:  # Anthropic wants user and assistant turns to alternate
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})

    for m in req.get("messages") or []:
        role = m.get("role")
        if role in ("system", "developer"):
            system.append("".join(b["text"] for b in _content_blocks(m.get("content")) if b["type"] == "text"))
        elif role == "tool":
            add("user", [{"type": "tool_result", "tool_use_id": text_of(m.get("tool_call_id")),
                          "content": _content_blocks(m.get("content"))}])
        elif role == "assistant":
            blocks = _content_blocks(m.get("content"))
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                blocks.append({"type": "tool_use", "id": text_of(tc.get("id")), "name": text_of(fn.get("name")),
                               "input": parse_args(text_of(fn.get("arguments")))})
            add("assistant", blocks)
        else:
            add("user", _content_blocks(m.get("content")))
    out: dict[str, Any] = {"model": req.get("model"), "messages": messages,
                           "max_tokens": req.get("max_tokens") or req.get("max_completion_tokens") or DEFAULT_MAX_TOKENS}
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k", "stream"):
        if req.get(key) is not None:
            out[key] = req[key]
    stop = req.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else stop
    tools = []
    for t in req.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict):
            tools.append({"name": fn.get("name"), "description": fn.get("description") or "",
                          "input_schema": fn.get("parameters") or {"type": "object"}})
    if tools:
        out["tools"] = tools
    tc = req.get("tool_choice")
    if isinstance(tc, str):
        out["tool_choice"] = {"type": {"required": "any"}.get(tc, tc)}
    elif isinstance(tc, dict) and isinstance(tc.get("function"), dict):
        out["tool_choice"] = {"type": "tool", "name": tc["function"].get("name")}
    if isinstance(req.get("user"), str):
        out["metadata"] = {"user_id": req["user"]}
    return out


def answer_to_chat(msg: dict[str, Any]) -> dict[str, Any]:
    """A chat answer for an Anthropic message (thinking blocks dropped)."""
    text, calls = "", []
    for b in msg.get("content") or []:
        if not isinstance(b, dict):
            continue
        if b.get("type") == "text":
            text += text_of(b.get("text"))
        elif b.get("type") == "tool_use":
            calls.append({"id": text_of(b.get("id")), "type": "function", "function": {
                "name": text_of(b.get("name")), "arguments": json.dumps(b.get("input") or {}, ensure_ascii=False)}})
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        message["tool_calls"] = calls
    usage = msg.get("usage") if isinstance(msg.get("usage"), dict) else {}
    p, c = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {"id": text_of(msg.get("id")) or "msg", "object": "chat.completion", "created": int(time.time()),
            "model": text_of(msg.get("model")), "choices": [{"index": 0, "message": message, "logprobs": None,
            "finish_reason": _STOP_TO_FINISH.get(str(msg.get("stop_reason")), "stop")}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}


class ChunkReader:
    """Anthropic stream events in, chat chunks out (error events pass as {"error": ...})."""

    def __init__(self) -> None:
        self.id = "msg"
        self.model = ""
        self.created = int(time.time())
        self.tools: dict[int, int] = {}  # content block index -> tool call index
        self.prompt_tokens = 0

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": choices, **extra}

    def read(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        kind = ev.get("type")
        if kind == "error" or "error" in ev:
            return [{"error": ev.get("error") if isinstance(ev.get("error"), dict) else {"message": "error"}}]
        if kind == "message_start":
            m = ev.get("message") if isinstance(ev.get("message"), dict) else {}
            self.id, self.model = text_of(m.get("id")) or self.id, text_of(m.get("model"))
            usage = m.get("usage") if isinstance(m.get("usage"), dict) else {}
            self.prompt_tokens = usage.get("input_tokens") or 0
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "content_block_start":
            block = ev.get("content_block") if isinstance(ev.get("content_block"), dict) else {}
            if block.get("type") == "tool_use":
                k = self.tools[ev.get("index", 0)] = len(self.tools)
                return [self._chunk({"tool_calls": [{"index": k, "id": text_of(block.get("id")), "type": "function",
                                                     "function": {"name": text_of(block.get("name")), "arguments": ""}}]})]
            if block.get("type") == "text" and text_of(block.get("text")):
                return [self._chunk({"content": block["text"]})]
            return []
        if kind == "content_block_delta":
            d = ev.get("delta") if isinstance(ev.get("delta"), dict) else {}
            if d.get("type") == "text_delta":
                return [self._chunk({"content": text_of(d.get("text"))})]
            if d.get("type") == "input_json_delta" and ev.get("index", 0) in self.tools:
                return [self._chunk({"tool_calls": [{"index": self.tools[ev.get("index", 0)],
                                                     "function": {"arguments": text_of(d.get("partial_json"))}}]})]
            return []  # thinking and signature deltas are not passed on
        if kind == "message_delta":
            d = ev.get("delta") if isinstance(ev.get("delta"), dict) else {}
            usage = ev.get("usage") if isinstance(ev.get("usage"), dict) else {}
            c = usage.get("output_tokens") or 0
            return [self._chunk({}, _STOP_TO_FINISH.get(str(d.get("stop_reason")), "stop")),
                    self._chunk(None, usage={"prompt_tokens": self.prompt_tokens, "completion_tokens": c,
                                             "total_tokens": self.prompt_tokens + c})]
        return []  # ping, content_block_stop, message_stop


__all__ = ["ChunkReader", "DEFAULT_VERSION", "EventWriter", "answer_to_chat", "error_body", "from_chat", "to_chat",
           "to_message"]
