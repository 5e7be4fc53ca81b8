"""No raw value of PII-laden traffic reaches any store or any export, whatever the policy's text mode."""

from __future__ import annotations

import glob
import json
from typing import Any

import psycopg
import pytest
from audit_helpers import ALL_SINKS, RAW_FRAGMENTS, RAW_VALUES, make_policy, traffic

from guardrails.audit import AuditLog, Filters, open_store
from guardrails.audit.export import export_chunks
from guardrails.audit.record import safe_text
from guardrails.audit.sql import _split_pg_url
from guardrails.types import Action, Finding, Judgement, Operator


def leaks(blob: str) -> list[str]:
    return [v for v in RAW_VALUES + RAW_FRAGMENTS if v in blob]


def dump_store(url: str) -> str:
    """Everything the store holds, read raw (files byte for byte; every PostgreSQL row)."""
    if url.startswith("postgresql"):
        conninfo, schema = _split_pg_url(url)
        with psycopg.connect(conninfo) as db:
            return "\n".join(str(row) for t in ("audit_records", "audit_marks", "audit_head")
                             for row in db.execute(f'SELECT * FROM "{schema}".{t}').fetchall())
    path = url.split(":///", 1)[1]
    return "\n".join(open(f, "rb").read().decode("utf-8", "replace") for f in glob.glob(path + "*"))


@ALL_SINKS
@pytest.mark.parametrize("mode", ["redacted", "hash", "none"])
async def test_no_raw_value_in_store_or_export(settings: Any, store_url: str, mode: str) -> None:
    policy = make_policy(text=mode, every=25)
    t = traffic(policy, seed={"redacted": 1, "hash": 2, "none": 3}[mode])
    store = open_store(settings, store_url, checkpoint_every=25)
    log = AuditLog(store, policy_id=policy.id, policy_version=policy.digest, text_mode=mode,  # type: ignore[arg-type]
                   hash_key=b"h" * 32)
    actions = set()
    for i in range(60):
        rec = await t.call(i)
        actions.add(rec.final_action)
        await log.record(rec)
    await log.aclose()
    assert {Action.REDACT, Action.BLOCK} <= actions  # the traffic exercised redaction and refusal
    blob = dump_store(store_url)
    assert len(blob) > 10_000
    assert leaks(blob) == []
    reader = open_store(settings, store_url)
    try:
        for fmt in ("jsonl", "csv", "parquet"):
            data = b"".join(export_chunks(reader, fmt, Filters()))
            text = data.decode("utf-8", "replace")
            if fmt == "parquet":
                import io

                import pyarrow.parquet as pq

                text = json.dumps(pq.read_table(io.BytesIO(data)).to_pylist(), default=str)
            assert leaks(text) == [], fmt
        if mode == "redacted":  # and the text kept is useful: placeholders where values were
            bodies = [r.parsed() for r in reader.records()]
            kept = json.dumps([b["text"] for b in bodies])
            assert "<EMAIL_ADDRESS>" in kept and "<PERSON" in kept and "<PHONE_NUMBER>" in kept
    finally:
        reader.close()


def _j(span: tuple[int, int], cat: str, action: Action, op: Operator | None = None) -> Judgement:
    return Judgement(Finding("d", cat, 0.9, span, {}, 0), action, op)


def test_safe_text_maps_unredacted_spans_through_placeholders() -> None:
    original = "I am Ann Lee, mail ann@x.test, phone 555-0100."
    # the pipeline pseudonymised the name and redacted the mail; the phone was only flagged
    passed = "I am <PERSON_1>, mail <EMAIL_ADDRESS>, phone 555-0100."
    js = [_j((5, 12), "PERSON", Action.REDACT, Operator.PSEUDONYMISE),
          _j((19, 29), "EMAIL_ADDRESS", Action.REDACT, Operator.REDACT),
          _j((37, 45), "PHONE_NUMBER", Action.FLAG)]
    assert original[37:45] == "555-0100"
    assert safe_text(passed, js) == "I am <PERSON_1>, mail <EMAIL_ADDRESS>, phone <PHONE_NUMBER>."


def test_safe_text_on_a_blocked_call_cuts_every_span() -> None:
    text = "key sk-123456 for bob@x.test"
    js = [_j((4, 13), "SECRET", Action.BLOCK), _j((18, 28), "EMAIL_ADDRESS", Action.REDACT, Operator.REDACT)]
    assert safe_text(text, js, blocked=True) == "key <SECRET> for <EMAIL_ADDRESS>"


