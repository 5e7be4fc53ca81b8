"""The OpenAI client, guarded in-process: `Guard.wrap_openai(client)`.

    client = g.wrap_openai(openai.OpenAI())          # or openai.AsyncOpenAI()
    reply = client.chat.completions.create(model="gpt-4o-mini", messages=[...])            # checked
    for chunk in client.chat.completions.create(model=..., messages=[...], stream=True):  # checked as it streams
        ...

Only `chat.completions.create` is guarded; the helpers that would bypass it on the same resource
(`parse`, `stream`, `with_raw_response`, `with_streaming_response`) refuse with an error. Every other
resource of the client (embeddings, files, the Responses API, ...) is the client's own, unguarded.

`openai` is imported lazily here, only to build refusal objects: the user who passes a client has it.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from guardrails.callplan import pick_target  # issue 18
from guardrails.decorator import ROUTE_NAME, OnBlock, Prompt, _get, _replace, _usage
from guardrails.errors import Blocked, TrustwallError
from guardrails.types import Action, CallContext, Decision, Principal

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.decorator import Guard, GuardedCall
    from guardrails.pipeline import Pipeline
    from guardrails.streaming import OutputStream

_BYPASSES = ("parse", "stream", "with_raw_response", "with_streaming_response")


# ------------------------------------------------------------------------------- ChatCompletion


class ChatCompletionOutput:
    """Output adapter for OpenAI ChatCompletion objects (pydantic models or plain dicts): each choice's
    message content is checked; the result is a copy with the checked, restored contents."""

    def read(self, result: Any) -> list[str]:
        choices = _get(result, "choices")
        if choices is None:
            raise TypeError(f"expected an OpenAI ChatCompletion, got {type(result).__name__}")
        return [_get(_get(c, "message"), "content") or "" for c in choices]

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        choices = []
        for c, text in zip(_get(result, "choices"), texts):
            msg = _get(c, "message")
            if not (_get(msg, "content") is None and text == ""):
                msg = _replace(msg, "content", text)
            c = _replace(c, "message", msg)
            if decision.action >= Action.REDACT and _get(c, "logprobs") is not None:
                c = _replace(c, "logprobs", None)  # token logprobs would still spell out what was redacted
            choices.append(c)
        return _replace(result, "choices", choices)

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        if result is not None and _get(result, "choices"):
            choices = []
            for c in _get(result, "choices"):
                msg = _get(c, "message")
                for key, value in (("content", message), ("tool_calls", None), ("function_call", None),
                                   ("audio", None), ("refusal", None)):
                    if key == "content" or _get(msg, key) is not None:
                        msg = _replace(msg, key, value)
                c = _replace(_replace(c, "message", msg), "finish_reason", "content_filter")
                choices.append(_replace(c, "logprobs", None) if _get(c, "logprobs") is not None else c)
            return _replace(result, "choices", choices)
        return refusal_completion(message, decision, None)


def refusal_completion(message: str, decision: Decision, model: str | None) -> Any:
    from openai.types.chat import ChatCompletion, ChatCompletionMessage
    from openai.types.chat.chat_completion import Choice

    return ChatCompletion(
        id=f"chatcmpl-{decision.request_id}", object="chat.completion", created=int(time.time()), model=model or "",
        choices=[Choice(index=0, finish_reason="content_filter",
                        message=ChatCompletionMessage(role="assistant", content=message))],
    )


def refusal_chunk(message: str, decision: Decision | None, model: str | None, template: Any = None) -> Any:
    if template is not None:
        delta = {"role": "assistant", "content": message}
        choice = {"index": 0, "delta": delta, "finish_reason": "content_filter"}
        if isinstance(template, Mapping):
            return {**template, "choices": [choice], "usage": None}
        from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta

        return template.model_copy(update={"choices": [Choice(index=0, finish_reason="content_filter",
                                                               delta=ChoiceDelta(role="assistant", content=message))],
                                           "usage": None})
    from openai.types.chat import ChatCompletionChunk
    from openai.types.chat.chat_completion_chunk import Choice, ChoiceDelta

    rid = decision.request_id if decision is not None else "refused"
    return ChatCompletionChunk(
        id=f"chatcmpl-{rid}", object="chat.completion.chunk", created=int(time.time()), model=model or "",
        choices=[Choice(index=0, finish_reason="content_filter", delta=ChoiceDelta(role="assistant", content=message))],
    )


# --------------------------------------------------------------------------- ChatCompletionChunk


def merge_decisions(decisions: Sequence[Decision]) -> Decision:
    """One output decision for several streamed choices (the most severe action wins)."""
    if len(decisions) == 1:
        return decisions[0]
    first = decisions[0]
    return dataclasses.replace(
        first,
        action=max(d.action for d in decisions),
        judgements=tuple(j for d in decisions for j in d.judgements),
        texts=tuple(t for d in decisions for t in d.texts),
        timings=tuple(t for d in decisions for t in d.timings),
        message=next((d.message for d in decisions if d.message), None),
        errors=tuple(sorted({e for d in decisions for e in d.errors})),
    )


class ChatChunkProcessor:
    """Streamed ChatCompletionChunk objects through one OutputStream per choice index. A chunk is
    emitted with only the text released so far (chunks with nothing to release and nothing else to
    say are held back); a choice's held tail goes out with its finish_reason. Token logprobs are
    dropped (they would spell out unchecked text); tool-call deltas pass through unchecked."""

    def __init__(self, pipeline: Pipeline, ctx: CallContext):
        self._pipeline = pipeline
        self._ctx = ctx
        self._streams: dict[int, OutputStream] = {}
        self._done: set[int] = set()
        self._last: dict[int, tuple[Any, Any]] = {}
        self._template: Any = None
        self.blocked: Decision | None = None

    def _stream(self, index: int) -> OutputStream:
        st = self._streams.get(index)
        if st is None:
            from guardrails.streaming import OutputStream

            st = self._streams[index] = OutputStream(self._pipeline, self._ctx)
        return st

    async def feed(self, chunk: Any) -> list[Any]:
        choices = _get(chunk, "choices") or []
        if self._template is None:
            self._template = chunk
        if not choices:  # a usage-only or keep-alive chunk
            return [chunk]
        out: list[Any] = []
        for ch in choices:
            index = _get(ch, "index") or 0
            st = self._stream(index)
            delta = _get(ch, "delta")
            text = _get(delta, "content") if delta is not None else None
            released = await st.feed(text) if text else ""
            finish = _get(ch, "finish_reason")
            if not st.blocked and finish is not None and index not in self._done:
                self._done.add(index)
                released += await st.finish()
            if st.blocked:
                self.blocked = st.decision
                return []
            self._last[index] = (chunk, ch)
            other = finish is not None or any(_get(delta, k) for k in ("role", "tool_calls", "function_call", "refusal"))
            if released or other:
                content = released if released else (None if text is None else "")
                new = _replace(ch, "delta", _replace(delta, "content", content)) if delta is not None else ch
                if _get(new, "logprobs") is not None:
                    new = _replace(new, "logprobs", None)
                out.append(new)
        return [_replace(chunk, "choices", out)] if out else []

    async def finish(self) -> list[Any]:
        out: list[Any] = []
        for index, st in sorted(self._streams.items()):
            if index in self._done:
                continue
            self._done.add(index)
            tail = await st.finish()
            if st.blocked:
                self.blocked = st.decision
                return []
            if tail:
                chunk, ch = self._last[index]
                delta = _get(ch, "delta")
                new_delta = _replace(delta, "content", tail)
                for key in ("role", "tool_calls", "function_call", "refusal"):
                    if _get(new_delta, key) is not None:
                        new_delta = _replace(new_delta, key, None)
                new = _replace(_replace(ch, "delta", new_delta), "finish_reason", None)
                if _get(new, "logprobs") is not None:
                    new = _replace(new, "logprobs", None)
                out.append(_replace(chunk, "choices", [new]))
        return out

    def decision(self) -> Decision:
        if not self._streams:
            self._stream(0)
        return merge_decisions([st.decision for _, st in sorted(self._streams.items())])

    def refusal(self, message: str) -> Any:
        return refusal_chunk(message, self.blocked, self._ctx.model, self._template)


# ------------------------------------------------------------------------------------ the clients


class GuardedStream:
    """What a guarded `create(stream=True)` returns: iterate it like the SDK's Stream."""

    def __init__(self, items: Iterator[Any], raw: Any = None):
        self._items = items
        self._raw = raw

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def __next__(self) -> Any:
        return next(self._items)

    def __enter__(self) -> GuardedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        close = getattr(self._items, "close", None)
        if callable(close):
            close()
        if self._raw is not None:
            self._raw.close()

    @property
    def response(self) -> Any:
        return getattr(self._raw, "response", None)


