"""The proxy's routes as data: what differs between /v1/chat/completions, /v1/completions,
/v1/embeddings, /v1/messages and /v1/responses is described here, and `handlers.ProxyCall` runs the one
call lifecycle (auth, limits, body, `guardrails.call.Call`, upstream, framing) for all of them.

A `RouteCodec` says:
  - `schema`: the pydantic model the body must satisfy (4xx otherwise, in the route's error shape);
  - `to_wire(data)`: the OpenAI-shaped request the checks read and the upstream client receives
    (identity for the OpenAI routes; a translation for Anthropic Messages and Responses);
  - `endpoint` / `kind`: the upstream endpoint and the answer kind the output checks read (None: the
    answer holds no text, as for embeddings: there are no output checks);
  - `answer(out, data)`: the checked OpenAI answer in the route's own shape;
  - `framer(...)`: the server-sent events of a streamed answer, from checked chunks;
  - `error_body` / `error_response`: errors in the route's own shape.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from starlette.responses import Response

from guardrails.proxy.errors import ACTION_HEADER, REQUEST_ID_HEADER, ProxyError, dumps, json_response
from guardrails.proxy.schemas import ChatCompletionRequest, CompletionRequest, EmbeddingRequest, validate
from guardrails.proxy.upstream import Endpoint
from guardrails.wire import openai as wire


class Framer:
    """OpenAI server-sent events: one `data:` line per chunk, `[DONE]` at the end."""

    def chunks(self, chunks: Sequence[dict[str, Any]]) -> list[bytes]:
        return [b"data: " + dumps(c) + b"\n\n" for c in chunks]

    def end(self) -> list[bytes]:
        return [b"data: [DONE]\n\n"]

    def error(self, body: dict[str, Any]) -> list[bytes]:
        return [b"data: " + dumps(body) + b"\n\n"]


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One named server-sent event (Anthropic Messages and Responses streams)."""
    return b"event: " + name.encode("ascii") + b"\ndata: " + dumps(data) + b"\n\n"


class RouteCodec:
    """An OpenAI route (chat/completions or completions): requests and answers pass as they are."""

    name = "chat"
    schema: type[BaseModel] = ChatCompletionRequest
    endpoint: Endpoint = "chat/completions"
    kind: wire.Kind | None = "chat"

    def validate(self, data: Any) -> Any:
        return validate(self.schema, data)

    def streamed(self, req: Any) -> bool:
        return bool(getattr(req, "stream", False))

    def to_wire(self, data: dict[str, Any], pass_fields: Sequence[str] = ()) -> dict[str, Any]:
        """The OpenAI-shaped request. Translating codecs carry the policy's `wire.pass_fields` over as
        they are (vendor fields the upstream reads and no check does)."""
        return data

    @staticmethod
    def translate(fn: Any, data: dict[str, Any], pass_fields: Sequence[str]) -> dict[str, Any]:
        """`fn(data without the pass fields)` with the pass fields put back; 400 when untranslatable."""
        from guardrails.wire.translate import Untranslatable

        kept = {k: v for k, v in data.items() if k in pass_fields}
        try:
            out = fn({k: v for k, v in data.items() if k not in kept})
        except Untranslatable as exc:
            raise ProxyError(400, str(exc), exc.code, param=exc.param) from None
        return {**out, **kept}

    def read(self, body: dict[str, Any], pass_fields: Sequence[str]) -> wire.RequestTexts:
        return wire.read_request(body, self.kind or "completions", pass_fields=frozenset(pass_fields))

    def answer(self, out: dict[str, Any], data: dict[str, Any], request_id: str) -> dict[str, Any]:
        """The checked OpenAI answer in this route's shape (`data`: the request as the client sent it)."""
        return out

    def framer(self, request_id: str, model: str | None, data: dict[str, Any]) -> Framer:
        return Framer()

    def error_body(self, exc: ProxyError, request_id: str) -> dict[str, Any]:
        return exc.body(request_id)

    def error_response(self, exc: ProxyError, request_id: str) -> Response:
        headers = {REQUEST_ID_HEADER: request_id, ACTION_HEADER: exc.action}
        if exc.retry_after is not None:
            headers["retry-after"] = str(max(1, int(-(-exc.retry_after // 1))))
        return json_response(self.error_body(exc, request_id), exc.status, headers)


class CompletionsCodec(RouteCodec):
    name = "completions"
    schema = CompletionRequest
    endpoint: Endpoint = "completions"
    kind: wire.Kind | None = "completions"


# Embedding request fields that are not text: the model, the output format and size.
EMBEDDING_CONTROL = frozenset({"model", "encoding_format", "dimensions"})


class EmbeddingsCodec(RouteCodec):
    """POST /v1/embeddings: every string of `input` is checked (redaction and pseudonymisation apply
    before the text is embedded; block rules refuse the call); token-id inputs cannot be checked and
    are refused (400 token_input_unsupported). The answer is vectors: no output checks, nothing to
    restore (a pseudonymised text is embedded as the placeholder, which changes the vector)."""

    name = "embeddings"
    schema = EmbeddingRequest
    endpoint: Endpoint = "embeddings"
    kind: wire.Kind | None = None

    def validate(self, data: Any) -> Any:
        if isinstance(data, dict):
            inp = data.get("input")
            items = inp if isinstance(inp, list) else [inp]
            if any(isinstance(x, int) and not isinstance(x, bool) or isinstance(x, list) for x in items):
                raise ProxyError(400, "Token-id input cannot be checked by the content policy: send the text.",
                                 "token_input_unsupported", param="input")
        return validate(self.schema, data)

    def streamed(self, req: Any) -> bool:
        return False

    def read(self, body: dict[str, Any], pass_fields: Sequence[str]) -> wire.RequestTexts:
        return wire.read_request(body, "completions", pass_fields=frozenset(pass_fields) | EMBEDDING_CONTROL)


__all__ = ["CompletionsCodec", "EMBEDDING_CONTROL", "EmbeddingsCodec", "Framer", "RouteCodec",
           "sse_event"]
