"""The trustwall pipeline in-process: `Guard`, the `@guard` decorator, manual checks with sync twins.

    g = Guard.from_policy("rules/default.yaml")      # detectors load once, here

    @g.guard                                          # prompt: the `prompt`/`messages` parameter, else the 1st
    def ask(prompt: str) -> str:                      # receives the redacted / pseudonymised prompt
        return call_my_model(prompt)                  # the caller receives the checked, restored answer

Every call runs the same Pipeline as the proxy: input checks, the wrapped function (the model call),
output checks (for generators: the proxy's sliding-window OutputStream), restoration of pseudonyms the
principal may see, and one audit record (route "decorator") written through `runtime.record`.

All pipeline work of a Guard runs on one private event loop in a daemon thread that the Guard owns.
The async API awaits it from the caller's loop, the sync API blocks on it, so sync code works with or
without a running loop in the calling thread, detectors and the audit sink only ever see one loop
(micro-batchers and writer queues stay valid), and concurrent callers from many threads are batched
together. The wrapped function itself always runs in the caller's thread or task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import dataclasses
import functools
import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar, runtime_checkable

from guardrails.callplan import Plan, pick_target, plan_call, replan_for_route  # issue 18
from guardrails.errors import AccessDenied, Blocked, TrustwallError
from guardrails.types import ANONYMOUS, Action, CallContext, CallRecord, Decision, Principal

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from guardrails.detector import Registry
    from guardrails.pipeline import Pipeline
    from guardrails.policy import Policy
    from guardrails.runtime import Recorder, Runtime
    from guardrails.settings import Settings
    from guardrails.streaming import OutputStream

T = TypeVar("T")
OnBlock = Literal["raise", "refuse"]
ROUTE_NAME = "decorator"
log = logging.getLogger("trustwall.decorator")

# ------------------------------------------------------------------------------------------ principal

# A ContextVar, not mutable module state: each thread / task sees only what its own context set.
_PRINCIPAL: ContextVar[Principal | None] = ContextVar("trustwall_principal", default=None)


def as_principal(value: Principal | str, role: str = ANONYMOUS.role) -> Principal:
    """A Principal from a Principal or an id string (with `role`)."""
    if isinstance(value, Principal):
        return value
    if isinstance(value, str) and value:
        return Principal(id=value, role=role)
    raise TypeError(f"a principal is a guardrails.Principal or a non-empty id string, not {type(value).__name__}")


@contextlib.contextmanager
def trustwall_principal(principal: Principal | str, role: str = ANONYMOUS.role) -> Iterator[Principal]:
    """Run guarded calls in this block (this thread / task and what it awaits) as `principal`.

        with trustwall_principal(Principal("alice", "user")):
            ask("...")        # audited as alice; pseudonyms restored as the 'user' role allows
    """
    p = as_principal(principal, role)
    token = _PRINCIPAL.set(p)
    try:
        yield p
    finally:
        _PRINCIPAL.reset(token)


def current_principal() -> Principal | None:
    """The principal set by the innermost `trustwall_principal` block, if any."""
    return _PRINCIPAL.get()


# ------------------------------------------------------------------------------- the private loop


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class LoopThread:
    """One event loop in one daemon thread, started on first use. Thread-safe. Owned by one Guard."""

    def __init__(self, name: str = "trustwall-guard") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._loop is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not self._closed:
            return loop
        with self._lock:
            if self._closed:
                raise TrustwallError("this Guard is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=_serve, args=(loop, started), name=self._name, daemon=True)
                thread.start()
                started.wait()
                self._thread, self._loop = thread, loop
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            loop = self._ensure()
            return asyncio.run_coroutine_threadsafe(coro, loop)
        except BaseException:
            coro.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and block this thread until it is done."""
        if self.in_loop_thread():
            coro.close()
            raise TrustwallError("a synchronous Guard method was called from inside the Guard's own event loop; "
                                 "use the async API there")
        return self.submit(coro).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the loop from any other loop (cancellation propagates)."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def close(self, last: Callable[[], Coroutine[Any, Any, Any]] | None = None, timeout: float = 30.0) -> None:
        """Run `last()` on the loop (if it was started), then stop the loop and join its thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if last is not None and not self.in_loop_thread():
                asyncio.run_coroutine_threadsafe(last(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if not self.in_loop_thread():
                thread.join(timeout)


# ------------------------------------------------------------------------------- prompts and messages


def _get(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def _has(obj: Any, key: str) -> bool:
    return key in obj if isinstance(obj, Mapping) else hasattr(obj, key)


def _is_message(obj: Any) -> bool:
    return _has(obj, "content") and (_has(obj, "role") or isinstance(obj, Mapping))


def _replace(obj: Any, key: str, value: Any) -> Any:
    """A copy of `obj` with `key` set to `value`; the caller's object is never mutated."""
    if isinstance(obj, Mapping):
        out = dict(obj)
        out[key] = value
        return out
    model_copy = getattr(obj, "model_copy", None)  # pydantic v2 (OpenAI SDK types)
    if callable(model_copy):
        return model_copy(update={key: value})
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{key: value})
    dup = copy.copy(obj)
    setattr(dup, key, value)
    return dup