class AsyncGuardedStream:
    """What a guarded async `create(stream=True)` returns: iterate it with `async for`."""

    def __init__(self, items: AsyncIterator[Any], raw: Any = None):
        self._items = items
        self._raw = raw

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._items

    async def __anext__(self) -> Any:
        return await self._items.__anext__()

    async def __aenter__(self) -> AsyncGuardedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        aclose = getattr(self._items, "aclose", None)
        if callable(aclose):
            await aclose()
        if self._raw is not None:
            await self._raw.close()

    aclose = close

    @property
    def response(self) -> Any:
        return getattr(self._raw, "response", None)


async def _one(item: Any) -> AsyncIterator[Any]:
    yield item


@dataclasses.dataclass(frozen=True)
class _Wrap:
    guard: Guard
    client: Any
    on_block: OnBlock
    principal: Principal | None
    upstream: str | None
    routes: Mapping[str, Any]


def _is_async(client: Any) -> bool:
    try:
        import openai

        if isinstance(client, openai.AsyncOpenAI):
            return True
        if isinstance(client, openai.OpenAI):
            return False
    except ImportError:  # pragma: no cover - a client was given, so openai is there
        pass
    return inspect.iscoroutinefunction(client.chat.completions.create)


def _upstream_name(client: Any) -> str | None:
    url = getattr(client, "base_url", None)
    host = getattr(url, "host", None)
    return str(host) if host else None


