"""POST /v1/messages: the Anthropic Messages API on the one call lifecycle (`handlers.ProxyCall`).

The request is translated to the chat shape (`guardrails.wire.anthropic.to_chat`), checked, routed and
sent to any upstream kind (an `anthropic` upstream translates it back); the checked answer goes back as
an Anthropic message, a stream as Anthropic's events built from the checked chunks, and errors in
Anthropic's error shape ({"type": "error", "error": {"type", "message"}}), also mid-stream (`event: error`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardrails.proxy.errors import ProxyError
from guardrails.proxy.routes import Framer, RouteCodec, sse_event
from guardrails.proxy.schemas import AnthropicMessagesRequest
from guardrails.proxy.upstream import Endpoint
from guardrails.wire import anthropic
from guardrails.wire import openai as wire


class AnthropicFramer(Framer):
    def __init__(self, request_id: str, model: str | None):
        self.writer = anthropic.EventWriter(request_id, model)

    def chunks(self, chunks: Sequence[dict[str, Any]]) -> list[bytes]:
        return [sse_event(name, data) for name, data in self.writer.feed(list(chunks))]

    def end(self) -> list[bytes]:
        return [sse_event(name, data) for name, data in self.writer.end()]

    def error(self, body: dict[str, Any]) -> list[bytes]:
        return [sse_event("error", body)]


class MessagesCodec(RouteCodec):
    name = "messages"
    schema = AnthropicMessagesRequest
    endpoint: Endpoint = "chat/completions"
    kind: wire.Kind | None = "chat"

    def to_wire(self, data: dict[str, Any], pass_fields: Sequence[str] = ()) -> dict[str, Any]:
        return self.translate(anthropic.to_chat, data, pass_fields)

    def answer(self, out: dict[str, Any], data: dict[str, Any], request_id: str) -> dict[str, Any]:
        return anthropic.to_message(out, request_id=request_id, model=data.get("model"))

    def framer(self, request_id: str, model: str | None, data: dict[str, Any]) -> Framer:
        return AnthropicFramer(request_id, model)

    def error_body(self, exc: ProxyError, request_id: str) -> dict[str, Any]:
        return anthropic.error_body(exc.status, exc.message, request_id, code=exc.code, param=exc.param, **exc.extra)
