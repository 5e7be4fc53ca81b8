"""Upstreams that speak another API than chat completions; the proxy's call lifecycle speaks the chat
shape, so the checked chat request is translated for them and their answers and stream events are
translated back into chat answers and chunks (which the ChunkGuard then checks): any chat-shaped route
(chat completions, Responses, Anthropic Messages) can use them. Completions and embeddings are not
served by them (400 endpoint_unsupported).

- kind `anthropic`: the Anthropic Messages API (POST {url}/messages, x-api-key, anthropic-version);
- kind `openai` with `api: responses`: the OpenAI Responses API natively (POST {url}/responses).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from guardrails.proxy import http11
from guardrails.proxy.errors import UpstreamError
from guardrails.proxy.upstream import (Endpoint, HTTPUpstream, encode_body, transport_error, upstream_error_from,
                                       sse_events)
from guardrails.wire import anthropic, responses_upstream
from guardrails.wire.translate import Untranslatable


class TranslatingUpstream(HTTPUpstream):
    """An HTTP upstream reached through a codec: `from_chat`, `answer_to_chat`, a `reader()` of events."""

    api_path = "/messages"
    answer_field = "content"  # the list a well-formed plain answer holds

    def from_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def answer_to_chat(self, data: dict[str, Any]) -> dict[str, Any]:
        raise NotImplementedError

    def reader(self) -> Any:
        raise NotImplementedError

    def path(self, endpoint: Endpoint, model: str) -> str:
        return self.api_path

    def _body(self, endpoint: Endpoint, body: dict[str, Any]) -> bytes:
        if endpoint != "chat/completions":
            raise UpstreamError(400, f"Upstream {self.name!r} ({self.api_path[1:]} API) does not serve {endpoint}.",
                                "endpoint_unsupported", kind="rejected", type_="invalid_request_error")
        try:
            return encode_body(self.from_chat(body))
        except Untranslatable as exc:
            raise UpstreamError(400, str(exc), exc.code, kind="rejected", type_="invalid_request_error") from None

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        raw_body = self._body(endpoint, body)
        try:
            resp = await self._client.request("POST", self.api_path, raw_body)
        except http11.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        raw = resp.content or b""
        if resp.status_code >= 400:
            raise upstream_error_from(resp.status_code, raw, self.name, resp.headers)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get(self.answer_field), list):
            raise UpstreamError(502, f"Upstream {self.name!r} answered without {self.answer_field}.",
                                "upstream_bad_response", kind="malformed")
        return self.answer_to_chat(data)

    @asynccontextmanager
    async def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        raw_body = self._body(endpoint, {**body, "stream": True})
        try:
            resp = await self._client.request("POST", self.api_path, raw_body, stream=True)
        except http11.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        try:
            if resp.status_code >= 400:
                try:
                    raw = await resp.read()
                except http11.HTTPError:
                    raw = b""
                raise upstream_error_from(resp.status_code, raw, self.name, resp.headers)
            if "text/event-stream" not in resp.headers.get("content-type", ""):
                raise UpstreamError(502, f"Upstream {self.name!r} did not answer with an event stream.",
                                    "upstream_bad_stream", kind="malformed")
            yield self._chunks(resp)
        finally:
            await resp.aclose()

    async def _chunks(self, resp: http11.Response) -> AsyncIterator[dict[str, Any]]:
        reader = self.reader()
        try:
            async for event in sse_events(resp.aiter_lines(), self.name):
                for chunk in reader.read(event):
                    yield chunk
        except http11.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        except UnicodeDecodeError:
            raise UpstreamError(502, f"Upstream {self.name!r} sent invalid UTF-8.", "upstream_bad_stream",
                                kind="malformed") from None

    async def models(self) -> list[str]:
        return []


class AnthropicUpstream(TranslatingUpstream):
    """Kind `anthropic`: the Anthropic Messages API."""

    api_path = "/messages"
    answer_field = "content"

    def auth_headers(self, key: str | None) -> dict[str, str]:
        h = {"anthropic-version": self.spec.api_version or anthropic.DEFAULT_VERSION}
        if key:
            h["x-api-key"] = key
        return h

    def from_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return anthropic.from_chat(body)

    def answer_to_chat(self, data: dict[str, Any]) -> dict[str, Any]:
        return anthropic.answer_to_chat(data)

    def reader(self) -> Any:
        return anthropic.ChunkReader()


class ResponsesUpstream(TranslatingUpstream):
    """Kind `openai` with `api: responses`: an upstream that speaks the Responses API natively."""

    api_path = "/responses"
    answer_field = "output"

    def from_chat(self, body: dict[str, Any]) -> dict[str, Any]:
        return responses_upstream.from_chat(body)

    def answer_to_chat(self, data: dict[str, Any]) -> dict[str, Any]:
        return responses_upstream.answer_to_chat(data)

    def reader(self) -> Any:
        return responses_upstream.ChunkReader()
