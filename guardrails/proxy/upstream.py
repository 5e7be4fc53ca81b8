"""Upstream clients: OpenAI-compatible servers (OpenAI, vLLM, Ollama, llama.cpp), Azure OpenAI, and the
built-in `echo` upstream, which answers with exactly what the model would have received.

Every failure becomes an `UpstreamError` with the status the proxy answers: 504 for timeouts, 502 for
connection failures, 5xx answers and malformed JSON or SSE, and the upstream's own 4xx (with its
OpenAI-style message) when it refused the request itself.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any, Literal
from urllib.parse import quote

from guardrails.policy import Upstream
from guardrails.proxy import http11
from guardrails.proxy.errors import UpstreamError

log = logging.getLogger("trustwall.proxy.upstream")
Endpoint = Literal["chat/completions", "completions", "embeddings"]


def encode_body(body: dict[str, Any]) -> bytes:
    # ASCII escapes keep lone surrogates (valid in JSON, not in UTF-8) transportable.
    return json.dumps(body, ensure_ascii=True, separators=(",", ":")).encode("ascii")


_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_.\-\[\]]{0,63}")


def _ident(value: Any) -> str | None:
    """`value` when it is a short identifier (an error code, a parameter path), else None."""
    return value if isinstance(value, str) and _IDENT.fullmatch(value) else None


def upstream_error_from(status: int, raw: bytes, name: str, headers: dict[str, str] | None = None) -> UpstreamError:
    """Turn an upstream's error answer into ours. The upstream's own message is never passed on (it can
    quote the prompt or carry text no check has read): the caller gets a message of ours that names the
    upstream's status and its error code, type and param when those are plain identifiers."""
    message, code, type_, param = None, None, None, None
    try:
        data = json.loads(raw)
        err = data.get("error") if isinstance(data, dict) else None
        if isinstance(err, dict):
            code, type_, param = (_ident(err.get(k)) for k in ("code", "type", "param"))
    except (ValueError, UnicodeDecodeError):
        pass
    if code:
        message = f"Upstream {name!r} refused the request ({status}, code {code})."
    if status in (401, 403):
        return UpstreamError(502, f"Upstream {name!r} rejected the proxy's credentials ({status}).",
                             "upstream_auth_failed", kind="auth")
    if status == 429:
        ra = headers.get("retry-after") if headers is not None else None
        try:
            retry = float(ra) if ra else 1.0
        except ValueError:
            retry = 1.0
        return UpstreamError(429, message or f"Upstream {name!r} is rate limiting.", code or "upstream_rate_limited",
                             kind="rate_limit", type_="rate_limit_error", retry_after=retry)
    if 400 <= status < 500:
        return UpstreamError(status, message or f"Upstream {name!r} refused the request ({status}).",
                             code or "upstream_rejected", kind="rejected", type_=type_ or "invalid_request_error",
                             param=param)
    return UpstreamError(502, f"Upstream {name!r} failed ({status})" + (f", code {code}." if code else "."),
                         "upstream_error", kind="status")


def transport_error(exc: Exception, name: str) -> UpstreamError:
    if isinstance(exc, (http11.ConnectTimeout, http11.ReadTimeout)):
        what = "connecting to" if isinstance(exc, http11.ConnectTimeout) else "waiting for"
        return UpstreamError(504, f"Timed out {what} upstream {name!r}.", "upstream_timeout", kind="timeout")
    if isinstance(exc, http11.ConnectError):
        return UpstreamError(502, f"Could not connect to upstream {name!r}.", "upstream_unreachable", kind="connect")
    return UpstreamError(502, f"Upstream {name!r} failed: {type(exc).__name__}.", "upstream_error", kind="transport")


async def sse_events(lines: AsyncIterator[str], name: str) -> AsyncIterator[dict[str, Any]]:
    """Parse an SSE stream of JSON events; stops at `[DONE]`. Malformed events raise UpstreamError."""
    data: list[str] = []
    async for line in lines:
        if line == "":
            if data:
                payload = "\n".join(data)
                data = []
                if payload.strip() == "[DONE]":
                    return
                try:
                    event = json.loads(payload)
                except ValueError:
                    raise UpstreamError(502, f"Upstream {name!r} sent a malformed stream event.", "upstream_bad_stream",
                                        kind="malformed") from None
                if not isinstance(event, dict):
                    raise UpstreamError(502, f"Upstream {name!r} sent a malformed stream event.", "upstream_bad_stream",
                                        kind="malformed")
                yield event
            continue
        if line.startswith(":"):
            continue  # comment / keep-alive
        field, _, value = line.partition(":")
        if field == "data":
            data.append(value[1:] if value.startswith(" ") else value)
    if data:  # stream ended without a blank line after the last event
        payload = "\n".join(data)
        if payload.strip() != "[DONE]":
            try:
                event = json.loads(payload)
            except ValueError:
                raise UpstreamError(502, f"Upstream {name!r} sent a malformed stream event.", "upstream_bad_stream",
                                    kind="malformed") from None
            if isinstance(event, dict):
                yield event


