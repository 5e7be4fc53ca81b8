"""OpenAI answer objects in-process: ChatCompletion results and ChatCompletionChunk streams, SDK objects
or plain dicts, checked through the same wire codec and ChunkGuard as the proxy (every text field of
every choice; token logprobs dropped; the same refusals).

`openai` is imported lazily, only to build refusal objects from nothing: the user who passes a client
has it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from guardrails.answer import ChunkGuard, MalformedStream
from guardrails.types import CallContext, Decision
from guardrails.wire import openai as wire
from guardrails.wire.fields import from_plain, to_plain


def _sdk(name: str, data: dict[str, Any]) -> Any:
    """`data` as the SDK's ChatCompletion / ChatCompletionChunk when `openai` is installed, else a dict."""
    try:
        from openai.types import chat
    except ImportError:  # pragma: no cover - only without the SDK
        return data
    return getattr(chat, name).model_validate(data)


def refusal_completion(message: str, decision: Decision, model: str | None) -> Any:
    plain = wire.refused_answer(None, "chat", message, request_id=decision.request_id, model=model,
                                created=int(time.time()))
    return _sdk("ChatCompletion", plain)


def refusal_chunk(message: str, decision: Decision | None, model: str | None) -> Any:
    rid = decision.request_id if decision is not None else "refused"
    plain = {"id": f"chatcmpl-{rid}", "object": "chat.completion.chunk", "created": int(time.time()),
             "model": model or "", "choices": [{"index": 0, "finish_reason": "content_filter",
                                                "delta": {"role": "assistant", "content": message}}]}
    return _sdk("ChatCompletionChunk", plain)


class ChatCompletionOutput:
    """Output adapter for ChatCompletion results (SDK objects or dicts): every text of every choice is
    checked (content, refusal, tool-call names and arguments, reasoning, audio transcripts, ...), the
    answer comes back as a copy of the same type, checked and restored."""

    def read(self, result: Any) -> dict[str, Any]:
        plain = to_plain(result)
        if not isinstance(plain, dict) or not isinstance(plain.get("choices"), list):
            raise TypeError(f"expected an OpenAI ChatCompletion, got {type(result).__name__}")
        try:
            wire.read_answer(plain, "chat")
        except ValueError as exc:
            raise TypeError(f"not a readable ChatCompletion: {exc}") from None
        return plain

    async def check(self, call: Any, plain: dict[str, Any], result: Any) -> tuple[Decision, Any]:
        dec, out = await call.check_answer(plain, "chat")
        return dec, from_plain(result, out)

    def write(self, result: Any, texts: Any, decision: Decision) -> Any:  # pragma: no cover - check() is used
        raise TypeError("ChatCompletionOutput answers through check()")

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        if result is None:
            return refusal_completion(message, decision, None)
        plain = wire.refused_answer(to_plain(result), "chat", message, request_id=decision.request_id, model=None,
                                    created=int(time.time()))
        return from_plain(result, plain)


class ChunkProcessor:
    """ChatCompletionChunk items (SDK objects or dicts) through a ChunkGuard: what comes out is what the
    proxy would send, as objects of the caller's chunk type."""

    def __init__(self, pipeline: Any, ctx: CallContext):
        self._guard = ChunkGuard(pipeline, ctx, "chat")
        self._ctx = ctx
        self._template: Any = None
        self.blocked: Decision | None = None

    @property
    def tokens(self) -> tuple[int | None, int | None]:
        return self._guard.tokens

    def _out(self, chunks: list[dict[str, Any]]) -> list[Any]:
        t = self._template
        if t is None or isinstance(t, Mapping):
            return chunks
        return [from_plain(t, c) for c in chunks]

    async def feed(self, item: Any) -> list[Any]:
        if self._template is None:
            self._template = item
        plain = to_plain(item)
        try:
            out = await self._guard.feed([plain])
        except MalformedStream as exc:
            raise TypeError(f"not a ChatCompletionChunk: {exc}") from None
        self.blocked = self._guard.blocked
        return self._out(out)

    async def finish(self) -> list[Any]:
        out = await self._guard.finish()
        self.blocked = self._guard.blocked
        return self._out(out)

    def decision(self) -> Decision:
        return self._guard.decision()

    def refusal(self, message: str) -> Any:
        if self._template is None:
            return refusal_chunk(message, self.blocked, self._ctx.model)
        return self._out(self._guard.refusal(message))[0]
