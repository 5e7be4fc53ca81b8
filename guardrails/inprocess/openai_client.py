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
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from guardrails.call import Call, NoRoute
from guardrails.errors import Blocked, TrustwallError
from guardrails.inprocess.objects import ChatCompletionOutput, ChunkProcessor, refusal_chunk, refusal_completion
from guardrails.inprocess.streams import ROUTE_NAME, OnBlock
from guardrails.types import CallContext, Decision, Principal
from guardrails.wire import openai as wire
from guardrails.wire.fields import to_plain

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.inprocess.guard import Guard

_BYPASSES = ("parse", "stream", "with_raw_response", "with_streaming_response")


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


def _not_given(value: Any) -> bool:
    """The SDK's NOT_GIVEN / Omit sentinels: left out of the request, as the SDK itself does."""
    return type(value).__name__ in ("NotGiven", "Omit")


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

    _TRANSPORT = ("extra_headers", "extra_query", "extra_body", "timeout")

    def _begin(self, kwargs: dict[str, Any]) -> tuple[Call[Any], dict[str, Any], bool]:
        w = self._w
        if "messages" not in kwargs:
            raise TypeError("create() needs messages=")
        model = kwargs.get("model")
        stream = bool(kwargs.get("stream"))
        ctx = CallContext(principal=w.guard.principal_for(None, w.principal), model=model if isinstance(model, str) else None,
                          upstream=w.upstream or _upstream_name(w.client), route=ROUTE_NAME)
        call = w.guard.new_call(w.guard.runtime, ctx, access_upstream=w.upstream)
        msgs = kwargs["messages"]
        if isinstance(msgs, (str, bytes)) or not isinstance(msgs, Iterable):
            raise TypeError("messages= must be a list of messages")
        # The request as the proxy would read it off the wire: one codec, the same texts checked.
        # extra_body is merged into the request on the wire by the SDK: it is read (and checked) as part of it
        extra = kwargs.get("extra_body")
        extra = dict(extra) if isinstance(extra, Mapping) else {}
        body = to_plain({**{k: v for k, v in kwargs.items() if k not in self._TRANSPORT and not _not_given(v)},
                         **extra, "messages": list(msgs)})
        return call, body, stream

    async def _prepare(self, call: Call[Any], body: dict[str, Any], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        """Input checks and the route: (client, request kwargs to send), or (Decision, None) to refuse."""
        found = wire.read_request(body, "chat", pass_fields=call.runtime.policy.wire.pass_fields)
        dec = await call.check_input(found.texts, found.roles)
        if dec.blocked:
            return dec, None
        try:
            client = await call.route(dec, self._w.routes, self._w.client,
                                      what="wrap_openai(client, routes={name: client})")
        except NoRoute as exc:
            return exc.decision, None
        sent = wire.write_request(body, found, dec.texts, hash_key=call.pipeline.hash_key)
        if call.model_to_send is not None:  # an experiment variant's model
            sent["model"] = call.model_to_send
        sent.update({k: v for k, v in kwargs.items() if k in self._TRANSPORT})
        extra = kwargs.get("extra_body")
        if isinstance(extra, Mapping) and extra:  # the checked values go back where the caller put them
            sent["extra_body"] = {k: sent.pop(k) for k in extra if k in sent}
        return client, sent

    def _refuse(self, dec: Decision, stream: bool, model: Any, is_async: bool) -> Any:
        if self._w.on_block == "raise":
            raise Blocked(dec)
        if stream:
            chunk = refusal_chunk(dec.message or "", dec, model if isinstance(model, str) else None)
            return AsyncGuardedStream(_one(chunk)) if is_async else GuardedStream(iter([chunk]))
        return refusal_completion(dec.message or "", dec, model if isinstance(model, str) else None)

    def _output(self, dec_out: Decision, answer: Any) -> Any:
        if dec_out.blocked and self._w.on_block == "raise":
            raise Blocked(dec_out)
        return answer


class _SyncCompletions(_Completions):
    def create(self, **kwargs: Any) -> Any:
        g = self._w.guard
        call, body, stream = self._begin(kwargs)
        client, sent = g.on_loop(self._prepare(call, body, kwargs))
        if isinstance(client, Decision):
            return self._refuse(client, stream, kwargs.get("model"), False)
        adapter = ChatCompletionOutput()
        t0 = time.perf_counter()
        try:
            result = client.chat.completions.create(**sent)
            if not stream:
                call.model_done(t0)
                plain = adapter.read(result)
        except BaseException as exc:
            g.on_loop(call.fail(exc))
            raise
        if stream:
            proc = ChunkProcessor(g.pipeline, call.ctx)
            return GuardedStream(g.stream_sync(call, proc, result, self._w.on_block), result)
        dec_out, answer = g.on_loop(adapter.check(call, plain, result))
        return self._output(dec_out, answer)


class _AsyncCompletions(_Completions):
    async def create(self, **kwargs: Any) -> Any:
        g = self._w.guard
        await g.aruntime()
        call, body, stream = self._begin(kwargs)
        client, sent = await g.aon_loop(self._prepare(call, body, kwargs))
        if isinstance(client, Decision):
            return self._refuse(client, stream, kwargs.get("model"), True)
        adapter = ChatCompletionOutput()
        t0 = time.perf_counter()
        try:
            result = await client.chat.completions.create(**sent)
            if not stream:
                call.model_done(t0)
                plain = adapter.read(result)
        except BaseException as exc:
            await g.aon_loop(call.fail(exc))
            raise
        if stream:
            proc = ChunkProcessor(g.pipeline, call.ctx)
            return AsyncGuardedStream(g.stream_async(call, proc, result, self._w.on_block), result)
        dec_out, answer = await g.aon_loop(adapter.check(call, plain, result))
        return self._output(dec_out, answer)


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
