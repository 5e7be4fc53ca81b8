"""One guarded call, whichever way it came in (proxy, @guard, wrap_openai): the lifecycle in order.

    call = Call(runtime, ctx, route="proxy")
    role = await call.admit()                       # role and model rules (AccessDenied: audited, raised)
    dec = await call.check_input(texts, roles)      # input decision (a block is audited here)
    target = await call.route(dec, targets)         # the upstream the decision names, categories checked
    ... call the model ...
    dec, answer = await call.check_answer(resp)     # or ChunkGuard + call.stream_done(guard)
    (call.record is idempotent: exactly one audit record per call, whatever happens)

Statuses are the same on every path: an input block 400 / content_policy_violation, an answer (refused
or not) 200, an access denial its AccessDenied status and code, a route with no target 502 /
route_unavailable, a caller gone 499 / client_disconnected, a failing model 502 (or its status).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from guardrails import access
from guardrails.answer import ChunkGuard, check_answer
from guardrails.callplan import Plan, plan_call, replan_for_route
from guardrails.errors import AccessDenied
from guardrails.policy import Role
from guardrails.types import Action, CallContext, CallRecord, Decision
from guardrails.wire import openai as wire

log = logging.getLogger("trustwall.call")
T = TypeVar("T")


def model_failure(exc: BaseException) -> tuple[int, str]:
    """(status, code) for a failed model call, as the proxy answers the same upstream failure: an OpenAI
    SDK error by its HTTP status (auth 502, rate limit 429, other 4xx as they are, 5xx 502), its timeout
    504, its connection error 502; anything else the function raised 502 model_error:<type>."""
    name = type(exc).__name__
    status = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    code = code if isinstance(code, str) and code.isidentifier() else None
    if isinstance(status, int):
        if status in (401, 403):
            return 502, "upstream_auth_failed"
        if status == 429:
            return 429, code or "upstream_rate_limited"
        if 400 <= status < 500:
            return status, code or "upstream_rejected"
        return 502, "upstream_error"
    if name == "APITimeoutError":
        return 504, "upstream_timeout"
    if name == "APIConnectionError":
        return 502, "upstream_unreachable"
    return 502, f"model_error:{name}"


class NoRoute(Exception):
    """The input decision routes the call to an upstream this way in has no target for."""

    def __init__(self, decision: Decision):
        super().__init__(decision.message)
        self.decision = decision


class Call(Generic[T]):
    """The state of one guarded call and its one audit record."""

    def __init__(self, runtime: Any, ctx: CallContext, *, route: str, streamed: bool = False,
                 access_upstream: str | None = None, observe: Callable[[CallRecord], None] | None = None,
                 started: tuple[float, float] | None = None):
        """`started`: (time.time(), time.perf_counter()) of when the call began, when that was before this
        object (the proxy starts the clock on the request, before its body is read)."""
        self.runtime = runtime
        self.ctx = ctx
        self.route_name = route
        self.streamed = streamed
        self.access_upstream = access_upstream  # the policy upstream the access rules see (default: the default)
        self.observe = observe
        self.started_at, self._t0 = started if started is not None else (time.time(), time.perf_counter())
        self.input: Decision | None = None
        self.output: Decision | None = None
        self.upstream_ms: float | None = None
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.recorded = False
        self.role: Role | None = None
        self.plan: Plan | None = None  # the experiment variant and licence of this call (guardrails.callplan)
        self.input_ms = 0.0
        self.output_ms = 0.0
        self.unchecked: tuple[tuple[str, int], ...] = ()  # non-text parts forwarded unchecked (wire.unchecked_parts)

    @property
    def model_to_send(self) -> str | None:
        """The model name the upstream gets: an experiment variant's, else the caller's."""
        return self.plan.model if self.plan is not None and self.plan.model is not None else self.ctx.model

    @property
    def pipeline(self) -> Any:
        return self.runtime.pipeline

    # -- the steps, in order ------------------------------------------------------------------

    async def admit(self) -> Role:
        """The principal's role and the model rules; an AccessDenied is audited and raised."""
        ctx = self.ctx
        policy = self.runtime.policy
        try:
            role = self.role = access.role_of(policy, ctx.principal)
            if ctx.model:
                access.check_model(role, ctx.principal, ctx.model)
            # an experiment may assign another upstream (and model); licences may refuse (403)
            own = self.access_upstream or policy.default_upstream_name
            self.plan = plan_call(policy, ctx.principal, ctx.model, own, ctx.request_id)
            if self.plan.experiment is not None:
                ctx.upstream = self.plan.upstream
        except AccessDenied as exc:
            self.ctx.upstream = None  # refused before any upstream was chosen
            await self.record(status=exc.status, error=exc.code, final=Action.BLOCK)
            raise
        return role

    async def check_input(self, texts: Sequence[str], roles: Sequence[str | None] | None = None) -> Decision:
        """The input decision; a block is audited here (status 400)."""
        if self.role is None:
            await self.admit()
        if roles is not None:
            self.ctx.roles = tuple(roles)
        t = time.perf_counter()
        dec = self.input = await self.pipeline.check_input(list(texts), self.ctx)
        self.input_ms = (time.perf_counter() - t) * 1000
        if dec.blocked:
            await self.record(status=400, error="content_policy_violation")
        return dec

    async def route(self, dec: Decision, targets: Mapping[str, T], default: T, *,
                    what: str = "targets") -> T:
        """The target for the upstream the decision names (`default` when it names none), after the data
        category rules for that upstream. NoRoute (audited 502) when no target is given for it."""
        target = default
        own = self.access_upstream or self.runtime.policy.default_upstream_name
        plan = self.plan
        name, why = None, ""
        if dec.action is Action.ROUTE and dec.upstream is not None:
            name, why = dec.upstream, f"The policy routes this request to upstream {dec.upstream!r}"
        elif plan is not None and plan.experiment is not None and plan.upstream != own:
            name, why = plan.upstream, (f"Experiment {plan.experiment!r} assigns this call to upstream "
                                        f"{plan.upstream!r} (variant {plan.variant!r})")
        if name is not None:
            found = targets.get(name)
            if found is None:
                await self.record(status=502, error="route_unavailable", final=Action.BLOCK)
                raise NoRoute(dataclasses.replace(dec, action=Action.BLOCK, message=(
                    f"{why}, and no target is configured for it ({what}).")))
            target = found
            self.ctx.upstream = name
        await self.check_upstream(dec)
        return target

    async def check_upstream(self, dec: Decision) -> None:
        """The data categories that pass on (not redacted) may reach the upstream the call goes to."""
        if self.role is None:
            await self.admit()
        assert self.role is not None
        if dec.action is Action.ROUTE and dec.upstream is not None:
            upstream = dec.upstream
        elif self.plan is not None:
            upstream = self.plan.upstream
        else:
            upstream = self.access_upstream or self.runtime.policy.default_upstream_name
        try:
            if self.plan is not None:  # a routed call is checked against the routed upstream's licence
                self.plan = replan_for_route(self.runtime.policy, self.ctx.principal, self.plan, upstream)
            access.check_categories(self.role, self.ctx.principal, upstream, access.passing_categories(dec))
        except AccessDenied as exc:
            await self.record(status=exc.status, error=exc.code, final=Action.BLOCK)
            raise

    async def check_texts(self, texts: Sequence[str]) -> tuple[Decision, list[str]]:
        """Output checks on plain texts (a function's string answer); the restored texts; records 200."""
        t = time.perf_counter()
        dec = self.output = await self.pipeline.check_output(list(texts), self.ctx)
        self.output_ms = (time.perf_counter() - t) * 1000
        restored = [] if dec.blocked else [self.pipeline.restore(x, self.ctx) for x in dec.texts]
        await self.record(status=200)
        return dec, restored

    def model_done(self, t0: float) -> None:
        self.upstream_ms = (time.perf_counter() - t0) * 1000

    def usage(self, obj: Any) -> None:
        p, c = wire.usage(obj)
        if p is not None:
            self.prompt_tokens = p
        if c is not None:
            self.completion_tokens = c

    async def check_answer(self, resp: dict[str, Any], kind: wire.Kind, *, restore: bool = True,
                           record: bool = True) -> tuple[Decision, dict[str, Any]]:
        """Output checks on a plain answer (JSON-shaped); the answer to hand back, refused when blocked."""
        self.usage(resp)
        t = time.perf_counter()
        dec, out = await check_answer(self.pipeline, self.ctx, resp, kind, restore=restore)
        self.output_ms = (time.perf_counter() - t) * 1000
        self.output = dec
        if record:
            await self.record(status=200)
        return dec, out

    def chunk_guard(self, kind: wire.Kind, *, restore: bool = True) -> ChunkGuard:
        self.streamed = True  # a call is 'streamed' once its model stream has started
        return ChunkGuard(self.pipeline, self.ctx, kind, restore=restore)

    async def stream_done(self, guard: Any, error: BaseException | None = None, *,
                          status: int | None = None, code: str | None = None) -> Decision:
        """The end of a streamed answer (`guard`: a ChunkGuard or any processor with `decision()`):
        records the call (200, the given status, or the failure)."""
        self.output = guard.decision()
        p, c = getattr(guard, "tokens", (None, None))
        if p is not None:
            self.prompt_tokens = p
        if c is not None:
            self.completion_tokens = c
        if status is not None:
            await self.record(status=status, error=code)
        elif error is None:
            await self.record(status=200)
        else:
            await self.fail(error)
        return self.output

    async def fail(self, exc: BaseException) -> None:
        """Record a model call that failed, with the status and code the proxy gives the same failure."""
        if isinstance(exc, (GeneratorExit, asyncio.CancelledError, KeyboardInterrupt)):
            await self.record(status=499, error="client_disconnected")
        else:
            status, code = model_failure(exc)
            await self.record(status=status, error=code)

    # -- the record ---------------------------------------------------------------------------

    def final_action(self) -> Action:
        return max((d.action for d in (self.input, self.output) if d is not None), default=Action.ALLOW)

    def to_record(self, *, status: int, error: str | None, final: Action | None) -> CallRecord:
        ctx = self.ctx
        return CallRecord(
            request_id=ctx.request_id, principal=ctx.principal, route=self.route_name, model=ctx.model,
            upstream=ctx.upstream, input=self.input, output=self.output, started_at=self.started_at,
            upstream_ms=self.upstream_ms, total_ms=(time.perf_counter() - self._t0) * 1000, status=status,
            error=error, prompt_tokens=self.prompt_tokens, completion_tokens=self.completion_tokens,
            final_action=final if final is not None else self.final_action(), streamed=self.streamed,
            unchecked=self.unchecked,
            **(self.plan.record_fields() if self.plan is not None else {}),
        )

    async def record(self, *, status: int, error: str | None = None, final: Action | None = None) -> None:
        """Write the call's one audit record (later calls are no-ops). Raises when the sink fails."""
        if self.recorded:
            return
        self.recorded = True
        rec = self.to_record(status=status, error=error, final=final)
        if self.observe is not None:
            try:
                self.observe(rec)
            except Exception:  # noqa: BLE001 - metrics never break a call
                log.debug("observer failed", exc_info=True)
        await self.runtime.record(rec)