def check_answer_shape(data: Any, endpoint: Endpoint, name: str) -> dict[str, Any]:
    """A plain answer must hold a list of choices (a list of `data` items for embeddings)."""
    field = "data" if endpoint == "embeddings" else "choices"
    if not isinstance(data, dict) or not isinstance(data.get(field), list):
        raise UpstreamError(502, f"Upstream {name!r} answered without {field}.", "upstream_bad_response",
                            kind="malformed")
    return data


def echo_vector(text: str, dimensions: int) -> list[float]:
    """A deterministic unit-length vector for `text` (the echo upstream's embedding): equal texts give
    equal vectors, different texts (a name and its placeholder) different ones."""
    import hashlib
    import math

    raw = b""
    counter = 0
    while len(raw) < 2 * dimensions:
        raw += hashlib.sha256(f"{counter}:{text}".encode("utf-8", "surrogatepass")).digest()
        counter += 1
    vals = [(int.from_bytes(raw[2 * i:2 * i + 2], "little") - 32768) / 32768 for i in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return [v / norm for v in vals]


def embedding_answer(inputs: list[str], body: dict[str, Any], vector: Any) -> dict[str, Any]:
    """An OpenAI embeddings answer for `inputs` (float lists, or base64 float32 when asked)."""
    import base64
    import struct

    dims = body.get("dimensions")
    dims = dims if isinstance(dims, int) and 1 <= dims <= 4096 else 8
    data = []
    for i, text in enumerate(inputs):
        vec = vector(text, dims)
        emb: Any = vec
        if body.get("encoding_format") == "base64":
            emb = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
        data.append({"object": "embedding", "index": i, "embedding": emb})
    words = sum(len(t.split()) for t in inputs)
    return {"object": "list", "data": data, "model": str(body.get("model", "echo")),
            "usage": {"prompt_tokens": words, "total_tokens": words}}


class HTTPUpstream:
    """An OpenAI-compatible (kind openai) or Azure OpenAI (kind azure) server."""

    def __init__(self, spec: Upstream):
        self.spec = spec
        self.name = spec.name
        headers = dict(spec.headers)
        key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
        if spec.api_key_env and not key:
            log.warning("upstream %s: environment variable %s is not set; calling without a key", spec.name,
                        spec.api_key_env)
        headers.update(self.auth_headers(key))
        headers["content-type"] = "application/json"
        headers["accept-encoding"] = "identity"
        self._client = http11.HTTP11Client(spec.url or "", headers=headers, connect_timeout=spec.connect_timeout_s,
                                           read_timeout=spec.timeout_s)
        self._models: tuple[float, list[str]] | None = None

    def auth_headers(self, key: str | None) -> dict[str, str]:
        if not key:
            return {}
        return {"api-key": key} if self.spec.kind == "azure" else {"authorization": f"Bearer {key}"}

    def path(self, endpoint: Endpoint, model: str) -> str:
        if self.spec.kind == "azure":
            version = self.spec.api_version or "2024-06-01"
            return f"/openai/deployments/{quote(model, safe='')}/{endpoint}?api-version={quote(version, safe='')}"
        return f"/{endpoint}"

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = await self._client.request("POST", self.path(endpoint, str(body.get("model", ""))), encode_body(body))
        except http11.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        raw = resp.content or b""
        if resp.status_code >= 400:
            raise upstream_error_from(resp.status_code, raw, self.name, resp.headers)
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(502, f"Upstream {self.name!r} answered with malformed JSON.", "upstream_bad_response",
                                kind="malformed") from None
        return check_answer_shape(data, endpoint, self.name)

    @asynccontextmanager
    async def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        """Open a streamed call. Errors before the first byte raise here (so the proxy can still answer
        with a status); errors later raise from the iterator. Leaving the block early closes the
        connection, which cancels the generation upstream."""
        try:
            resp = await self._client.request("POST", self.path(endpoint, str(body.get("model", ""))), encode_body(body),
                                              stream=True)
        except http11.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        try:
            if resp.status_code >= 400:
                try:
                    raw = await resp.read()
                except http11.HTTPError:
                    raw = b""
                raise upstream_error_from(resp.status_code, raw, self.name, resp.headers)
            ctype = resp.headers.get("content-type", "")
            if "text/event-stream" not in ctype:
                raise UpstreamError(502, f"Upstream {self.name!r} did not answer with an event stream.",
                                    "upstream_bad_stream", kind="malformed")
            yield self._events(resp)
        finally:
            await resp.aclose()

    async def _events(self, resp: http11.Response) -> AsyncIterator[dict[str, Any]]:
        try:
            async for event in sse_events(resp.aiter_lines(), self.name):
                yield event
        except http11.HTTPError as exc:
            raise transport_error(exc, self.name) from None
        except UnicodeDecodeError:
            raise UpstreamError(502, f"Upstream {self.name!r} sent invalid UTF-8.", "upstream_bad_stream",
                                kind="malformed") from None

    async def models(self) -> list[str]:
        """What the upstream lists at GET /models (cached for a minute; [] when it cannot say)."""
        if self.spec.kind != "openai":
            return []
        now = time.monotonic()
        if self._models is not None and now - self._models[0] < 60.0:
            return self._models[1]
        try:
            resp = await self._client.request("GET", "/models", timeout=2.0)
            data = json.loads(resp.content or b"") if resp.status_code == 200 else {}
        except (http11.HTTPError, ValueError):
            return []
        items = data.get("data") if isinstance(data, dict) else None
        names = [str(m["id"]) for m in items or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
        self._models = (now, names)
        return names

    async def aclose(self) -> None:
        await self._client.aclose()


class EchoUpstream:
    """Answers with exactly what the model would have received: the (guarded) messages or prompt.

    One message (or prompt) comes back as it is; several come back one per line as `role: content`.
    Streams come back a few words per chunk. No model, no network.
    """

    kind = "echo"

    def __init__(self, spec: Upstream, chunk_words: int = 3):
        self.spec = spec
        self.name = spec.name
        self._chunk_words = chunk_words

    @staticmethod
    def _content(part: Any) -> str:
        if isinstance(part, str):
            return part
        if isinstance(part, list):
            return "".join(p.get("text") or "" for p in part if isinstance(p, dict) and isinstance(p.get("text"), str))
        return ""

    def answers(self, endpoint: Endpoint, body: dict[str, Any]) -> list[str]:
        """One answer per choice: for completions one per prompt (times n), for chat n copies."""
        n = self._n(body)
        if endpoint == "completions":
            prompt = body.get("prompt")
            prompts = [prompt] if isinstance(prompt, str) else [p for p in prompt or [] if isinstance(p, str)]
            return [p for p in prompts for _ in range(n)] or [""]
        msgs = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        if len(msgs) == 1:
            text = self._content(msgs[0].get("content"))
        else:
            text = "\n".join(f"{m.get('role')}: {self._content(m.get('content'))}" for m in msgs)
        return [text] * n

    @staticmethod
    def _n(body: dict[str, Any]) -> int:
        n = body.get("n")
        return n if isinstance(n, int) and 1 <= n <= 16 else 1

    async def complete(self, endpoint: Endpoint, body: dict[str, Any]) -> dict[str, Any]:
        if endpoint == "embeddings":
            inp = body.get("input")
            inputs = [inp] if isinstance(inp, str) else [x for x in inp or [] if isinstance(x, str)]
            return embedding_answer(inputs, body, echo_vector)
        answers = self.answers(endpoint, body)
        model = str(body.get("model", "echo"))
        words = sum(len(a.split()) for a in answers)
        usage = {"prompt_tokens": words, "completion_tokens": words, "total_tokens": 2 * words}
        if endpoint == "completions":
            choices = [{"index": i, "text": a, "finish_reason": "stop", "logprobs": None} for i, a in enumerate(answers)]
            return {"id": f"cmpl-echo{uuid.uuid4().hex[:20]}", "object": "text_completion", "created": int(time.time()),
                    "model": model, "choices": choices, "usage": usage}
        choices = [{"index": i, "message": {"role": "assistant", "content": a}, "finish_reason": "stop"}
                   for i, a in enumerate(answers)]
        return {"id": f"chatcmpl-echo{uuid.uuid4().hex[:20]}", "object": "chat.completion", "created": int(time.time()),
                "model": model, "choices": choices, "usage": usage}

    def _pieces(self, text: str) -> Iterable[str]:
        words = text.split(" ")
        for i in range(0, len(words), self._chunk_words):
            piece = " ".join(words[i:i + self._chunk_words])
            yield piece if i + self._chunk_words >= len(words) else piece + " "

    @asynccontextmanager
    async def stream(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[dict[str, Any]]]:
        yield self._events(endpoint, body)

    async def _events(self, endpoint: Endpoint, body: dict[str, Any]) -> AsyncIterator[dict[str, Any]]:
        answers = self.answers(endpoint, body)
        model = str(body.get("model", "echo"))
        created = int(time.time())
        chat = endpoint != "completions"
        cid = f"{'chatcmpl' if chat else 'cmpl'}-echo{uuid.uuid4().hex[:20]}"
        base = {"id": cid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
                "model": model}
        if chat:
            yield {**base, "choices": [{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                                       for i in range(len(answers))]}
        for i, text in enumerate(answers):
            for piece in self._pieces(text):
                choice = ({"index": i, "delta": {"content": piece}, "finish_reason": None} if chat
                          else {"index": i, "text": piece, "finish_reason": None, "logprobs": None})
                yield {**base, "choices": [choice]}
        yield {**base, "choices": [{"index": i, "delta": {}, "finish_reason": "stop"} if chat
                                   else {"index": i, "text": "", "finish_reason": "stop", "logprobs": None}
                                   for i in range(len(answers))]}

    async def models(self) -> list[str]:
        return ["echo"]

    async def aclose(self) -> None:
        return None