@dataclasses.dataclass(frozen=True)
class Prompt:
    """The texts of a prompt (a string, or messages whose content is a string or a list of parts),
    and how to rebuild the prompt in the caller's own shape with other texts."""

    value: Any
    texts: tuple[str, ...]
    slots: tuple[tuple[int, int | None], ...]  # (message index, content part index or None); (-1, None) = str
    kind: Literal["str", "list", "tuple", "one"]

    @property
    def roles(self) -> tuple[str | None, ...]:
        """The message role of each text ("user" for a plain string or a list of strings)."""
        if self.kind == "str":
            return ("user",)
        items = [self.value] if self.kind == "one" else list(self.value)
        out: list[str | None] = []
        for i, j in self.slots:
            m = items[i]
            r = "user" if j == -1 or isinstance(m, str) else _get(m, "role")
            out.append(r if isinstance(r, str) else None)
        return tuple(out)

    @classmethod
    def read(cls, value: Any) -> Prompt:
        if isinstance(value, str):
            return cls(value, (value,), ((-1, None),), "str")
        if isinstance(value, (bytes, bytearray)):
            raise TypeError("the prompt must be text (str), not bytes")
        if isinstance(value, Mapping) or _is_message(value):  # one message (pydantic models are iterable too)
            texts, slots = cls._read_messages([value])
            return cls(value, texts, slots, "one")
        if isinstance(value, Iterable):
            kind: Literal["list", "tuple"] = "tuple" if isinstance(value, tuple) else "list"
            items = list(value)
            texts, slots = cls._read_messages(items)
            return cls(items, texts, slots, kind)
        raise TypeError(f"cannot read a prompt from {type(value).__name__}: pass a string or a list of messages "
                        "(dicts or objects with role/content), or name the argument with input_arg=")

    @staticmethod
    def _read_messages(items: Sequence[Any]) -> tuple[tuple[str, ...], tuple[tuple[int, int | None], ...]]:
        texts: list[str] = []
        slots: list[tuple[int, int | None]] = []
        for i, m in enumerate(items):
            if isinstance(m, str):  # a list of plain strings
                texts.append(m)
                slots.append((i, -1))
                continue
            if not _has(m, "content"):  # never let an unreadable message through unchecked
                raise TypeError(f"message {i} ({type(m).__name__}) has no 'content': messages are dicts or objects "
                                "with role/content")
            content = _get(m, "content")
            if content is None:  # e.g. an assistant turn that only calls tools
                continue
            if isinstance(content, str):
                texts.append(content)
                slots.append((i, None))
            elif isinstance(content, Iterable) and not isinstance(content, (bytes, Mapping)):
                for j, part in enumerate(content):
                    if isinstance(part, str):
                        texts.append(part)
                        slots.append((i, j))
                    elif isinstance(_get(part, "text"), str):  # any part carrying text, as the proxy reads it
                        texts.append(_get(part, "text"))
                        slots.append((i, j))
                    # images, audio and files are not text: no text detector reads them
            else:
                raise TypeError(f"message {i}: cannot read its content ({type(content).__name__})")
        return tuple(texts), tuple(slots)

    def rebuild(self, texts: Sequence[str]) -> Any:
        """The prompt with its texts replaced, in the caller's shape (unchanged parts are shared)."""
        if len(texts) != len(self.texts):
            raise ValueError("text count mismatch")
        if self.kind == "str":
            return texts[0]
        items: list[Any] = [self.value] if self.kind == "one" else list(self.value)
        for (i, j), old, new in zip(self.slots, self.texts, texts):
            if new == old:
                continue
            msg = items[i]
            if j == -1:
                items[i] = new
            elif j is None:
                items[i] = _replace(msg, "content", new)
            else:
                parts = list(_get(msg, "content"))
                part = parts[j]
                parts[j] = new if isinstance(part, str) else _replace(part, "text", new)
                items[i] = _replace(msg, "content", parts)
        if self.kind == "one":
            return items[0]
        return tuple(items) if self.kind == "tuple" else items


# ------------------------------------------------------------------------------------- outputs


@runtime_checkable
class OutputAdapter(Protocol):
    """How to read the texts of what a guarded function returns, and write the checked texts back."""

    def read(self, result: Any) -> list[str]: ...

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any: ...

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any: ...


class TextOutput:
    """The function returns a string (the default)."""

    def read(self, result: Any) -> list[str]:
        if not isinstance(result, str):
            raise TypeError(f"the guarded function returned {type(result).__name__}, not a string: pass output= a "
                            "callable that reads the text from it, or output='openai' for ChatCompletion objects")
        return [result]

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        return texts[0]

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        return message


class ReaderOutput:
    """`output=callable`: the text is read from the result by a function of the user; the guarded function
    then returns that text, checked and restored (the object itself could still hold unchecked text)."""

    def __init__(self, reader: Callable[[Any], str]):
        self.reader = reader

    def read(self, result: Any) -> list[str]:
        text = self.reader(result)
        if not isinstance(text, str):
            raise TypeError(f"output reader returned {type(text).__name__}, not a string")
        return [text]

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        return texts[0]

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        return message


class AutoOutput(TextOutput):
    """A string is the output; an OpenAI ChatCompletion is read with the built-in adapter."""

    def _pick(self, result: Any) -> OutputAdapter:
        if not isinstance(result, str) and _get(result, "object") == "chat.completion":
            from guardrails.openai_wrap import ChatCompletionOutput

            return ChatCompletionOutput()
        return TextOutput()

    def read(self, result: Any) -> list[str]:
        return self._pick(result).read(result)

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        return self._pick(result).write(result, texts, decision)

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        return self._pick(result).refusal(message, decision, result) if result is not None else message


