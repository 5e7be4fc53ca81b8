"""The upstream side of the Responses API: for an upstream that declares it speaks Responses natively
(`api: responses` in the policy), the checked chat request is sent as a Responses request
(`from_chat`), and its Response objects and typed events come back as chat answers and chunks
(`answer_to_chat`, `ChunkReader`), so the call lifecycle (and its ChunkGuard) sees one shape.
Reasoning items and annotations of the upstream's answer are not passed on."""

from __future__ import annotations

import time
from typing import Any

from guardrails.wire.translate import Untranslatable, text_of

_FINISH = {"max_output_tokens": "length", "content_filter": "content_filter"}


def _parts(content: Any, role: str) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    out = []
    for p in content:
        if not isinstance(p, dict):
            continue
        if p.get("type") == "text":
            out.append({"type": "output_text" if role == "assistant" else "input_text", "text": text_of(p.get("text"))})
        elif p.get("type") == "image_url":
            out.append({"type": "input_image", "image_url": text_of((p.get("image_url") or {}).get("url"))})
        elif p.get("type") == "file":
            out.append({"type": "input_file", **(p.get("file") or {})})
        else:
            raise Untranslatable(f"Content parts of type {p.get('type')!r} cannot go to a Responses upstream.",
                                 "unsupported_content")
    return out


def from_chat(req: dict[str, Any]) -> dict[str, Any]:
    """The Responses request for a (checked) chat request."""
    items: list[dict[str, Any]] = []
    for m in req.get("messages") or []:
        role = m.get("role")
        if role == "tool":
            content = m.get("content")
            items.append({"type": "function_call_output", "call_id": text_of(m.get("tool_call_id")),
                          "output": content if isinstance(content, str) else _parts(content, "user")})
            continue
        if m.get("content"):
            items.append({"type": "message", "role": role, "content": _parts(m.get("content"), str(role))})
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") or {}
            items.append({"type": "function_call", "call_id": text_of(tc.get("id")), "name": text_of(fn.get("name")),
                          "arguments": text_of(fn.get("arguments"))})
    out: dict[str, Any] = {"model": req.get("model"), "input": items, "store": False}
    if req.get("max_tokens") or req.get("max_completion_tokens"):
        out["max_output_tokens"] = req.get("max_tokens") or req.get("max_completion_tokens")
    for key in ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key",
                "stream"):
        if req.get(key) is not None:
            out[key] = req[key]
    tools = []
    for t in req.get("tools") or []:
        fn = t.get("function") if isinstance(t, dict) else None
        if isinstance(fn, dict):
            tools.append({"type": "function", **fn})
    if tools:
        out["tools"] = tools
    tc = req.get("tool_choice")
    if isinstance(tc, str):
        out["tool_choice"] = tc
    elif isinstance(tc, dict) and isinstance(tc.get("function"), dict):
        out["tool_choice"] = {"type": "function", "name": tc["function"].get("name")}
    fmt = req.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        out["text"] = {"format": {"type": "json_schema", **(fmt.get("json_schema") or {})}}
    elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
        out["text"] = {"format": {"type": "json_object"}}
    return out


def _finish(resp: dict[str, Any], has_calls: bool) -> str:
    if resp.get("status") == "incomplete":
        reason = (resp.get("incomplete_details") or {}).get("reason")
        return _FINISH.get(str(reason), "length")
    return "tool_calls" if has_calls else "stop"


def answer_to_chat(resp: dict[str, Any]) -> dict[str, Any]:
    """A chat answer for a Response object: its message text and function calls."""
    text, calls = "", []
    for item in resp.get("output") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for p in item.get("content") or []:
                if isinstance(p, dict) and p.get("type") in ("output_text", "refusal"):
                    text += text_of(p.get("text") if p.get("type") == "output_text" else p.get("refusal"))
        elif item.get("type") == "function_call":
            calls.append({"id": text_of(item.get("call_id")), "type": "function", "function": {
                "name": text_of(item.get("name")), "arguments": text_of(item.get("arguments"))}})
    msg: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else "")}
    if calls:
        msg["tool_calls"] = calls
    usage = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    p, c = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
    return {"id": text_of(resp.get("id")) or "resp", "object": "chat.completion",
            "created": resp.get("created_at") if isinstance(resp.get("created_at"), int) else int(time.time()),
            "model": text_of(resp.get("model")), "choices": [{"index": 0, "message": msg, "logprobs": None,
                                                             "finish_reason": _finish(resp, bool(calls))}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}


class ChunkReader:
    """Responses stream events in, chat chunks out (error and response.failed pass as {"error": ...})."""

    def __init__(self) -> None:
        self.id, self.model, self.created = "resp", "", int(time.time())
        self.calls: dict[str, int] = {}  # item id -> tool call index

    def _chunk(self, delta: dict[str, Any] | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
        choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": choices, **extra}

    def read(self, ev: dict[str, Any]) -> list[dict[str, Any]]:
        kind = ev.get("type")
        if kind == "error" or kind == "response.failed":
            err = ev.get("error") or (ev.get("response") or {}).get("error") or {}
            return [{"error": err if isinstance(err, dict) else {"message": "error"}}]
        if kind == "response.created":
            r = ev.get("response") if isinstance(ev.get("response"), dict) else {}
            self.id, self.model = text_of(r.get("id")) or self.id, text_of(r.get("model"))
            return [self._chunk({"role": "assistant", "content": ""})]
        if kind == "response.output_text.delta":
            return [self._chunk({"content": text_of(ev.get("delta"))})]
        if kind == "response.refusal.delta":
            return [self._chunk({"content": text_of(ev.get("delta"))})]
        if kind == "response.output_item.added":
            item = ev.get("item") if isinstance(ev.get("item"), dict) else {}
            if item.get("type") == "function_call":
                k = self.calls[text_of(item.get("id"))] = len(self.calls)
                return [self._chunk({"tool_calls": [{"index": k, "id": text_of(item.get("call_id")), "type": "function",
                                                     "function": {"name": text_of(item.get("name")),
                                                                  "arguments": text_of(item.get("arguments"))}}]})]
            return []
        if kind == "response.function_call_arguments.delta" and text_of(ev.get("item_id")) in self.calls:
            return [self._chunk({"tool_calls": [{"index": self.calls[text_of(ev.get("item_id"))],
                                                 "function": {"arguments": text_of(ev.get("delta"))}}]})]
        if kind in ("response.completed", "response.incomplete"):
            r = ev.get("response") if isinstance(ev.get("response"), dict) else {}
            usage = r.get("usage") if isinstance(r.get("usage"), dict) else {}
            p, c = usage.get("input_tokens") or 0, usage.get("output_tokens") or 0
            return [self._chunk({}, _finish(r, bool(self.calls))),
                    self._chunk(None, usage={"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c})]
        return []  # in_progress, content parts, *.done, reasoning events: nothing new to the caller


__all__ = ["ChunkReader", "answer_to_chat", "from_chat"]
