"""POST /v1/responses: the OpenAI Responses API on the one call lifecycle (`handlers.ProxyCall`),
translated to chat completions for every upstream kind (`guardrails.wire.responses`); answers as
Response objects, streams as typed events built from checked chunks, errors in the OpenAI shape."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardrails.proxy.routes import Framer, RouteCodec, sse_event
from guardrails.proxy.schemas import ResponsesRequest
from guardrails.proxy.upstream import Endpoint
from guardrails.wire import openai as wire
from guardrails.wire import responses


class ResponsesFramer(Framer):
    def __init__(self, request_id: str, model: str | None, data: dict[str, Any]):
        self.writer = responses.EventWriter(request_id, model, data)

    def chunks(self, chunks: Sequence[dict[str, Any]]) -> list[bytes]:
        return [sse_event(name, ev) for name, ev in self.writer.feed(list(chunks))]

    def end(self) -> list[bytes]:
        return [sse_event(name, ev) for name, ev in self.writer.end()]

    def error(self, body: dict[str, Any]) -> list[bytes]:
        return [sse_event(*self.writer.error(body))]


class ResponsesCodec(RouteCodec):
    name = "responses"
    schema = ResponsesRequest
    endpoint: Endpoint = "chat/completions"
    kind: wire.Kind | None = "chat"

    def to_wire(self, data: dict[str, Any], pass_fields: Sequence[str] = ()) -> dict[str, Any]:
        return self.translate(responses.to_chat, data, pass_fields)

    def answer(self, out: dict[str, Any], data: dict[str, Any], request_id: str) -> dict[str, Any]:
        return responses.to_response(out, data, request_id=request_id)

    def framer(self, request_id: str, model: str | None, data: dict[str, Any]) -> Framer:
        return ResponsesFramer(request_id, model, data)
