"""Test kit for the decorator, the OpenAI wrapper and the parity test: a policy built from keyword and
fake detectors (fast, no model), an in-memory audit recorder, and a Guard factory."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from detectors.registry import builtin_registry
from guardrails.inprocess import Guard
from guardrails.detector import BuildContext, DetectorType, NoOptions, Registry
from guardrails.policy import Policy, parse_policy
from guardrails.runtime import Runtime, build_runtime
from guardrails.settings import Settings
from guardrails.types import CallContext, CallRecord, Finding, Stage

# A public-domain opening, standing in for a protected passage in the copyright corpus.
PASSAGE = "It was the best of times, it was the worst of times, it was the age of wisdom"

POLICY = r"""
policy: {id: decorator-test, version: "1"}
detectors:
  - name: pii
    type: keywords
    stages: [input, output]
    options:
      patterns:
        EMAIL_ADDRESS: ['[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}']
        PERSON: ['\b(?:Ada|Alan|Grace|Linus|Person)[ -][A-Z][a-z]+(?:-\d+)?\b']
        US_SSN: ['\b\d{3}-\d{2}-\d{4}\b']
        PHONE_NUMBER: ['\+\d{2} \d{3} \d{3} \d{4}']
    rules:
      "*": {action: redact}
      EMAIL_ADDRESS: {action: pseudonymise}
      PERSON: {action: pseudonymise}
      PHONE_NUMBER: {action: pseudonymise}
    output_rules:
      "*": {action: flag}
      US_SSN: {action: redact}
  - name: secrets
    type: keywords
    stages: [input, output]
    options:
      patterns:
        api_key: ['\bsk-[A-Za-z0-9]{20,}\b']
    rules:
      "*": {action: block, message: "Secrets may not be sent to a model."}
  - name: toxicity
    type: keywords
    stages: [output]
    options:
      terms:
        toxicity: [idiot, moron]
    rules:
      "*": {action: block}
  - name: copyright
    type: fake_copyright
    stages: [output]
    rules:
      "*": {action: block, threshold: 0.8}
access:
  anonymous_role: local
  roles:
    local: {restore: ["*"]}
    user: {restore: ["*"]}
    analyst: {restore: [EMAIL_ADDRESS]}
    limited: {models: ["small-*"], restore: []}
"""


class FakeCopyright:
    """Flags any text that quotes PASSAGE (case-insensitive), with a verified span and a source id."""

    def __init__(self, name: str):
        self.name = name

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        out: list[list[Finding]] = []
        key = PASSAGE.lower()
        for t in texts:
            i = t.lower().find(key)
            out.append([] if i < 0 else [Finding(self.name, "copyright", 0.95, (i, i + len(PASSAGE)),
                                                 {"source_id": "dickens-two-cities"})])
        return out


def _build_fake(spec: Any, options: NoOptions, build: BuildContext) -> FakeCopyright:
    return FakeCopyright(spec.name)


FAKE_COPYRIGHT = DetectorType("fake_copyright", NoOptions, _build_fake, categories=("copyright",),
                              stages=("output",))


def registry() -> Registry:
    reg = builtin_registry()
    if "fake_copyright" not in reg:
        reg.register(FAKE_COPYRIGHT)
    return reg


class MemoryRecorder:
    """An audit sink that keeps CallRecords in memory."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.closed = False

    async def record(self, record: CallRecord) -> None:
        self.records.append(record)

    async def aclose(self) -> None:
        self.closed = True


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "tw", hash_key="test-hash-key", audit_key="test-audit-key")


def policy(text: str = POLICY) -> Policy:
    return parse_policy(text, source="<decorator-test>", registry=registry())


def runtime(tmp_path: Path, text: str = POLICY, audit: Any = None) -> Runtime:
    return build_runtime(settings(tmp_path), policy=policy(text), registry=registry(),
                         audit=audit if audit is not None else False)


def make_guard(tmp_path: Path, text: str = POLICY, **options: Any) -> tuple[Guard, MemoryRecorder]:
    rec = MemoryRecorder()
    return Guard(runtime(tmp_path, text, audit=rec), owns_runtime=True, **options), rec
