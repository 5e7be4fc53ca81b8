"""safe_text against the real redaction code: whatever the pipeline applied or not, no reported value
survives into the audit text (property test), including streamed output decisions."""

from __future__ import annotations

import asyncio

from audit_helpers import CARDS, PHONES, make_policy, traffic
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis import strategies as st

from guardrails.audit.record import safe_text
from guardrails.pipeline import Renderer, apply_redactions
from guardrails.streaming import OutputStream
from guardrails.types import Action, CallContext, Finding, Judgement, Operator
from guardrails.vault import Vault

FILLER = ["the", "report", "is", "due", "à", "naïve", "café", "e\u0301t\u00e9", "👍🏽", "ok", "<", ">", "<X>", ",", " ",
          "<PERSON>", "<SECRET_1>", "<EMAIL_ADDRESS:0123456789abcdef>"]  # look-alikes of real placeholders
CHOICES = [(Action.REDACT, Operator.REDACT), (Action.REDACT, Operator.PSEUDONYMISE), (Action.REDACT, Operator.HASH),
           (Action.REDACT, Operator.MASK), (Action.FLAG, None), (Action.ALLOW, None), (Action.ROUTE, None),
           (Action.BLOCK, None)]


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[Judgement], list[str], bool]:
    n = draw(st.integers(1, 5))
    parts: list[str] = []
    spans: list[tuple[int, int, str]] = []
    secrets: list[str] = []
    pos = 0
    for k in range(n):
        filler = " ".join(draw(st.lists(st.sampled_from(FILLER), max_size=4)))
        parts.append(filler + " ")
        pos += len(filler) + 1
        value = f"V{k}Q{draw(st.integers(10**7, 10**8 - 1))}ZX"
        secrets.append(value)
        spans.append((pos, pos + len(value), value))
        parts.append(value)
        pos += len(value)
    parts.append(" " + " ".join(draw(st.lists(st.sampled_from(FILLER), max_size=3))))
    text = "".join(parts)
    js: list[Judgement] = []
    for s, e, _ in spans:
        for _ in range(draw(st.integers(1, 2))):  # sometimes two detectors, overlapping differently
            ds = draw(st.integers(-2, 2))
            de = draw(st.integers(-2, 2))
            span = (max(0, s + min(ds, 0)), min(len(text), e + max(de, 0)))
            action, op = draw(st.sampled_from(CHOICES))
            js.append(Judgement(Finding("d", draw(st.sampled_from(["PERSON", "EMAIL_ADDRESS", "SECRET"])), 0.9, span,
                                        {}, 0), action, op))
    blocked = any(j.action is Action.BLOCK for j in js)
    return text, js, secrets, blocked


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_no_reported_value_survives(case: tuple[str, list[Judgement], list[str], bool]) -> None:
    text, js, secrets, blocked = case
    passed = text if blocked else apply_redactions(text, js, Renderer(b"k" * 32, Vault()))
    out = safe_text(passed, js, blocked)
    if out is None:
        return
    for value in secrets:
        # no run of its digits, and not the tail a mask keeps visible
        assert value[2:8] not in out and value[-7:-2] not in out and value[-4:] not in out, (text, passed, out)


async def test_streamed_output_decision_is_safe() -> None:
    policy = make_policy()
    t = traffic(policy)
    ctx = CallContext()
    answer = (f"Call {PHONES[0]} now. Your card {CARDS[0]} was charged. " * 3
              + f"Also {PHONES[1]} and the card {CARDS[1]}. ") * 4
    stream = OutputStream(t.pipeline, ctx)
    for i in range(0, len(answer), 7):
        await stream.feed(answer[i:i + 7])
        await asyncio.sleep(0)
    await stream.finish()
    dec = stream.decision
    assert dec.action is Action.REDACT and len(dec.texts) == 1
    assert PHONES[0] in dec.texts[0]  # flagged on output: passed on as is ...
    out = safe_text(dec.texts[0], list(dec.judgements), dec.blocked)
    assert out is not None and out.count("<PHONE_NUMBER>") == 16 and out.count("<CREDIT_CARD>") == 16
    assert not any(v in out for v in PHONES + CARDS)  # ... but never audited as is
