"""The pipeline: checks of one stage (input or output) over a list of texts, and the decision. The call
around it (access, route, the model, restoring, the audit record) is guardrails/call.py.

`decide()` and `apply_redactions()` are pure functions; `Pipeline` orchestrates detectors under their
timeouts and applies the policy.
"""

from __future__ import annotations

import asyncio
import logging
import hashlib
import hmac
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from guardrails.detector import Detector
from guardrails.policy import DetectorSpec, Policy, Route
from guardrails.spans import apply_replacements
from guardrails.types import (
    Action,
    CallContext,
    CheckTiming,
    Decision,
    Finding,
    Judgement,
    Message,
    Operator,
    Stage,
    max_action,
)
from guardrails.vault import Vault

log = logging.getLogger("trustwall.pipeline")
_OPERATOR_RANK = {Operator.REDACT: 3, Operator.HASH: 2, Operator.MASK: 1, Operator.PSEUDONYMISE: 0, None: -1}


# ------------------------------------------------------------------------------------------ pure core


def judge(spec: DetectorSpec, stage: Stage, findings: Sequence[Finding]) -> list[Judgement]:
    """Apply a detector's rules to its findings. Findings below threshold become ALLOW judgements
    (kept for the record, they change nothing)."""
    out: list[Judgement] = []
    for f in findings:
        rule = spec.rule_for(stage, f.category)
        if f.score < rule.threshold:
            out.append(Judgement(f, Action.ALLOW, None, f"{spec.name}/{f.category}"))
            continue
        op = rule.operator
        if op is Operator.PSEUDONYMISE and stage == "output":
            op = Operator.REDACT  # nothing to restore on the way out: a leaked value is simply removed
        out.append(Judgement(f, rule.verdict, op, f"{spec.name}/{f.category}",
                             rule.keep_last if op is Operator.MASK else None))
    return out


def decide(judgements: Sequence[Judgement]) -> Action:
    """The most severe action wins."""
    return max_action(j.action for j in judgements)


def apply_routes(routes: Sequence[Route], judgements: Sequence[Judgement]) -> tuple[Route | None, list[Judgement]]:
    """First route whose categories appear (at or above threshold and min_score) wins. Its categories
    are then sent as they are to the route's upstream instead of being redacted."""
    for route in routes:
        cats = set(route.when.categories)
        hits = [j for j in judgements if j.finding.category in cats and j.action >= Action.FLAG
                and j.action < Action.BLOCK and j.finding.score >= route.when.min_score]
        if hits:
            routed = [
                Judgement(j.finding, Action.ROUTE, None, j.rule)
                if j.finding.category in cats and Action.FLAG <= j.action < Action.BLOCK else j
                for j in judgements
            ]
            return route, routed
    return None, list(judgements)