class _Base:
    def __init__(self, w: _Wrap, target: Any):
        self._w = w
        self._target = target

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)

    def __repr__(self) -> str:
        return f"<guarded {self._target!r}>"


class _Completions(_Base):
    def __getattr__(self, name: str) -> Any:
        if name in _BYPASSES:
            raise TrustwallError(f"chat.completions.{name} is not guarded by trustwall; use chat.completions.create "
                                 "(or the unwrapped client, knowingly)")
        return getattr(self._target, name)

    def _begin(self, kwargs: dict[str, Any]) -> tuple[GuardedCall, Prompt, bool]:
        w = self._w
        if "messages" not in kwargs:
            raise TypeError("create() needs messages=")
        model = kwargs.get("model")
        stream = bool(kwargs.get("stream"))
        ctx = CallContext(principal=w.guard._principal(None, w.principal), model=model if isinstance(model, str) else None,
                          upstream=w.upstream or _upstream_name(w.client), route=ROUTE_NAME)
        call = w.guard._call(w.guard.runtime, ctx, access_upstream=w.upstream)
        return call, Prompt.read(kwargs["messages"]), stream

    def _client_for(self, dec: Decision, call: GuardedCall) -> Any:
        """The client to call: ours, the one a route names, or the experiment variant's (issue 18); a
        Decision to refuse when none fits."""
        own = self._w.upstream or self._w.guard.policy.default_upstream_name
        other = pick_target(self._w.client, self._w.routes, dec, call.plan, own)
        if dec.action is Action.ROUTE and dec.upstream is not None and not isinstance(other, Decision):
            call.ctx.upstream = dec.upstream
        return other

    def _refuse(self, dec: Decision, stream: bool, model: Any, is_async: bool) -> Any:
        if self._w.on_block == "raise":
            raise Blocked(dec)
        if stream:
            chunk = refusal_chunk(dec.message or "", dec, model if isinstance(model, str) else None)
            return AsyncGuardedStream(_one(chunk)) if is_async else GuardedStream(iter([chunk]))
        return refusal_completion(dec.message or "", dec, model if isinstance(model, str) else None)

    def _output(self, call: GuardedCall, result: Any, dec_out: Decision, restored: list[str]) -> Any:
        adapter = ChatCompletionOutput()
        if dec_out.blocked:
            if self._w.on_block == "raise":
                raise Blocked(dec_out)
            return adapter.refusal(dec_out.message or "", dec_out, result)
        return adapter.write(result, restored, dec_out)


