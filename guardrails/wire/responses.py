"""The OpenAI Responses API (POST /v1/responses), translated to and from chat completions.

Every upstream is reached through the chat shape: this version has no native Responses upstream (a
Responses request is always translated, whatever the upstream kind). `to_chat(request)` gives the chat
request the checks read: `instructions` -> a system message, `input` (a string or items) -> messages,
`function_call` items -> the assistant's tool_calls, `function_call_output` items -> tool messages,
input_image / input_file parts -> image_url / file parts (passed unchecked, like images in chat),
function tools, tool_choice, text.format -> response_format. `to_response(answer)` builds a Response
object from a checked chat answer and `EventWriter` the typed event stream (response.created ...
response.output_text.delta ... response.completed) from checked chunks. A refused answer is a
well-formed `incomplete` response (incomplete_details.reason = content_filter).

Rules: `reasoning` items in the input are dropped (the model's own earlier reasoning); stored state
(previous_response_id, conversation, prompt), built-in tools (web search, file search, ...) and item
types other than the above are refused with 400, since they cannot be translated and would otherwise
pass unchecked. Fields that change nothing a chat upstream does (store, metadata, include, truncation,
reasoning) are accepted and not forwarded.
"""

from __future__ import annotations

import time
from typing import Any

from guardrails.wire.translate import StreamState, Untranslatable, chat_message, chat_usage, image_url_part, text_of

_IGNORED = frozenset({"store", "metadata", "include", "truncation", "reasoning", "service_tier", "stream_options",
                      "top_logprobs", "max_tool_calls", "background"})
_REFUSED = frozenset({"previous_response_id", "conversation", "prompt"})
_PASSED = ("temperature", "top_p", "parallel_tool_calls", "user", "safety_identifier", "prompt_cache_key")


def _content(parts: Any, role: str, where: str) -> Any:
    if isinstance(parts, str):
        return parts
    if not isinstance(parts, list):
        raise Untranslatable("Message content must be a string or a list of parts.", "invalid_value", where)
    out: list[dict[str, Any]] = []
    for j, p in enumerate(parts):
        kind = p.get("type") if isinstance(p, dict) else None
        if kind in ("input_text", "output_text", "text", "refusal"):
            out.append({"type": "text", "text": text_of(p.get("text") if kind != "refusal" else p.get("refusal"))})
        elif kind == "input_image" and isinstance(p.get("image_url"), str):
            out.append(image_url_part(p["image_url"]))
        elif kind == "input_file" and (p.get("file_data") or p.get("file_id")):
            out.append({"type": "file", "file": {k: p[k] for k in ("file_data", "file_id", "filename") if p.get(k)}})
        else:
            raise Untranslatable(f"Content parts of type {kind!r} are not supported on this route.",
                                 "unsupported_content", f"{where}.{j}")
    if role == "assistant" or all(x["type"] == "text" for x in out) and role in ("system", "developer"):
        return "".join(x.get("text", "") for x in out)
    return out


def _items(items: list[Any]) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        where = f"input.{i}"
        if not isinstance(item, dict):
            raise Untranslatable("Input items must be objects.", "invalid_value", where)
        kind = item.get("type") or "message"
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise Untranslatable("A message's role must be user, assistant, system or developer.",
                                     "invalid_value", f"{where}.role")
            msgs.append({"role": role, "content": _content(item.get("content"), role, f"{where}.content")})
        elif kind == "function_call":
            call = {"id": text_of(item.get("call_id")), "type": "function",
                    "function": {"name": text_of(item.get("name")), "arguments": text_of(item.get("arguments"))}}
            last = msgs[-1] if msgs else None
            if last is not None and last["role"] == "assistant" and "tool_calls" in last:
                last["tool_calls"].append(call)
            else:
                msgs.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            out = item.get("output")
            content = out if isinstance(out, str) else _content(out, "tool", f"{where}.output")
            msgs.append({"role": "tool", "tool_call_id": text_of(item.get("call_id")), "content": content})
        elif kind == "reasoning":
            continue
        else:
            raise Untranslatable(f"Input items of type {kind!r} are not supported on this route.",
                                 "unsupported_input_item", where)
    return msgs


def _tools(tools: list[Any]) -> list[dict[str, Any]]:
    out = []
    for i, t in enumerate(tools):
        if not isinstance(t, dict) or t.get("type") != "function" or not isinstance(t.get("name"), str):
            raise Untranslatable("Only function tools are supported on this route.", "unsupported_tool", f"tools.{i}")
        fn = {"name": t["name"], "parameters": t.get("parameters") or {"type": "object", "properties": {}}}
        for key in ("description", "strict"):
            if t.get(key) is not None:
                fn[key] = t[key]
        out.append({"type": "function", "function": fn})
    return out