def test_safe_text_replaces_masks_and_below_threshold_spans() -> None:
    passed = "card ***************1111 and maybe Bob"
    js = [_j((5, 24), "CREDIT_CARD", Action.REDACT, Operator.MASK), _j((35, 38), "PERSON", Action.ALLOW)]
    assert safe_text(passed, js) == "card <CREDIT_CARD> and maybe <PERSON>"


def test_safe_text_withholds_an_unapplied_whole_text_redaction() -> None:
    assert safe_text("all of it is secret", [Judgement(Finding("d", "X", 1.0, None, {}, 0), Action.REDACT)]) is None


def test_evidence_keeps_ids_and_numbers_only() -> None:
    from guardrails.audit.record import _safe_evidence

    ev = {"source_id": "book-17", "matched_span": [3, 9], "similarity": 0.93, "value": "ann@x.test",
          "rule": "has a space and @", "recognizer": "EmailRecognizer"}
    assert _safe_evidence(ev) == {"source_id": "book-17", "matched_span": [3, 9], "similarity": 0.93,
                                  "recognizer": "EmailRecognizer"}


@ALL_SINKS
@pytest.mark.parametrize("mode", ["redacted", "hash", "none"])
async def test_a_timed_out_check_leaves_no_raw_value_in_the_store(settings: Any, store_url: str, mode: str) -> None:
    """A PII check that times out (or crashes) finds nothing to cut: the stage's text must not be stored."""
    import asyncio

    from pydantic import BaseModel

    from detectors.registry import builtin_registry
    from guardrails.detector import BuildContext, DetectorType, Resources
    from guardrails.pipeline import Pipeline
    from guardrails.policy import parse_policy
    from guardrails.runtime import build_detectors
    from guardrails.types import CallContext, CallRecord, Principal

    class SlowOptions(BaseModel):
        crash: bool = False

    class Slow:
        def __init__(self, crash: bool) -> None:
            self.crash = crash

        async def detect(self, texts, ctx, stage="input"):  # noqa: ANN001, ANN202
            if self.crash:
                raise RuntimeError("boom")
            await asyncio.sleep(5)
            return [[] for _ in texts]

    reg = builtin_registry()
    reg.register(DetectorType("slow", SlowOptions, lambda spec, o, b: Slow(o.crash), categories=("PERSON",),
                              stages=("input", "output")))
    pol = parse_policy(f"""
policy: {{id: t}}
detectors:
  - {{name: pii, type: slow, stages: [input, output], timeout_ms: 50, on_error: block}}
  - {{name: crashy, type: slow, stages: [output], on_error: flag, options: {{crash: true}}}}
audit: {{text: {mode}}}
""", registry=reg)
    pipe = Pipeline(pol, build_detectors(pol, reg, BuildContext(settings=None, resources=Resources(),  # type: ignore[arg-type]
                                                                policy_dir=None)), hash_key=b"k" * 32)
    store = open_store(settings, store_url, checkpoint_every=5)
    log = AuditLog(store, policy_id=pol.id, policy_version=pol.digest, text_mode=mode, hash_key=b"h" * 32)  # type: ignore[arg-type]
    prompt = "; ".join(RAW_VALUES)
    ctx = CallContext(principal=Principal("k", "user"))
    dec_in = await pipe.check_input([prompt], ctx)
    assert dec_in.blocked and dec_in.errors == ("pii",)
    dec_out = await pipe.check_output("answer: " + prompt, CallContext())  # the output stage fails too
    assert dec_out.errors
    for i, (a, b) in enumerate(((dec_in, None), (dec_in, dec_out))):
        await log.record(CallRecord(request_id=f"r{i}", principal=ctx.principal, route="/v1/chat/completions",
                                    model="m", upstream="echo", input=a, output=b, started_at=1.0, status=400,
                                    final_action=Action.BLOCK))
    await log.aclose()
    blob = dump_store(store_url)
    assert "detector_timeout" in blob or "pii" in blob  # the record is there and says which check failed
    assert leaks(blob) == []
    reader = open_store(settings, store_url)
    try:
        exported = b"".join(export_chunks(reader, "jsonl", Filters())).decode()
    finally:
        reader.close()
    assert leaks(exported) == [] and exported.count('"id"') >= 2