class _SyncCompletions(_Completions):
    def create(self, **kwargs: Any) -> Any:
        g = self._w.guard
        call, prompt, stream = self._begin(kwargs)
        dec_in = g._run(call.check_input(prompt.texts, prompt.roles))
        if dec_in.blocked:
            return self._refuse(dec_in, stream, kwargs.get("model"), False)
        client = self._client_for(dec_in, call)
        if isinstance(client, Decision):
            g._run(call.no_route())
            return self._refuse(client, stream, kwargs.get("model"), False)
        sent = {**kwargs, "messages": prompt.rebuild(dec_in.texts)}
        if call.plan is not None and call.plan.model is not None:  # issue 18: an experiment variant's model
            sent["model"] = call.plan.model
        t0 = time.perf_counter()
        try:
            result = client.chat.completions.create(**sent)
            if not stream:
                call.model_done(t0)
                texts = ChatCompletionOutput().read(result)
        except BaseException as exc:
            g._run(call.fail(exc))
            raise
        if stream:
            proc = ChatChunkProcessor(g.pipeline, call.ctx)
            return GuardedStream(g.stream_sync(call, proc, result, self._w.on_block), result)
        _usage(call, result)
        dec_out, restored = g._run(call.check_output(texts))
        return self._output(call, result, dec_out, restored)


class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:
        g = self._w.guard
        await g._aruntime()
        call, prompt, stream = self._begin(kwargs)
        dec_in = await g._arun(call.check_input(prompt.texts, prompt.roles))
        if dec_in.blocked:
            return self._refuse(dec_in, stream, kwargs.get("model"), True)
        client = self._client_for(dec_in, call)
        if isinstance(client, Decision):
            await g._arun(call.no_route())
            return self._refuse(client, stream, kwargs.get("model"), True)
        sent = {**kwargs, "messages": prompt.rebuild(dec_in.texts)}
        if call.plan is not None and call.plan.model is not None:  # issue 18: an experiment variant's model
            sent["model"] = call.plan.model
        t0 = time.perf_counter()
        try:
            result = await client.chat.completions.create(**sent)
            if not stream:
                call.model_done(t0)
                texts = ChatCompletionOutput().read(result)
        except BaseException as exc:
            await g._arun(call.fail(exc))
            raise
        if stream:
            proc = ChatChunkProcessor(g.pipeline, call.ctx)
            return AsyncGuardedStream(g.stream_async(call, proc, result, self._w.on_block), result)
        _usage(call, result)
        dec_out, restored = await g._arun(call.check_output(texts))
        return self._output(call, result, dec_out, restored)


class _Chat(_Base):
    @property
    def completions(self) -> _Completions:
        cls = _AsyncCompletions if _is_async(self._w.client) else _SyncCompletions
        return cls(self._w, self._target.completions)


class GuardedOpenAI(_Base):
    """An OpenAI / AsyncOpenAI client whose chat.completions.create runs through a Guard."""

    @property
    def chat(self) -> _Chat:
        return _Chat(self._w, self._target.chat)

    @property
    def unwrapped(self) -> Any:
        return self._w.client

    def with_options(self, **options: Any) -> GuardedOpenAI:
        w = self._w
        return wrap_openai(w.guard, w.client.with_options(**options), on_block=w.on_block, principal=w.principal,
                           upstream=w.upstream, routes=w.routes)

    copy = with_options


def wrap_openai(guard: Guard, client: Any, *, on_block: OnBlock = "raise", principal: Principal | None = None,
                upstream: str | None = None, routes: Mapping[str, Any] | None = None) -> GuardedOpenAI:
    if isinstance(client, GuardedOpenAI):
        raise TypeError("this client is guarded already")
    if not hasattr(client, "chat"):
        raise TypeError(f"expected an openai.OpenAI or openai.AsyncOpenAI client, got {type(client).__name__}")
    routes = dict(routes or {})
    for name, other in routes.items():
        if _is_async(other) != _is_async(client):
            raise TypeError(f"route {name!r}: mix of sync and async clients")
    w = _Wrap(guard, client, on_block, principal, upstream, routes)
    return GuardedOpenAI(w, client)
