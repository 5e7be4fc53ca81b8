"""Guarded streaming: output checks on a sliding window, so no unchecked byte reaches the client.

The model's text accumulates in a buffer. A check runs when a sentence ends (and at least
`min_chars` are pending) or when `window_chars` are pending, over the pending text plus
`context_chars` of already released text. After a check passes, the text up to the window's end is
released except a held-back tail of `hold_chars`, which is checked again with the next window, so a
span that crosses a window boundary (a toxic phrase split across chunks, an e-mail address) is seen
whole before any of it leaves. Redactions found in the window are applied to what is released, and
pseudonyms are restored incrementally (a placeholder split across chunks still comes out right).
When a check blocks, nothing more is released and `blocked` turns True.
"""

from __future__ import annotations

import re
from collections import defaultdict

from guardrails.pipeline import Pipeline, Renderer, apply_redactions, citations
from guardrails.types import Action, CallContext, CheckTiming, Decision, Finding, Judgement
from guardrails.vault import Restorer

_BOUNDARY = re.compile(r"[.!?;:\n][\"')\]]*\s+")


class OutputStream:
    """One per streamed response. Not thread-safe; feed it from one task."""

    def __init__(self, pipeline: Pipeline, ctx: CallContext, *, restore: bool = True):
        self._p = pipeline
        self._ctx = ctx
        cfg = pipeline.policy.streaming
        self._window, self._min, self._hold, self._context = cfg.window_chars, cfg.min_chars, cfg.hold_chars, cfg.context_chars
        self._buf = ""
        self._released = 0  # raw text before this index has been released
        self._out_raw: list[str] = []  # released text, redacted, before restoration (for the audit)
        self._restorer: Restorer | None = None
        if restore and ctx.vault is not None and len(ctx.vault):
            self._restorer = ctx.vault.restorer(pipeline.restore_allowed(ctx))
        self._render = Renderer(pipeline.hash_key, None)
        self._judgements: dict[tuple, Judgement] = {}
        self._timings: dict[str, list[CheckTiming]] = defaultdict(list)
        self._errors: set[str] = set()
        self._block: Decision | None = None
        self.checks = 0

    # -------------------------------------------------------------------------------------- public

    @property
    def blocked(self) -> bool:
        return self._block is not None

    async def feed(self, chunk: str) -> str:
        if self.blocked or not chunk:
            return ""
        self._buf += chunk
        pending = len(self._buf) - self._released
        if pending >= self._window:
            return await self._check(final=False)
        if pending >= self._min and _BOUNDARY.search(self._buf, self._released + self._min - 1):
            return await self._check(final=False)
        return ""

    async def finish(self) -> str:
        if self.blocked:
            return ""
        out = await self._check(final=True) if self._released < len(self._buf) else ""
        if self.blocked:
            return ""
        if self._restorer is not None:
            out += self._restorer.flush()
        cite = citations(list(self._judgements.values()))
        if cite:
            self._out_raw.append(cite)
            out += cite
        return out

    @property
    def decision(self) -> Decision:
        judgements = tuple(self._judgements.values())
        action = max((j.action for j in judgements), default=Action.ALLOW)
        if self._block is not None:
            action = Action.BLOCK
        timings = tuple(
            CheckTiming(name, "output", sum(t.ms for t in ts), next((t.status for t in ts if t.status != "ok"), "ok"))
            for name, ts in self._timings.items()
        )
        policy = self._p.policy
        return Decision(
            stage="output", action=action, judgements=judgements, texts=("".join(self._out_raw),), timings=timings,
            policy_id=policy.id, policy_version=policy.digest, request_id=self._ctx.request_id,
            message=self._block.message if self._block else None, errors=tuple(sorted(self._errors)),
        )

    @property
    def released_text(self) -> str:
        """Everything released so far, redacted but not restored (what an audit may keep)."""
        return "".join(self._out_raw)

    # ------------------------------------------------------------------------------------- internals

    def _cut(self, final: bool) -> int:
        if final:
            return len(self._buf)
        last = None
        for m in _BOUNDARY.finditer(self._buf, self._released):
            last = m.end()
        if last is not None and last > self._released and len(self._buf) - self._released < self._window:
            return last
        return len(self._buf)

    async def _check(self, final: bool) -> str:
        cut = self._cut(final)
        start = max(0, self._released - self._context)
        window = self._buf[start:cut]
        dec = await self._p.check("output", [window], self._ctx)
        self.checks += 1
        for t in dec.timings:
            self._timings[t.detector].append(t)
        self._errors.update(dec.errors)
        shifted = [self._shift(j, start) for j in dec.judgements]
        for j in shifted:
            f = j.finding
            key = (f.detector, f.category, f.span if f.span is not None else (-1, self._released))
            prev = self._judgements.get(key)
            if prev is None or j.action > prev.action or f.score > prev.finding.score:
                self._judgements[key] = j
        if dec.blocked:
            self._block = dec
            return ""
        end = cut if final else max(self._released, cut - self._hold)
        if not final:
            # A window forced mid-word ends inside a token that may go on (a long key, an address):
            # never release any of that token before it has been seen whole.
            k = cut
            while k > self._released and not self._buf[k - 1].isspace():
                k -= 1
            if k < cut:
                end = min(end, k)
        redactions = []
        for j in shifted:
            if j.action is not Action.REDACT:
                continue
            s, e = j.finding.span if j.finding.span is not None else (self._released, cut)
            if s < end < e and not final:
                end = max(self._released, s)  # never release half a span: hold it for the next window
            redactions.append(j)
        if end <= self._released:
            return ""
        seg_start = self._released
        segment = self._buf[seg_start:end]
        local = []
        for j in redactions:
            s, e = j.finding.span if j.finding.span is not None else (seg_start, end)
            s, e = max(s, seg_start), min(e, end)
            if e > s:
                f = j.finding
                local.append(Judgement(Finding(f.detector, f.category, f.score, (s - seg_start, e - seg_start), f.evidence, 0),
                                       j.action, j.operator, j.rule, j.keep_last))
        segment = apply_redactions(segment, local, self._render)
        self._released = end
        self._out_raw.append(segment)
        return self._restorer.feed(segment) if self._restorer is not None else segment

    @staticmethod
    def _shift(j: Judgement, offset: int) -> Judgement:
        f = j.finding
        span = (f.span[0] + offset, f.span[1] + offset) if f.span is not None else None
        return Judgement(Finding(f.detector, f.category, f.score, span, f.evidence, f.message_index), j.action, j.operator, j.rule,
                        j.keep_last)