def output_adapter(output: None | str | Callable[[Any], str] | OutputAdapter) -> OutputAdapter:
    if output is None or output == "auto":
        return AutoOutput()
    if output == "text":
        return TextOutput()
    if output == "openai":
        from guardrails.openai_wrap import ChatCompletionOutput

        return ChatCompletionOutput()
    if isinstance(output, OutputAdapter):
        return output
    if callable(output):
        return ReaderOutput(output)
    raise TypeError(f"output= must be None, 'text', 'openai', a callable or an OutputAdapter, not {output!r}")


# ---------------------------------------------------------------------------------------- streams


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
        if self._chunks is None and not isinstance(item, str) and _get(item, "object") == "chat.completion.chunk" \
                and self._stream is None:
            from guardrails.openai_wrap import ChatChunkProcessor

            self._chunks = ChatChunkProcessor(self._pipeline, self._ctx)
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

    def decision(self) -> Decision:
        if self._chunks is not None:
            return self._chunks.decision()
        return self._text_stream().decision

    def refusal(self, message: str) -> Any:
        if self._chunks is not None:
            return self._chunks.refusal(message)
        return message


# --------------------------------------------------------------------------------------- one call


class GuardedCall:
    """The state of one guarded call: its context, decisions, timings and its one audit record, written
    with the proxy's conventions: an input block is status 400 / content_policy_violation, an answer
    (refused or not) 200, an access denial its AccessDenied status and code, a caller gone 499 /
    client_disconnected, a failing model 502 (or the status the error carries).

    Its coroutines run on the Guard's loop."""

    def __init__(self, runtime: Runtime, ctx: CallContext, *, streamed: bool = False,
                 access_upstream: str | None = None):
        self.runtime = runtime
        self.ctx = ctx
        self.streamed = streamed
        self.access_upstream = access_upstream  # the policy upstream the access rules see (default: the default)
        self.started_at = time.time()
        self._t0 = time.perf_counter()
        self.input: Decision | None = None
        self.output: Decision | None = None
        self.upstream_ms: float | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.recorded = False
        self.plan: Plan | None = None  # issue 18: experiment variant + licence of this call

    @property
    def pipeline(self) -> Pipeline:
        return self.runtime.pipeline

    async def check_input(self, texts: Sequence[str], roles: Sequence[str | None] | None = None) -> Decision:
        """Access rules (role, model), input checks, data categories per upstream; audits a refusal.
        `roles`: the message role of each text (detectors may scope themselves by it)."""
        from guardrails import access

        policy, ctx = self.runtime.policy, self.ctx
        if roles is not None:
            ctx.roles = tuple(roles)
        try:
            role = access.role_of(policy, ctx.principal)
            if ctx.model:
                access.check_model(role, ctx.principal, ctx.model)
            # issue 18: an experiment may assign another upstream; licences may refuse (403)
            own = self.access_upstream or policy.default_upstream_name
            self.plan = plan_call(policy, ctx.principal, ctx.model, own, ctx.request_id)
            if self.plan.experiment is not None:
                ctx.upstream = self.plan.upstream
        except AccessDenied as exc:
            await self.record(status=exc.status, error=exc.code, final=Action.BLOCK)
            raise
        dec = self.input = await self.pipeline.check_input(list(texts), ctx)
        if dec.blocked:
            await self.record(status=400, error="content_policy_violation")
            return dec
        upstream = dec.upstream or self.plan.upstream
        try:
            self.plan = replan_for_route(policy, ctx.principal, self.plan, upstream)  # issue 18: routed licence
            access.check_categories(role, ctx.principal, upstream, access.passing_categories(dec))
        except AccessDenied as exc:
            await self.record(status=exc.status, error=exc.code, final=Action.BLOCK)
            raise
        return dec

    async def check_output(self, texts: Sequence[str]) -> tuple[Decision, list[str]]:
        """Check the model's texts, restore what the principal may see, record the call."""
        dec = await self.pipeline.check_output(list(texts), self.ctx)
        self.output = dec
        restored = [] if dec.blocked else [self.pipeline.restore(t, self.ctx) for t in dec.texts]
        await self.record(status=200)
        return dec, restored

    async def stream_done(self, proc: StreamProcessor, error: BaseException | None = None) -> Decision:
        self.output = proc.decision()
        if error is None:
            await self.record(status=200)
        else:
            await self.fail(error)
        return self.output

    async def no_route(self) -> None:
        await self.record(status=502, error="route_unavailable", final=Action.BLOCK)

    async def fail(self, exc: BaseException) -> None:
        if isinstance(exc, (GeneratorExit, asyncio.CancelledError, KeyboardInterrupt)):
            await self.record(status=499, error="client_disconnected")
        else:
            status = getattr(exc, "status_code", None)
            await self.record(status=status if isinstance(status, int) else 502,
                              error=f"model_error:{type(exc).__name__}")

    def model_done(self, t0: float) -> None:
        self.upstream_ms = (time.perf_counter() - t0) * 1000

    async def record(self, *, status: int, error: str | None = None, final: Action | None = None) -> None:
        if self.recorded:
            return
        self.recorded = True
        if final is None:
            final = max((d.action for d in (self.input, self.output) if d is not None), default=Action.ALLOW)
        ctx = self.ctx
        await self.runtime.record(CallRecord(
            request_id=ctx.request_id, principal=ctx.principal, route=ctx.route or ROUTE_NAME, model=ctx.model,
            upstream=ctx.upstream, input=self.input, output=self.output, started_at=self.started_at,
            upstream_ms=self.upstream_ms, total_ms=(time.perf_counter() - self._t0) * 1000, status=status,
            error=error, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            final_action=final, streamed=self.streamed,
            **(self.plan.record_fields() if self.plan is not None else {}),  # issue 18
        ))


