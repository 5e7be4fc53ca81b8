"""`Guard`: the in-process way in. Manual checks with sync twins, the `@guard` decorator (sync, async,
generators), and `wrap_openai`. Every call runs the one call lifecycle (guardrails.call.Call).

    g = Guard.from_policy("rules/default.yaml")      # detectors load once, here

    @g.guard                                          # prompt: the `prompt`/`messages` parameter, else the 1st
    def ask(prompt: str) -> str:                      # receives the redacted / pseudonymised prompt
        return call_my_model(prompt)                  # the caller receives the checked, restored answer

All pipeline work of a Guard runs on one private event loop in a daemon thread that the Guard owns
(guardrails.inprocess.loop). The wrapped function itself always runs in the caller's thread or task.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import inspect
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from guardrails.errors import Blocked, TrustwallError
from guardrails.inprocess.binding import Binder, Bound
from guardrails.inprocess.loop import LoopThread
from guardrails.inprocess.outputs import OutputAdapter, TextOutput, output_adapter
from guardrails.inprocess.principal import as_principal, current_principal
from guardrails.inprocess.prompt import Prompt
from guardrails.inprocess.streams import (
    ROUTE_NAME,
    OnBlock,
    StreamProcessor,
    TextStreamProcessor,
    drive_async,
    drive_sync,
)
from guardrails.types import ANONYMOUS, CallContext, Decision, Principal
from guardrails.wire.fields import to_plain

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    from guardrails.call import Call
    from guardrails.detector import Registry
    from guardrails.pipeline import Pipeline
    from guardrails.policy import Policy
    from guardrails.runtime import Recorder, Runtime
    from guardrails.settings import Settings

# --------------------------------------------------------------------------------------- one call


T = TypeVar("T")
log = logging.getLogger("trustwall.inprocess")


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


_CALL_KEY = ("guardrails.inprocess", "call")


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
        return CallContext(principal=self.principal_for(principal), model=model, upstream=upstream, route=ROUTE_NAME,
                           metadata=dict(metadata or {}))

    def principal_for(self, explicit: Principal | str | None = None, static: Principal | None = None) -> Principal:
        if explicit is not None:
            return as_principal(explicit)
        return current_principal() or static or self.principal or ANONYMOUS

    # -- the loop -------------------------------------------------------------------------------

    def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._core.loop.run(coro)

    async def aon_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await self._core.loop.arun(coro)

    async def aruntime(self) -> Runtime:
        rt = self._core.runtime
        return rt if rt is not None else await asyncio.to_thread(self._core.ensure_runtime)

    def new_call(self, runtime: Runtime, ctx: CallContext, *, streamed: bool = False,
              access_upstream: str | None = None) -> Call[Any]:
        from guardrails.call import Call

        return Call(runtime, ctx, route=ctx.route or ROUTE_NAME, streamed=streamed, access_upstream=access_upstream)

    # -- manual checks --------------------------------------------------------------------------

    async def check_input(self, prompt: Any, ctx: CallContext | None = None, *,
                          principal: Principal | str | None = None, model: str | None = None,
                          raise_on_block: bool = True) -> InputCheck:
        """Check a prompt (a string or messages). Raises Blocked on block unless raise_on_block=False.

        A blocked input is audited at once; otherwise the call is audited by `check_output(text, ctx)`."""
        runtime = await self.aruntime()
        return self._finish_input(await self.aon_loop(self._input_coro(runtime, prompt, ctx, principal, model)),
                                  raise_on_block)

    def check_input_sync(self, prompt: Any, ctx: CallContext | None = None, *,
                         principal: Principal | str | None = None, model: str | None = None,
                         raise_on_block: bool = True) -> InputCheck:
        runtime = self.runtime
        return self._finish_input(self.on_loop(self._input_coro(runtime, prompt, ctx, principal, model)), raise_on_block)

    def _input_coro(self, runtime: Runtime, prompt: Any, ctx: CallContext | None, principal: Any,
                    model: str | None) -> Coroutine[Any, Any, InputCheck]:
        parsed = Prompt.read(prompt)
        ctx = ctx or self.context(principal=principal, model=model)
        call = self.new_call(runtime, ctx)

        async def run() -> InputCheck:
            dec = await call.check_input(parsed.texts, parsed.roles)
            if not dec.blocked:
                await call.check_upstream(dec)
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
        runtime = await self.aruntime()
        return self._finish_output(await self.aon_loop(self._output_coro(runtime, text, ctx)), raise_on_block)

    def check_output_sync(self, text: str | Sequence[str], ctx: CallContext | None = None, *,
                          raise_on_block: bool = True) -> OutputCheck:
        runtime = self.runtime
        return self._finish_output(self.on_loop(self._output_coro(runtime, text, ctx)), raise_on_block)

    def _output_coro(self, runtime: Runtime, text: str | Sequence[str],
                     ctx: CallContext | None) -> Coroutine[Any, Any, OutputCheck]:
        texts = [text] if isinstance(text, str) else list(text)
        if not all(isinstance(t, str) for t in texts):
            raise TypeError("check_output takes a string or a list of strings")
        ctx = ctx or self.context()
        call = ctx.cache.pop(_CALL_KEY, None) or self.new_call(runtime, ctx)

        async def run() -> OutputCheck:
            dec, restored = await call.check_texts(texts)
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
            binder = Binder(fn, input_arg, principal_arg)
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

    def _start(self, runtime: Runtime, binder: Binder, opts: _Options, args: tuple[Any, ...],
               kwargs: dict[str, Any], *, streamed: bool) -> tuple[Call[Any], Bound]:
        bound = binder.bind(args, kwargs)
        ctx = CallContext(principal=self.principal_for(bound.principal, opts.principal), model=opts.model,
                          upstream=opts.upstream, route=ROUTE_NAME)
        return self.new_call(runtime, ctx, streamed=streamed, access_upstream=opts.upstream), bound

    @staticmethod
    async def _route(call: Call[Any], dec: Decision, targets: Mapping[str, T], default: T,
                     what: str) -> T | Decision:
        """The target the input decision leads to, or a Decision to refuse with (no route: audited)."""
        from guardrails.call import NoRoute

        try:
            return await call.route(dec, targets, default, what=what)
        except NoRoute as exc:
            return exc.decision

    @staticmethod
    async def _answer(call: Call[Any], adapter: OutputAdapter, prepared: Any, result: Any) -> tuple[Decision, Any]:
        """Output checks on what the function returned (prepared by the adapter); the checked answer."""
        check = getattr(adapter, "check", None)
        if check is not None:
            return await check(call, prepared, result)
        dec, restored = await call.check_texts(prepared)
        return dec, (None if dec.blocked else adapter.write(result, restored, dec))

    def _refuse(self, dec: Decision, opts: _Options, adapter: OutputAdapter, result: Any = None) -> Any:
        if opts.on_block == "raise":
            raise Blocked(dec)
        return adapter.refusal(dec.message or "", dec, result)

    _NO_ROUTE = "pass routes={name: function}"

    def _wrap_sync(self, fn: Callable[..., Any], binder: Binder, adapter: OutputAdapter, opts: _Options) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            call, bound = self._start(self.runtime, binder, opts, args, kwargs, streamed=False)
            dec_in = self.on_loop(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                return self._refuse(dec_in, opts, adapter)
            target = self.on_loop(self._route(call, dec_in, opts.routes, fn, self._NO_ROUTE))
            if isinstance(target, Decision):
                return self._refuse(target, opts, adapter)
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            t0 = time.perf_counter()
            try:
                result = target(*call_args, **call_kwargs)
                call.model_done(t0)
                prepared = adapter.read(result)
            except BaseException as exc:
                self.on_loop(call.fail(exc))
                raise
            call.usage(to_plain(result) if not isinstance(result, str) else None)
            dec_out, answer = self.on_loop(self._answer(call, adapter, prepared, result))
            if dec_out.blocked:
                return self._refuse(dec_out, opts, adapter, result)
            return answer

        return wrapper

    def _wrap_async(self, fn: Callable[..., Awaitable[Any]], binder: Binder, adapter: OutputAdapter,
                    opts: _Options) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            call, bound = self._start(await self.aruntime(), binder, opts, args, kwargs, streamed=False)
            dec_in = await self.aon_loop(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                return self._refuse(dec_in, opts, adapter)
            target = await self.aon_loop(self._route(call, dec_in, opts.routes, fn, self._NO_ROUTE))
            if isinstance(target, Decision):
                return self._refuse(target, opts, adapter)
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            t0 = time.perf_counter()
            try:
                result = target(*call_args, **call_kwargs)
                if inspect.isawaitable(result):
                    result = await result
                call.model_done(t0)
                prepared = adapter.read(result)
            except BaseException as exc:
                await self.aon_loop(call.fail(exc))
                raise
            call.usage(to_plain(result) if not isinstance(result, str) else None)
            dec_out, answer = await self.aon_loop(self._answer(call, adapter, prepared, result))
            if dec_out.blocked:
                return self._refuse(dec_out, opts, adapter, result)
            return answer

        return wrapper

    def _wrap_gen(self, fn: Callable[..., Iterator[Any]], binder: Binder, opts: _Options) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Iterator[Any]:
            runtime = self.runtime
            call, bound = self._start(runtime, binder, opts, args, kwargs, streamed=False)
            proc = TextStreamProcessor(runtime.pipeline, call.ctx)
            dec_in = self.on_loop(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                yield self._refuse(dec_in, opts, TextOutput())
                return
            target = self.on_loop(self._route(call, dec_in, opts.routes, fn, self._NO_ROUTE))
            if isinstance(target, Decision):
                yield self._refuse(target, opts, TextOutput())
                return
            call_args, call_kwargs = bound.with_prompt(bound.prompt.rebuild(dec_in.texts))
            yield from self.stream_sync(call, proc, target(*call_args, **call_kwargs), opts.on_block)

        return wrapper

    def _wrap_async_gen(self, fn: Callable[..., AsyncIterator[Any]], binder: Binder, opts: _Options) -> Any:
        async def wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            runtime = await self.aruntime()
            call, bound = self._start(runtime, binder, opts, args, kwargs, streamed=False)
            proc = TextStreamProcessor(runtime.pipeline, call.ctx)
            dec_in = await self.aon_loop(call.check_input(bound.prompt.texts, bound.prompt.roles))
            if dec_in.blocked:
                yield self._refuse(dec_in, opts, TextOutput())
                return
            target = await self.aon_loop(self._route(call, dec_in, opts.routes, fn, self._NO_ROUTE))
            if isinstance(target, Decision):
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

    def stream_sync(self, call: Call[Any], proc: StreamProcessor, source: Iterable[Any],
                    on_block: OnBlock) -> Iterator[Any]:
        """Yield only what `proc` released from `source`; audit once at the end (or on error / close)."""
        return drive_sync(self.on_loop, call, proc, source, on_block)

    def stream_async(self, call: Call[Any], proc: StreamProcessor, source: Any,
                     on_block: OnBlock) -> AsyncIterator[Any]:
        return drive_async(self.aon_loop, call, proc, source, on_block)

    # -- clients --------------------------------------------------------------------------------

    def wrap_openai(self, client: Any, *, on_block: OnBlock | None = None, principal: Principal | str | None = None,
                    upstream: str | None = None, routes: Mapping[str, Any] | None = None) -> Any:
        """A view of an `openai.OpenAI` / `openai.AsyncOpenAI` client whose `chat.completions.create`
        (streamed or not) runs through this Guard in-process. Everything else is the client's own.

        upstream: the policy upstream this client stands for (access rules per upstream, the audit);
        routes: {upstream name: client} for policies with `routes:` (a routed call without one is refused)."""
        from guardrails.inprocess.openai_client import wrap_openai

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