@dataclass(frozen=True)
class Renderer:
    """Turns a judged span into its replacement text."""

    hash_key: bytes
    vault: Vault | None = None

    def __call__(self, j: Judgement, original: str) -> str:
        cat = j.finding.category
        op = j.operator or Operator.REDACT
        if op is Operator.PSEUDONYMISE and self.vault is not None:
            return self.vault.pseudonym(cat, original)
        if op is Operator.MASK:
            keep = j.keep_last if j.keep_last is not None else 4
            keep = min(keep, len(original) // 2)
            return "*" * (len(original) - keep) + (original[-keep:] if keep else "")
        if op is Operator.HASH:
            digest = hmac.new(self.hash_key, original.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
            return f"<{cat}:{digest}>"
        return f"<{cat}>"


def _rank(j: Judgement) -> tuple[Any, ...]:
    span = j.finding.span or (0, 0)
    return (_OPERATOR_RANK[j.operator], j.finding.score, span[1] - span[0])


def apply_redactions(text: str, judgements: Sequence[Judgement], render: Callable[[Judgement, str], str]) -> str:
    """Rewrite the REDACT judgements of one text. Overlapping and adjacent spans merge (the most
    protective operator wins); spans are widened to whole grapheme clusters; text outside them is
    untouched. A REDACT judgement without a span rewrites the whole text."""
    items: list[tuple[tuple[int, int], Judgement]] = []
    for j in judgements:
        if j.action is not Action.REDACT:
            continue
        items.append((j.finding.span if j.finding.span is not None else (0, len(text)), j))
    return apply_replacements(text, items, render, rank=_rank)


def citations(judgements: Sequence[Judgement]) -> str:
    """The sources block for findings passed with a citation (evidence["citation"], action flag or
    redact), '' when there is none. Generic: any detector can ask for a citation this way."""
    seen: list[str] = []
    for j in judgements:
        cite = j.finding.evidence.get("citation") if j.finding.evidence else None
        if cite and Action.FLAG <= j.action <= Action.REDACT and str(cite) not in seen:
            seen.append(str(cite))
    return "\n\nSources: " + "; ".join(seen) if seen else ""


# -------------------------------------------------------------------------------------- orchestration


@dataclass
class Checked:
    spec: DetectorSpec
    findings: list[list[Finding]]
    timing: CheckTiming
    error: str | None = None


class Pipeline:
    """Runs a policy's detectors. One per runtime; safe to share between concurrent calls."""

    def __init__(self, policy: Policy, detectors: Mapping[str, Detector], *, hash_key: bytes = b"",
                 clock: Callable[[], float] = time.perf_counter):
        self.policy = policy
        self.detectors = dict(detectors)
        self.hash_key = hash_key
        self._clock = clock
        missing = [d.name for d in policy.detectors if d.enabled and d.name not in self.detectors]
        if missing:
            raise ValueError(f"detectors not built: {missing}")

    # -- detectors ------------------------------------------------------------------------------

    async def _run_one(self, spec: DetectorSpec, stage: Stage, texts: Sequence[str], ctx: CallContext) -> Checked:
        det = self.detectors[spec.name]
        t0 = self._clock()
        try:
            result = await asyncio.wait_for(det.detect(texts, ctx, stage), timeout=spec.timeout_ms / 1000)
            if len(result) != len(texts):
                raise RuntimeError(f"returned {len(result)} result lists for {len(texts)} texts")
            status, err = "ok", None
        except asyncio.TimeoutError:
            result, status, err = [[] for _ in texts], "timeout", f"timed out after {spec.timeout_ms} ms"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - a crashed detector is a policy matter, not a 500
            # Only the class goes into the decision (callers and audits see it); the message may quote input.
            log.warning("detector %s failed: %s", spec.name, type(exc).__name__)
            log.debug("detector %s failure detail", spec.name, exc_info=True)
            result, status, err = [[] for _ in texts], "error", type(exc).__name__
        ms = (self._clock() - t0) * 1000
        return Checked(spec, [list(r) for r in result], CheckTiming(spec.name, stage, ms, status), err)  # type: ignore[arg-type]

    async def check(self, stage: Stage, texts: Sequence[str], ctx: CallContext) -> Decision:
        """Run every detector of `stage` concurrently over all texts and decide."""
        limit = self.policy.limits.max_text_chars
        if limit and any(len(t) > limit for t in texts):
            return self._too_long(stage, texts, ctx, limit)
        specs = self.policy.detectors_for(stage)
        checked = await asyncio.gather(*(self._run_one(s, stage, texts, ctx) for s in specs)) if texts else []
        judgements: list[Judgement] = []
        errors: list[str] = []
        for c in checked:
            for i, fl in enumerate(c.findings):
                judgements.extend(judge(c.spec, stage, [self._clean(f, texts[i], c.spec.name).with_message(i) for f in fl]))
            if c.error is not None:
                errors.append(c.spec.name)
                verdict = Action.parse(c.spec.on_error)
                cat = "detector_timeout" if c.timing.status == "timeout" else "detector_error"
                judgements.append(Judgement(Finding(c.spec.name, cat, 1.0, None, {"error": c.error[:200]}), verdict, None,
                                            f"{c.spec.name}/on_error"))
        route: Route | None = None
        if stage == "input":
            route, judgements = apply_routes(self.policy.routes, judgements)
        action = decide(judgements)
        out_texts: list[str] = list(texts)
        if action is not Action.BLOCK:
            vault = ctx.ensure_vault() if stage == "input" else None
            if vault is not None:
                for t in texts:
                    vault.reserve(t)
            render = Renderer(self.hash_key, vault)
            by_msg: dict[int, list[Judgement]] = {}
            for j in judgements:
                if j.action is Action.REDACT and j.finding.message_index is not None:
                    by_msg.setdefault(j.finding.message_index, []).append(j)
            for i, js in by_msg.items():
                out_texts[i] = apply_redactions(texts[i], js, render)
            if stage == "output":
                for i in range(len(out_texts)):
                    out_texts[i] += citations([j for j in judgements if j.finding.message_index == i])
        return Decision(
            stage=stage,
            action=action,
            judgements=tuple(judgements),
            texts=tuple(out_texts),
            timings=tuple(c.timing for c in checked),
            policy_id=self.policy.id,
            policy_version=self.policy.digest,
            request_id=ctx.request_id,
            upstream=route.upstream if route else None,
            route_rule=(f"{route.name}: input has {', '.join(sorted({j.finding.category for j in judgements if j.action is Action.ROUTE}))}"
                        if route else None),
            message=self._message(stage, judgements, errors) if action is Action.BLOCK else None,
            errors=tuple(errors),
        )

    def _too_long(self, stage: Stage, texts: Sequence[str], ctx: CallContext, limit: int) -> Decision:
        """Texts over policy.limits.max_text_chars are refused unchecked (as a check that could not
        complete: the audit keeps no text of the stage, `errors` says why)."""
        judgements = tuple(
            Judgement(Finding("limits", "text_too_long", 1.0, None, {"chars": len(t), "limit": limit}, i),
                      Action.BLOCK, None, "limits/max_text_chars")
            for i, t in enumerate(texts) if len(t) > limit)
        return Decision(stage=stage, action=Action.BLOCK, judgements=judgements, texts=tuple(texts), timings=(),
                        policy_id=self.policy.id, policy_version=self.policy.digest, request_id=ctx.request_id,
                        message=self.policy.messages.too_long, errors=("limits",))

    @staticmethod
    def _clean(f: Finding, text: str, name: str) -> Finding:
        """Keep a detector honest: clamp spans into its text and stamp its name."""
        span = f.span
        if span is not None:
            s, e = max(0, min(int(span[0]), len(text))), max(0, min(int(span[1]), len(text)))
            span = (s, e) if e > s else None
        score = float(f.score) if f.score == f.score else 1.0  # NaN counts as certain
        return Finding(f.detector or name, f.category, min(max(score, 0.0), 1.0), span, f.evidence, f.message_index)

    def _message(self, stage: Stage, judgements: Sequence[Judgement], errors: Sequence[str]) -> str:
        for j in judgements:
            if j.action is Action.BLOCK and j.finding.category not in ("detector_error", "detector_timeout"):
                spec = next((d for d in self.policy.detectors if d.name == j.finding.detector), None)
                rule = spec.rule_for(stage, j.finding.category) if spec else None
                if rule is not None and rule.message:
                    return rule.message
                break
        else:
            if errors:
                return self.policy.messages.detector_error
        m = self.policy.messages
        return m.block_input if stage == "input" else m.block_output

    # -- the call -------------------------------------------------------------------------------

    async def check_input(self, messages: Sequence[Message] | Sequence[str] | str, ctx: CallContext) -> Decision:
        texts = _texts(messages)
        if not isinstance(messages, str) and messages and all(isinstance(m, Message) for m in messages):
            ctx.roles = tuple(m.role for m in messages)  # type: ignore[union-attr]
        return await self.check("input", texts, ctx)

    async def check_output(self, text: str | Sequence[str], ctx: CallContext) -> Decision:
        return await self.check("output", _texts(text), ctx)

    def restore_allowed(self, ctx: CallContext) -> Callable[[str], bool]:
        from guardrails.access import restore_allowed

        role = self.policy.access.roles.get(ctx.principal.role)
        if role is None:
            return lambda cat: False
        return lambda cat: restore_allowed(role, cat)

    def restore(self, text: str, ctx: CallContext) -> str:
        if ctx.vault is None or not len(ctx.vault):
            return text
        return ctx.vault.restore(text, self.restore_allowed(ctx))


def _texts(value: Sequence[Message] | Sequence[str] | str) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v.content if isinstance(v, Message) else str(v) for v in value]
