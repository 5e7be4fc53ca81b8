"""PII-laden traffic through the real Pipeline (keywords detector), as CallRecords for the audit tests."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pytest

from detectors.registry import builtin_registry
from guardrails.errors import Blocked
from guardrails.pipeline import Pipeline
from guardrails.policy import Policy, parse_policy
from guardrails.audit.record import iso_time
from guardrails.types import Action, CallContext, CallRecord, Decision, Principal

# Every raw value below must never appear in any store or export.
NAMES = ["Marguerite Okonkwo-Villanueva", "Thaddeus Brightwater", "Ingrid Solvang-Achebe"]
EMAILS = ["marguerite.ov@example-corp.test", "t.brightwater@mailhost.test", "ingrid.sa@northwind.test"]
PHONES = ["+44 7911 123456", "+1 415 555 0199"]
CARDS = ["4111 1111 1111 1111", "5500 0000 0000 0004"]
SECRETS = ["sk-live-9f8e7d6c5b4a39281706f5e4", "AKIAQWERTYUIOPASDFGH"]
RAW_VALUES = NAMES + EMAILS + PHONES + CARDS + SECRETS
# substrings long enough to be meaningful on their own (e.g. a card's digits without spaces)
RAW_FRAGMENTS = ["Okonkwo", "Brightwater", "Solvang", "example-corp.test", "mailhost.test", "northwind.test",
                 "7911 123456", "555 0199", "4111 1111", "5500 0000", "9f8e7d6c5b4a", "QWERTYUIOP"]

POLICY_TMPL = """
policy: {{id: audit-test}}
detectors:
  - name: pii
    type: keywords
    stages: [input, output]
    options:
      terms: {{PERSON: {names}}}
      patterns:
        EMAIL_ADDRESS: ['[a-z.]+@[a-z\\-]+\\.test']
        PHONE_NUMBER: ['\\+\\d{{1,2}} \\d{{3,4}} \\d{{3}} ?\\d{{3,4}}']
        CREDIT_CARD: ['\\d{{4}} \\d{{4}} \\d{{4}} \\d{{4}}']
        SECRET: ['sk-live-[0-9a-f]+', 'AKIA[A-Z]{{16}}']
    rules:
      PERSON: {{action: pseudonymise}}
      EMAIL_ADDRESS: {{action: {email_action}}}
      PHONE_NUMBER: {{action: flag}}
      CREDIT_CARD: {{action: mask}}
      SECRET: {{action: block}}
    output_rules:
      "*": {{action: flag}}
      CREDIT_CARD: {{action: redact}}
      SECRET: {{action: block}}
audit: {{text: {text}, checkpoint_every: {every}, queue_size: {queue}, on_full: {on_full}}}
"""


def make_policy(text: str = "redacted", every: int = 50, queue: int = 10_000, on_full: str = "wait",
                email_action: str = "redact") -> Policy:
    return parse_policy(POLICY_TMPL.format(names="[" + ", ".join(NAMES) + "]", text=text, every=every, queue=queue,
                                           on_full=on_full, email_action=email_action), registry=builtin_registry())


def make_pipeline(policy: Policy) -> Pipeline:
    from guardrails.runtime import build_detectors
    from guardrails.detector import BuildContext, Resources

    dets = build_detectors(policy, builtin_registry(), BuildContext(settings=None, resources=Resources(),  # type: ignore[arg-type]
                                                                   policy_dir=None))
    return Pipeline(policy, dets, hash_key=b"k" * 32)


@dataclass
class Traffic:
    pipeline: Pipeline
    rng: random.Random

    def prompt(self) -> str:
        r = self.rng
        parts = [f"Hi, I am {r.choice(NAMES)}, mail {r.choice(EMAILS)}",
                 f"call me on {r.choice(PHONES)}", f"my card is {r.choice(CARDS)}", "thanks!"]
        if r.random() < 0.15:
            parts.insert(2, f"key {r.choice(SECRETS)}")
        r.shuffle(parts)
        return "; ".join(parts)

    def answer(self, passed: str) -> str:
        r = self.rng
        # the model echoes the (pseudonymised) prompt and leaks some raw values of its own
        return f"Sure {passed[:40]} -- also try {r.choice(EMAILS)} or {r.choice(PHONES)}, card {r.choice(CARDS)}" + (
            f" and {r.choice(SECRETS)}" if r.random() < 0.1 else "")

    async def call(self, i: int, principal: Principal | None = None, model: str = "gpt-test") -> CallRecord:
        ctx = CallContext(principal=principal or Principal(f"key-{i % 7}", "user" if i % 3 else "admin"), model=model,
                          route="/v1/chat/completions")
        t0 = time.time()
        dec_in = await self.pipeline.check_input([self.prompt(), "second message from " + self.rng.choice(NAMES)], ctx)
        dec_out: Decision | None = None
        final = dec_in.action
        status = 200
        if dec_in.blocked:
            status = 400
        else:
            dec_out = await self.pipeline.check_output(self.answer(dec_in.texts[0]), ctx)
            final = max(dec_in.action, dec_out.action)
            if dec_out.blocked:
                status = 400
            else:
                restored = self.pipeline.restore(dec_out.text, ctx)  # what the caller sees: must never be audited
                assert isinstance(restored, str)
        return CallRecord(request_id=ctx.request_id, principal=ctx.principal, route=ctx.route or "", model=model,
                          upstream="echo", input=dec_in, output=dec_out, started_at=t0, upstream_ms=1.5,
                          total_ms=3.25, status=status, error="Blocked" if status == 400 else None,
                          prompt_tokens=17, completion_tokens=None if dec_out is None else 23, final_action=Action(final))


def body(i: int, ts: float = 1_790_000_000.0) -> dict[str, object]:
    return {"v": 1, "id": f"req-{i}", "time": iso_time(ts + i), "ts": ts + i, "principal": {"id": f"p{i % 3}", "role": "user"},
            "route": "/v1/chat/completions", "upstream": "echo", "model": "m", "policy": {"id": "t", "version": "x"},
            "final": "redact" if i % 2 else "allow", "actions": {"input": "allow", "output": None}, "categories": [],
            "findings": [], "route_rule": None, "detector_errors": [], "status": 200, "error": None, "streamed": False,
            "latency_ms": {"total": 1.0, "upstream": 0.5, "checks": []}, "tokens": {"prompt": 1, "completion": 2},
            "text": {"mode": "none", "input": None, "output": None}}


def traffic(policy: Policy, seed: int = 7) -> Traffic:
    return Traffic(make_pipeline(policy), random.Random(seed))


ALL_SINKS = pytest.mark.parametrize(
    "store_url", ["sqlite", "jsonl", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
SQL_SINKS = pytest.mark.parametrize(
    "store_url", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)

__all__ = ["ALL_SINKS", "SQL_SINKS", "body", "Blocked", "RAW_FRAGMENTS", "RAW_VALUES", "Traffic", "make_policy", "traffic"]