def _format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        return {"type": "json_schema", "json_schema": spec}
    raise Untranslatable("text.format must be text, json_object or json_schema.", "invalid_value", "text.format")


def to_chat(req: dict[str, Any]) -> dict[str, Any]:
    """The chat request for a Responses request (see the module's rules)."""
    for key in req:
        if key in _REFUSED and req[key] is not None:
            raise Untranslatable(f"{key!r} needs stored state, which this proxy does not keep: send the whole "
                                 "conversation in `input`.", "unsupported_parameter", key)
    if req.get("background"):
        raise Untranslatable("Background responses are not supported.", "unsupported_parameter", "background")
    known = {"model", "input", "instructions", "stream", "max_output_tokens", "tools", "tool_choice", "text",
             *_PASSED, *_REFUSED}
    for key in req:
        if key not in known and key not in _IGNORED:
            raise Untranslatable(f"The parameter {key!r} is not supported on this route.", "unsupported_parameter", key)
    msgs: list[dict[str, Any]] = []
    if isinstance(req.get("instructions"), str) and req["instructions"]:
        msgs.append({"role": "system", "content": req["instructions"]})
    inp = req.get("input")
    msgs += [{"role": "user", "content": inp}] if isinstance(inp, str) else _items(inp or [])
    if not msgs:
        raise Untranslatable("The request has no input.", "invalid_value", "input")
    out: dict[str, Any] = {"model": req["model"], "messages": msgs}
    if req.get("max_output_tokens") is not None:
        out["max_tokens"] = req["max_output_tokens"]
    for key in _PASSED:
        if req.get(key) is not None:
            out[key] = req[key]
    if req.get("tools"):
        out["tools"] = _tools(req["tools"])
    tc = req.get("tool_choice")
    if isinstance(tc, str):
        out["tool_choice"] = tc
    elif isinstance(tc, dict):
        if tc.get("type") != "function" or not isinstance(tc.get("name"), str):
            raise Untranslatable("tool_choice must be auto, none, required or a function.", "invalid_value",
                                 "tool_choice")
        out["tool_choice"] = {"type": "function", "function": {"name": tc["name"]}}
    fmt = _format(req.get("text"))
    if fmt is not None:
        out["response_format"] = fmt
    if req.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


# --------------------------------------------------------------------------------- answers


def _status(finish: str | None) -> tuple[str, dict[str, str] | None]:
    if finish == "content_filter":
        return "incomplete", {"reason": "content_filter"}
    if finish == "length":
        return "incomplete", {"reason": "max_output_tokens"}
    return "completed", None


def _usage(p: int, c: int) -> dict[str, Any]:
    return {"input_tokens": p, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": c,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": p + c}