@dataclasses.dataclass(frozen=True)
class InputCheck:
    """What `Guard.check_input` found. `prompt` is the redacted prompt in the caller's shape (None when
    blocked); pass `ctx` to `check_output` so pseudonyms come back."""

    decision: Decision
    ctx: CallContext
    prompt: Any

    @property
    def blocked(self) -> bool:
        return self.decision.blocked

    @property
    def texts(self) -> tuple[str, ...]:
        return self.decision.texts

    @property
    def text(self) -> str:
        return self.decision.text


@dataclasses.dataclass(frozen=True)
class OutputCheck:
    """What `Guard.check_output` found. `text` is the checked output with pseudonyms restored (the
    refusal message when blocked); `texts` when several texts were checked."""

    decision: Decision
    ctx: CallContext
    texts: tuple[str, ...]

    @property
    def blocked(self) -> bool:
        return self.decision.blocked

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


_CALL_KEY = ("guardrails.decorator", "call")


# ----------------------------------------------------------------------------------------- the guard


class _Core:
    """What a Guard's finaliser needs: the loop and the runtime (no reference back to the Guard)."""

    def __init__(self, runtime: Runtime | None, factory: Callable[[], Runtime] | None, owns_runtime: bool):
        self.runtime = runtime
        self.factory = factory
        self.owns_runtime = owns_runtime
        self.lock = threading.Lock()
        self.loop = LoopThread()

    def ensure_runtime(self) -> Runtime:
        rt = self.runtime
        if rt is not None:
            return rt
        with self.lock:
            if self.loop.closed:
                raise TrustwallError("this Guard is closed")
            if self.runtime is None:
                assert self.factory is not None
                self.runtime = self.factory()
            return self.runtime

    def close(self, quiet: bool = False) -> None:
        """Close the runtime (if owned) on the loop, then stop the loop. `quiet` (the finaliser, maybe at
        interpreter exit, when no new thread may start): errors are logged, and the audit log is at
        least closed synchronously."""
        rt = self.runtime if self.owns_runtime else None
        try:
            if rt is not None and not self.loop.started:
                self.loop.close()
                _run_fresh(rt.aclose)  # the loop never ran: close the runtime on a short-lived one
                return
            self.loop.close(rt.aclose if rt is not None else None)
        except Exception:
            if not quiet:
                raise
            log.debug("closing a Guard's runtime failed (at exit?); closing its audit log directly", exc_info=True)
            close = getattr(getattr(rt, "audit", None), "close", None)
            if callable(close):
                try:
                    close()
                except Exception:  # noqa: BLE001 - last resort at exit
                    log.error("audit log could not be closed", exc_info=True)


