"""Guarded generators: items through a StreamProcessor (text chunks through one OutputStream, OpenAI
chunks through the ChunkGuard), and the drivers that run a model stream and audit it once."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Literal, Protocol

from guardrails.errors import Blocked
from guardrails.inprocess.prompt import field_of
from guardrails.types import CallContext, Decision

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.call import Call
    from guardrails.pipeline import Pipeline
    from guardrails.streaming import OutputStream

# ---------------------------------------------------------------------------------------- streams


OnBlock = Literal["raise", "refuse"]
ROUTE_NAME = "decorator"  # the route of in-process calls in audit records


class StreamProcessor(Protocol):
    """Turns source stream items into items safe to emit (runs on the Guard's loop)."""

    blocked: Decision | None

    async def feed(self, item: Any) -> list[Any]: ...

    async def finish(self) -> list[Any]: ...

    def decision(self) -> Decision: ...

    def refusal(self, message: str) -> Any: ...


class TextStreamProcessor:
    """Chunks of text through one OutputStream: checked, redacted, pseudonyms restored across chunks.
    Items that are OpenAI ChatCompletionChunk objects are handed to the chunk processor."""

    def __init__(self, pipeline: Pipeline, ctx: CallContext):
        self._pipeline = pipeline
        self._ctx = ctx
        self._stream: OutputStream | None = None
        self._chunks: Any = None
        self.blocked: Decision | None = None

    def _text_stream(self) -> OutputStream:
        if self._stream is None:
            from guardrails.streaming import OutputStream

            self._stream = OutputStream(self._pipeline, self._ctx)
        return self._stream

    async def feed(self, item: Any) -> list[Any]:
        if self._chunks is None and not isinstance(item, str) and field_of(item, "object") == "chat.completion.chunk" \
                and self._stream is None:
            from guardrails.inprocess.objects import ChunkProcessor

            self._chunks = ChunkProcessor(self._pipeline, self._ctx)
        if self._chunks is not None:
            out = await self._chunks.feed(item)
            self.blocked = self._chunks.blocked
            return out
        if not isinstance(item, str):
            raise TypeError(f"a guarded generator must yield strings (or OpenAI ChatCompletionChunk objects), "
                            f"not {type(item).__name__}")
        stream = self._text_stream()
        released = await stream.feed(item)
        if stream.blocked:
            self.blocked = stream.decision
            return []
        return [released] if released else []

    async def finish(self) -> list[Any]:
        if self._chunks is not None:
            out = await self._chunks.finish()
            self.blocked = self._chunks.blocked
            return out
        stream = self._text_stream()
        tail = await stream.finish()
        if stream.blocked:
            self.blocked = stream.decision
            return []
        return [tail] if tail else []

    @property
    def tokens(self) -> tuple[int | None, int | None]:
        return self._chunks.tokens if self._chunks is not None else (None, None)

    def decision(self) -> Decision:
        if self._chunks is not None:
            return self._chunks.decision()
        return self._text_stream().decision

    def refusal(self, message: str) -> Any:
        if self._chunks is not None:
            return self._chunks.refusal(message)
        return message


async def stream_failed(call: Call[Any], proc: StreamProcessor, exc: BaseException, started: bool) -> None:
    """A model stream that failed before its first item failed like a plain call (as the proxy's
    upstream error before the stream starts); one that failed later ends the streamed record."""
    if not started and not isinstance(exc, (GeneratorExit, asyncio.CancelledError, KeyboardInterrupt)):
        call.streamed = False
        await call.fail(exc)
    else:
        await call.stream_done(proc, exc)

def drive_sync(on_loop: Callable[[Any], Any], call: Call[Any], proc: StreamProcessor, source: Iterable[Any],
               on_block: OnBlock) -> Iterator[Any]:
    """Yield only what `proc` released from `source`; audit once at the end (or on error / close)."""
    call.streamed = True  # as the proxy: a call is 'streamed' once its model stream has started
    t0 = time.perf_counter()
    it = iter(source)
    started = False
    try:
        while proc.blocked is None:
            try:
                item = next(it)
            except StopIteration:
                call.model_done(t0)
                yield from on_loop(proc.finish())
                break
            started = True
            yield from on_loop(proc.feed(item))
    except BaseException as exc:
        on_loop(stream_failed(call, proc, exc, started))
        raise
    finally:
        for obj in (it, source) if source is not it else (it,):  # a generator; an SDK stream's response
            closer = getattr(obj, "close", None)
            if callable(closer):
                closer()
    dec = on_loop(call.stream_done(proc))
    if proc.blocked is not None:
        if on_block == "raise":
            raise Blocked(dec)
        yield proc.refusal(dec.message or "")

async def drive_async(aon_loop: Callable[[Any], Any], call: Call[Any], proc: StreamProcessor, source: Any,
                      on_block: OnBlock) -> AsyncIterator[Any]:
    call.streamed = True
    t0 = time.perf_counter()
    if inspect.isawaitable(source):
        source = await source
    it = source.__aiter__()
    started = False
    try:
        while proc.blocked is None:
            try:
                item = await it.__anext__()
            except StopAsyncIteration:
                call.model_done(t0)
                for out in await aon_loop(proc.finish()):
                    yield out
                break
            started = True
            for out in await aon_loop(proc.feed(item)):
                yield out
    except BaseException as exc:
        await asyncio.shield(aon_loop(stream_failed(call, proc, exc, started)))
        raise
    finally:
        for obj in (it, source) if source is not it else (it,):
            closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
            if callable(closer):
                res = closer()
                if inspect.isawaitable(res):
                    await res
    dec = await aon_loop(call.stream_done(proc))
    if proc.blocked is not None:
        if on_block == "raise":
            raise Blocked(dec)
        yield proc.refusal(dec.message or "")