def _text_item(rid: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{rid}", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]}


def _call_item(rid: str, k: int, call_id: str, name: str, args: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{rid}_{k}", "call_id": call_id or f"call_{rid}_{k}", "name": name,
            "arguments": args, "status": status}


def response_object(req: dict[str, Any], rid: str, model: str | None, *, status: str, output: list[dict[str, Any]],
                    incomplete: dict[str, str] | None, usage: dict[str, Any] | None, created: int) -> dict[str, Any]:
    return {"id": f"resp_{rid}", "object": "response", "created_at": created, "status": status, "error": None,
            "incomplete_details": incomplete, "instructions": req.get("instructions"),
            "max_output_tokens": req.get("max_output_tokens"), "model": model or text_of(req.get("model")),
            "output": output, "parallel_tool_calls": bool(req.get("parallel_tool_calls", True)),
            "previous_response_id": None, "temperature": req.get("temperature"), "top_p": req.get("top_p"),
            "tool_choice": req.get("tool_choice") or "auto", "tools": req.get("tools") or [],
            "text": req.get("text") or {"format": {"type": "text"}}, "truncation": "disabled",
            "metadata": req.get("metadata") or {}, "usage": usage}


def to_response(resp: dict[str, Any], req: dict[str, Any], *, request_id: str) -> dict[str, Any]:
    """A Response object for a checked chat answer."""
    msg, finish = chat_message(resp)
    text = text_of(msg.get("content")) + text_of(msg.get("refusal"))
    output = [_text_item(request_id, text)] if text or not msg.get("tool_calls") else []
    for k, tc in enumerate(msg.get("tool_calls") or []):
        fn = tc.get("function") if isinstance(tc, dict) and isinstance(tc.get("function"), dict) else {}
        output.append(_call_item(request_id, k, text_of(tc.get("id")), text_of(fn.get("name")),
                                 text_of(fn.get("arguments"))))
    status, incomplete = _status(str(finish) if finish else None)
    created = resp.get("created") if isinstance(resp.get("created"), int) else int(time.time())
    return response_object(req, request_id, text_of(resp.get("model")) or None, status=status, output=output,
                           incomplete=incomplete, usage=_usage(*chat_usage(resp)), created=created)


class EventWriter:
    """Checked chat chunks in, Responses stream events out (each with its sequence_number). Text streams
    as response.output_text.delta as soon as it is released; a function call is sent whole (added,
    arguments delta, done) at the end, once its checked name and arguments are complete."""

    def __init__(self, request_id: str, model: str | None, req: dict[str, Any]):
        self.rid = request_id
        self.req = req
        self.st = StreamState(model=model)
        self.seq = 0
        self.created = int(time.time())
        self.started = False
        self.text_open = False

    def _ev(self, kind: str, **data: Any) -> tuple[str, dict[str, Any]]:
        ev = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return kind, ev

    def _resp(self, status: str, output: list[dict[str, Any]], incomplete: dict[str, str] | None = None,
              usage: dict[str, Any] | None = None) -> dict[str, Any]:
        return response_object(self.req, self.rid, self.st.model, status=status, output=output, incomplete=incomplete,
                               usage=usage, created=self.created)

    def _start(self) -> list[tuple[str, dict[str, Any]]]:
        if self.started:
            return []
        self.started = True
        return [self._ev("response.created", response=self._resp("in_progress", [])),
                self._ev("response.in_progress", response=self._resp("in_progress", []))]

    def feed(self, chunks: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        out = self._start()
        for chunk in chunks:
            text, _ = self.st.take(chunk)
            if not text:
                continue
            if not self.text_open:
                self.text_open = True
                item = _text_item(self.rid, "", "in_progress")
                item["content"] = []
                out.append(self._ev("response.output_item.added", output_index=0, item=item))
                out.append(self._ev("response.content_part.added", item_id=f"msg_{self.rid}", output_index=0,
                                    content_index=0, part={"type": "output_text", "text": "", "annotations": [],
                                                           "logprobs": []}))
            out.append(self._ev("response.output_text.delta", item_id=f"msg_{self.rid}", output_index=0,
                                content_index=0, delta=text, logprobs=[]))
        return out

    def end(self) -> list[tuple[str, dict[str, Any]]]:
        out = self._start()
        output: list[dict[str, Any]] = []
        if self.text_open:
            item = _text_item(self.rid, self.st.text)
            out.append(self._ev("response.output_text.done", item_id=item["id"], output_index=0, content_index=0,
                                text=self.st.text, logprobs=[]))
            out.append(self._ev("response.content_part.done", item_id=item["id"], output_index=0, content_index=0,
                                part=item["content"][0]))
            out.append(self._ev("response.output_item.done", output_index=0, item=item))
            output.append(item)
        for k in sorted(self.st.tools):
            call = self.st.tools[k]
            idx = len(output)
            done = _call_item(self.rid, k, call.id, call.name, call.arguments)
            out.append(self._ev("response.output_item.added", output_index=idx,
                                item={**done, "arguments": "", "status": "in_progress"}))
            out.append(self._ev("response.function_call_arguments.delta", item_id=done["id"], output_index=idx,
                                delta=call.arguments))
            out.append(self._ev("response.function_call_arguments.done", item_id=done["id"], output_index=idx,
                                name=call.name, arguments=call.arguments))
            out.append(self._ev("response.output_item.done", output_index=idx, item=done))
            output.append(done)
        status, incomplete = _status(self.st.finish)
        resp = self._resp(status, output, incomplete, _usage(self.st.prompt_tokens, self.st.completion_tokens))
        out.append(self._ev("response.completed" if status == "completed" else "response.incomplete", response=resp))
        return out

    def error(self, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """An `error` event: the Responses fields (code, message, param) and the OpenAI error body, which
        the official SDK raises as an APIError."""
        err = body.get("error") if isinstance(body.get("error"), dict) else {}
        return self._ev("error", code=err.get("code"), message=err.get("message"), param=err.get("param"),
                        error=err)


__all__ = ["EventWriter", "response_object", "to_chat", "to_response"]