def _run_fresh(coro_fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """asyncio.run(coro_fn()), in a helper thread when this thread already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro_fn())
        return
    failure: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            failure.append(exc)

    t = threading.Thread(target=target, name="trustwall-guard-close")
    t.start()
    t.join()
    if failure:
        raise failure[0]


@dataclasses.dataclass(frozen=True)
class _Options:
    on_block: OnBlock
    principal: Principal | None
    principal_arg: str | None
    model: str | None
    upstream: str | None
    routes: Mapping[str, Callable[..., Any]]


class Guard:
    """One runtime (policy, detectors loaded once, pipeline, audit sink) and its private loop.

    Thread-safe; share one Guard between every function and client you guard. Close it (or use it as a
    context manager) to flush the audit sink; an unclosed Guard is closed when collected or at exit.
    """

    def __init__(self, runtime: Runtime | None = None, *, on_block: OnBlock = "raise",
                 principal: Principal | str | None = None, owns_runtime: bool = False,
                 _factory: Callable[[], Runtime] | None = None):
        if runtime is None and _factory is None:
            raise TypeError("Guard(runtime) needs a Runtime; use Guard.from_policy(path) or Guard.from_settings()")
        if on_block not in ("raise", "refuse"):
            raise ValueError(f"on_block must be 'raise' or 'refuse', not {on_block!r}")
        self.on_block: OnBlock = on_block
        self.principal = as_principal(principal) if principal is not None else None
        self._core = _Core(runtime, _factory, owns_runtime or runtime is None)
        self._finalizer = weakref.finalize(self, self._core.close, True)  # also at interpreter exit

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_settings(cls, settings: Settings | None = None, *, policy: Policy | None = None,
                      registry: Registry | None = None, audit: Recorder | bool | None = True,
                      lazy: bool = False, **options: Any) -> Guard:
        """Build the runtime (every detector loads once, now; `lazy=True`: on first use)."""
        from guardrails.runtime import build_runtime

        def factory() -> Runtime:
            return build_runtime(settings, policy=policy, registry=registry, audit=audit)

        if lazy:
            return cls(None, _factory=factory, **options)
        return cls(factory(), owns_runtime=True, **options)

    @classmethod
    def from_policy(cls, path: str | Path, *, settings: Settings | None = None, registry: Registry | None = None,
                    audit: Recorder | bool | None = True, lazy: bool = False, **options: Any) -> Guard:
        """A Guard for the policy file at `path` (other settings from `settings` or the environment)."""
        from pathlib import Path as _Path

        from guardrails.settings import Settings as _Settings

        base = settings if settings is not None else _Settings()
        return cls.from_settings(base.model_copy(update={"policy": _Path(path)}), registry=registry, audit=audit,
                                 lazy=lazy, **options)

    # -- what it holds --------------------------------------------------------------------------

    @property
    def runtime(self) -> Runtime:
        return self._core.ensure_runtime()

    @property
    def pipeline(self) -> Pipeline:
        return self.runtime.pipeline

    @property
    def policy(self) -> Policy:
        return self.runtime.policy

    def context(self, *, principal: Principal | str | None = None, model: str | None = None,
                upstream: str | None = None, metadata: Mapping[str, Any] | None = None) -> CallContext:
        """A fresh per-call context (route 'decorator'); the principal defaults as for guarded calls."""
        return CallContext(principal=self._principal(principal), model=model, upstream=upstream, route=ROUTE_NAME,
                           metadata=dict(metadata or {}))

    def _principal(self, explicit: Principal | str | None = None, static: Principal | None = None) -> Principal:
        if explicit is not None:
            return as_principal(explicit)
        return _PRINCIPAL.get() or static or self.principal or ANONYMOUS

    # -- the loop -------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._core.loop.run(coro)

    async def _arun(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._core.loop.arun(coro)

    async def _aruntime(self) -> Runtime:
        rt = self._core.runtime
        return rt if rt is not None else await asyncio.to_thread(self._core.ensure_runtime)

    def _call(self, runtime: Runtime, ctx: CallContext, *, streamed: bool = False,
              access_upstream: str | None = None) -> GuardedCall:
        return GuardedCall(runtime, ctx, streamed=streamed, access_upstream=access_upstream)

    # -- manual checks --------------------------------------------------------------------------

    async def check_input(self, prompt: Any, ctx: CallContext | None = None, *,
                          principal: Principal | str | None = None, model: str | None = None,
                          raise_on_block: bool = True) -> InputCheck:
        """Check a prompt (a string or messages). Raises Blocked on block unless raise_on_block=False.

        A blocked input is audited at once; otherwise the call is audited by `check_output(text, ctx)`."""
        runtime = await self._aruntime()
        return self._finish_input(await self._arun(self._input_coro(runtime, prompt, ctx, principal, model)),
                                  raise_on_block)

    def check_input_sync(self, prompt: Any, ctx: CallContext | None = None, *,
                         principal: Principal | str | None = None, model: str | None = None,
                         raise_on_block: bool = True) -> InputCheck:
        runtime = self.runtime
        return self._finish_input(self._run(self._input_coro(runtime, prompt, ctx, principal, model)), raise_on_block)

    def _input_coro(self, runtime: Runtime, prompt: Any, ctx: CallContext | None, principal: Any,
                    model: str | None) -> Coroutine[Any, Any, InputCheck]:
        parsed = Prompt.read(prompt)
        ctx = ctx or self.context(principal=principal, model=model)
        call = self._call(runtime, ctx)

        async def run() -> InputCheck:
            dec = await call.check_input(parsed.texts, parsed.roles)
            if not dec.blocked:
                ctx.cache[_CALL_KEY] = call
            return InputCheck(dec, ctx, None if dec.blocked else parsed.rebuild(dec.texts))

        return run()

    @staticmethod
    def _finish_input(res: InputCheck, raise_on_block: bool) -> InputCheck:
        if res.blocked and raise_on_block:
            raise Blocked(res.decision)
        return res

    async def check_output(self, text: str | Sequence[str], ctx: CallContext | None = None, *,
                           raise_on_block: bool = True) -> OutputCheck:
        """Check a model's output; pseudonyms from `check_input` on the same ctx are restored. Writes the
        call's audit record. Raises Blocked on block unless raise_on_block=False."""
        runtime = await self._aruntime()
        return self._finish_output(await self._arun(self._output_coro(runtime, text, ctx)), raise_on_block)

    def check_output_sync(self, text: str | Sequence[str], ctx: CallContext | None = None, *,
                          raise_on_block: bool = True) -> OutputCheck:
        runtime = self.runtime
        return self._finish_output(self._run(self._output_coro(runtime, text, ctx)), raise_on_block)

    def _output_coro(self, runtime: Runtime, text: str | Sequence[str],
                     ctx: CallContext | None) -> Coroutine[Any, Any, OutputCheck]:
        texts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("check_output takes a string or a list of strings")
        ctx = ctx or self.context()
        call = ctx.cache.pop(_CALL_KEY, None) or self._call(runtime, ctx)

        async def run() -> OutputCheck:
            dec, restored = await call.check_output(texts)
            return OutputCheck(dec, ctx, (dec.message or "",) if dec.blocked else tuple(restored))

        return run()

    @staticmethod
    def _finish_output(res: OutputCheck, raise_on_block: bool) -> OutputCheck:
        if res.blocked and raise_on_block:
            raise Blocked(res.decision)
        return res

    # -- the decorator --------------------------------------------------------------------------

    def guard(self, func: Callable[..., Any] | None = None, *, input_arg: str | int | None = None,
              output: None | str | Callable[[Any], str] | OutputAdapter = None, on_block: OnBlock | None = None,
              principal: Principal | str | None = None, principal_arg: str | None = None, model: str | None = None,
              upstream: str | None = None, routes: Mapping[str, Callable[..., Any]] | None = None) -> Any:
        """Guard a function that calls a model: plain, async, generator or async generator; functions or
        methods. Usable bare (`@g.guard`) or with options (`@g.guard(output=..., on_block="refuse")`).

        input_arg: the parameter holding the prompt (default: `prompt` or `messages`, else the first).
        output: how to read the result: None (a string, or an OpenAI ChatCompletion), 'openai', a callable
            result -> text (the guarded function then returns the checked text), or an OutputAdapter.
        on_block: 'raise' (Blocked) or 'refuse' (return / yield the policy's refusal text instead).
        principal / principal_arg: who calls (else `trustwall_principal(...)`, else the Guard's default).
        routes: upstream name -> function called instead when the policy routes a request there
            (a routed request with no function for its upstream is refused: fail closed).
        """
        opts = _Options(on_block or self.on_block, as_principal(principal) if principal is not None else None,
                        principal_arg, model, upstream, dict(routes or {}))
        if opts.on_block not in ("raise", "refuse"):
            raise ValueError(f"on_block must be 'raise' or 'refuse', not {opts.on_block!r}")
        adapter = output_adapter(output)

        def decorate(fn: Callable[..., Any]) -> Any:
            binder = _Binder(fn, input_arg, principal_arg)
            if inspect.isasyncgenfunction(fn):
                wrapper = self._wrap_async_gen(fn, binder, opts)
            elif inspect.isgeneratorfunction(fn):
                wrapper = self._wrap_gen(fn, binder, opts)
            elif inspect.iscoroutinefunction(fn):
                wrapper = self._wrap_async(fn, binder, adapter, opts)
            else:
                wrapper = self._wrap_sync(fn, binder, adapter, opts)
            functools.update_wrapper(wrapper, fn)
            wrapper.__trustwall_guard__ = self  # type: ignore[attr-defined]
            return wrapper

        return decorate(func) if func is not None else decorate

    __call__ = guard

    def _start(self, runtime: Runtime, binder: _Binder, opts: _Options, args: tuple[Any, ...],
               kwargs: dict[str, Any], *, streamed: bool) -> tuple[GuardedCall, _Bound]:
        bound = binder.bind(args, kwargs)
        ctx = CallContext(principal=self._principal(bound.principal, opts.principal), model=opts.model,
                          upstream=opts.upstream, route=ROUTE_NAME)
        return self._call(runtime, ctx, streamed=streamed, access_upstream=opts.upstream), bound

    def _target(self, fn: Callable[..., Any], dec: Decision, opts: _Options,
                plan: Plan | None = None) -> Callable[..., Any] | Decision:
        """The function to call: `fn`, a route's or the experiment variant's function (issue 18: routes=
        keyed by upstream name); a Decision (to refuse) when none fits."""
        return pick_target(fn, opts.routes, dec, plan, opts.upstream or self.policy.default_upstream_name)

    def _refuse(self, dec: Decision, opts: _Options, adapter: OutputAdapter, result: Any = None) -> Any:
        if opts.on_block == "raise":
            raise Blocked(dec)
        return adapter.refusal(dec.message or "", dec, result)

    def _wrap_sync(self, fn: Callable[..., Any], binder: _Binder, adapter: OutputAdapter, opts: _Options) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call, bound = self._start(self.runtime, binder, opts, args, kwargs, streamed=False)
            dec_in = self._run(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                return self._refuse(dec_in, opts, adapter)
            target = self._target(fn, dec_in, opts, call.plan)
            if isinstance(target, Decision):
                self._run(call.no_route())
                return self._refuse(target, opts, adapter)
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            t0 = time.perf_counter()
            try:
                result = target(*call_args, **call_kwargs)
                call.model_done(t0)
                texts = adapter.read(result)
            except BaseException as exc:
                self._run(call.fail(exc))
                raise
            _usage(call, result)
            dec_out, restored = self._run(call.check_output(texts))
            if dec_out.blocked:
                return self._refuse(dec_out, opts, adapter, result)
            return adapter.write(result, restored, dec_out)

        return wrapper

    def _wrap_async(self, fn: Callable[..., Awaitable[Any]], binder: _Binder, adapter: OutputAdapter,
                    opts: _Options) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            call, bound = self._start(await self._aruntime(), binder, opts, args, kwargs, streamed=False)
            dec_in = await self._arun(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                return self._refuse(dec_in, opts, adapter)
            target = self._target(fn, dec_in, opts, call.plan)
            if isinstance(target, Decision):
                await self._arun(call.no_route())
                return self._refuse(target, opts, adapter)
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            t0 = time.perf_counter()
            try:
                result = target(*call_args, **call_kwargs)
                if inspect.isawaitable(result):
                    result = await result
                call.model_done(t0)
                texts = adapter.read(result)
            except BaseException as exc:
                await self._arun(call.fail(exc))
                raise
            _usage(call, result)
            dec_out, restored = await self._arun(call.check_output(texts))
            if dec_out.blocked:
                return self._refuse(dec_out, opts, adapter, result)
            return adapter.write(result, restored, dec_out)

        return wrapper

    def _wrap_gen(self, fn: Callable[..., Iterator[Any]], binder: _Binder, opts: _Options) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            runtime = self.runtime
            call, bound = self._start(runtime, binder, opts, args, kwargs, streamed=False)
            proc = TextStreamProcessor(runtime.pipeline, call.ctx)
            dec_in = self._run(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                yield self._refuse(dec_in, opts, TextOutput())
                return
            target = self._target(fn, dec_in, opts, call.plan)
            if isinstance(target, Decision):
                self._run(call.no_route())
                yield self._refuse(target, opts, TextOutput())
                return
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            yield from self.stream_sync(call, proc, target(*call_args, **call_kwargs), opts.on_block)

        return wrapper

    def _wrap_async_gen(self, fn: Callable[..., AsyncIterator[Any]], binder: _Binder, opts: _Options) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            runtime = await self._aruntime()
            call, bound = self._start(runtime, binder, opts, args, kwargs, streamed=False)
            proc = TextStreamProcessor(runtime.pipeline, call.ctx)
            dec_in = await self._arun(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                yield self._refuse(dec_in, opts, TextOutput())
                return
            target = self._target(fn, dec_in, opts, call.plan)
            if isinstance(target, Decision):
                await self._arun(call.no_route())
                yield self._refuse(target, opts, TextOutput())
                return
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            inner = self.stream_async(call, proc, target(*call_args, **call_kwargs), opts.on_block)
            try:
                async for item in inner:
                    yield item
            finally:
                await inner.aclose()  # no `yield from` for async generators: close (and audit) now

        return wrapper

    # -- stream drivers (shared with the OpenAI wrapper) ----------------------------------------

    def stream_sync(self, call: GuardedCall, proc: StreamProcessor, source: Iterable[Any],
                    on_block: OnBlock) -> Iterator[Any]:
        """Yield only what `proc` released from `source`; audit once at the end (or on error / close)."""
        call.streamed = True  # as the proxy: a call is 'streamed' once its model stream has started
        t0 = time.perf_counter()
        it = iter(source)
        try:
            while proc.blocked is None:
                try:
                    item = next(it)
                except StopIteration:
                    call.model_done(t0)
                    yield from self._run(proc.finish())
                    break
                _usage(call, item)
                yield from self._run(proc.feed(item))
        except BaseException as exc:
            self._run(call.stream_done(proc, exc))
            raise
        finally:
            for obj in (it, source) if source is not it else (it,):  # a generator; an SDK stream's response
                closer = getattr(obj, "close", None)
                if callable(closer):
                    closer()
        dec = self._run(call.stream_done(proc))
        if proc.blocked is not None:
            if on_block == "raise":
                raise Blocked(dec)
            yield proc.refusal(dec.message or "")

    async def stream_async(self, call: GuardedCall, proc: StreamProcessor, source: Any,
                           on_block: OnBlock) -> AsyncIterator[Any]:
        call.streamed = True
        t0 = time.perf_counter()
        if inspect.isawaitable(source):
            source = await source
        it = source.__aiter__()
        try:
            while proc.blocked is None:
                try:
                    item = await it.__anext__()
                except StopAsyncIteration:
                    call.model_done(t0)
                    for out in await self._arun(proc.finish()):
                        yield out
                    break
                _usage(call, item)
                for out in await self._arun(proc.feed(item)):
                    yield out
        except BaseException as exc:
            await asyncio.shield(self._arun(call.stream_done(proc, exc)))
            raise
        finally:
            for obj in (it, source) if source is not it else (it,):
                closer = getattr(obj, "aclose", None) or getattr(obj, "close", None)
                if callable(closer):
                    res = closer()
                    if inspect.isawaitable(res):
                        await res
        dec = await self._arun(call.stream_done(proc))
        if proc.blocked is not None:
            if on_block == "raise":
                raise Blocked(dec)
            yield proc.refusal(dec.message or "")

    # -- clients --------------------------------------------------------------------------------

    def wrap_openai(self, client: Any, *, on_block: OnBlock | None = None, principal: Principal | str | None = None,
                    upstream: str | None = None, routes: Mapping[str, Any] | None = None) -> Any:
        """A view of an `openai.OpenAI` / `openai.AsyncOpenAI` client whose `chat.completions.create`
        (streamed or not) runs through this Guard in-process. Everything else is the client's own.

        upstream: the policy upstream this client stands for (access rules per upstream, the audit);
        routes: {upstream name: client} for policies with `routes:` (a routed call without one is refused)."""
        from guardrails.openai_wrap import wrap_openai

        return wrap_openai(self, client, on_block=on_block or self.on_block,
                           principal=as_principal(principal) if principal is not None else None, upstream=upstream,
                           routes=routes)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the runtime (when this Guard built it: flushes the audit sink) and stop the loop.
        Idempotent; calls after it raise TrustwallError."""
        if self._finalizer.detach() is not None:
            self._core.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)

    def __enter__(self) -> Guard:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Guard:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        rt = self._core.runtime
        return f"Guard(policy={rt.policy.id if rt else '<not loaded>'!r}, on_block={self.on_block!r})"


def _usage(call: GuardedCall, result: Any) -> None:
    usage = _get(result, "usage") if not isinstance(result, str) else None
    if usage is not None:
        pt, ct = _get(usage, "prompt_tokens"), _get(usage, "completion_tokens")
        call.prompt_tokens = pt if isinstance(pt, int) else call.prompt_tokens
        call.completion_tokens = ct if isinstance(ct, int) else call.completion_tokens


# -------------------------------------------------------------------------------- argument binding


@dataclasses.dataclass
class _Bound:
    binder: _Binder
    bound: inspect.BoundArguments
    prompt: Prompt
    principal: Principal | str | None

    def with_prompt(self, value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = self.bound.arguments
        b = self.binder
        if b.var_kw is not None and b.name not in b.sig.parameters:
            args[b.var_kw] = {**args[b.var_kw], b.name: value}
        elif b.var_pos_index is not None:
            items = list(args[b.name])
            items[0] = value
            args[b.name] = tuple(items)
        else:
            args[b.name] = value
        return self.bound.args, self.bound.kwargs


class _Binder:
    """Finds the prompt (and the principal) among a function's arguments."""

    def __init__(self, fn: Callable[..., Any], input_arg: str | int | None, principal_arg: str | None):
        self.sig = inspect.signature(fn)
        params = list(self.sig.parameters.values())
        self.var_kw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        self.var_pos_index: int | None = None
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        if positional and positional[0].name in ("self", "cls"):
            positional = positional[1:]
        if isinstance(input_arg, int):
            if input_arg >= len(positional):
                raise TypeError(f"{fn.__qualname__} has no positional parameter {input_arg}")
            name = positional[input_arg].name
        elif isinstance(input_arg, str):
            if input_arg not in self.sig.parameters and self.var_kw is None:
                raise TypeError(f"{fn.__qualname__} has no parameter {input_arg!r}")
            name = input_arg
        else:
            name = next((n for n in ("prompt", "messages") if n in self.sig.parameters), None)
            if name is None:
                if not positional and self.var_kw is None:
                    raise TypeError(f"cannot guard {fn.__qualname__}: it takes no prompt argument")
                name = positional[0].name if positional else "messages"
        param = self.sig.parameters.get(name)
        if param is not None and param.kind is param.VAR_POSITIONAL:
            self.var_pos_index = 0
        self.name = name
        self.principal_arg = principal_arg
        if principal_arg is not None and principal_arg not in self.sig.parameters and self.var_kw is None:
            raise TypeError(f"{fn.__qualname__} has no parameter {principal_arg!r}")
        self.qualname = fn.__qualname__

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _Bound:
        bound = self.sig.bind(*args, **kwargs)
        arguments = bound.arguments
        if self.name in self.sig.parameters:
            param = self.sig.parameters[self.name]
            if self.name in arguments:
                value = arguments[self.name]
                if self.var_pos_index is not None:
                    if not value:
                        raise TypeError(f"{self.qualname}() was called without a prompt")
                    value = value[0]
            elif param.default is not param.empty:
                value = param.default
                arguments[self.name] = value
            else:  # pragma: no cover - bind() raised already
                raise TypeError(f"{self.qualname}() missing the prompt argument {self.name!r}")
        else:
            extra = arguments.get(self.var_kw or "", {})
            if self.name not in extra:
                raise TypeError(f"{self.qualname}() was called without a {self.name!r} argument")
            value = extra[self.name]
        principal = None
        if self.principal_arg is not None:
            principal = arguments.get(self.principal_arg)
            if principal is None and self.var_kw is not None:
                principal = arguments.get(self.var_kw, {}).get(self.principal_arg)
        return _Bound(self, bound, Prompt.read(value), principal)


# ------------------------------------------------------------------------------ the module-level form


def guard(func: Callable[..., Any] | None = None, *, policy: str | Path | Guard | None = None,
          settings: Settings | None = None, audit: Recorder | bool | None = True,
          input_arg: str | int | None = None, output: None | str | Callable[[Any], str] | OutputAdapter = None,
          on_block: OnBlock = "raise", principal: Principal | str | None = None, principal_arg: str | None = None,
          model: str | None = None, upstream: str | None = None,
          routes: Mapping[str, Callable[..., Any]] | None = None) -> Any:
    """`@guard(policy="rules/default.yaml")`: guard one function with its own Guard, built on first call
    (so importing the module that defines it loads nothing). Pass a Guard as `policy`, or use
    `@g.guard` of one shared Guard, to load the detectors once for many functions."""
    if isinstance(policy, Guard):
        g = policy
    else:
        from guardrails.runtime import build_runtime
        from guardrails.settings import Settings as _Settings

        def factory() -> Runtime:
            s = settings if settings is not None else _Settings()
            if policy is not None:
                from pathlib import Path as _Path

                s = s.model_copy(update={"policy": _Path(policy)})
            return build_runtime(s, audit=audit)

        g = Guard(None, _factory=factory, on_block=on_block)
    return g.guard(func, input_arg=input_arg, output=output, on_block=on_block, principal=principal,
                   principal_arg=principal_arg, model=model, upstream=upstream, routes=routes)
