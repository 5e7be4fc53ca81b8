"""Deny-list and regex detector: words, phrases or patterns per category. Cheap, CPU-only, exact.

Useful for company-specific terms (project code names, customer lists) and as a building block in
tests. Matching is case-insensitive on word boundaries for terms; patterns are Python regexes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field, field_validator

from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.types import CallContext, Finding, Stage


class KeywordOptions(Options):
    terms: dict[str, list[str]] = Field(default_factory=dict, description="category -> words or phrases")
    patterns: dict[str, list[str]] = Field(default_factory=dict, description="category -> regexes")
    score: float = Field(1.0, ge=0.0, le=1.0)

    @field_validator("patterns")
    @classmethod
    def _compile(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        for cat, pats in v.items():
            for p in pats:
                try:
                    re.compile(p)
                except re.error as exc:
                    raise ValueError(f"bad regex for {cat}: {p!r}: {exc}") from None
        return v


class KeywordDetector:
    def __init__(self, name: str, options: KeywordOptions):
        self.name = name
        self._score = options.score
        self._rx: list[tuple[str, re.Pattern[str]]] = []
        for cat, terms in options.terms.items():
            if terms:
                alt = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
                self._rx.append((cat, re.compile(rf"(?<!\w)(?:{alt})(?!\w)", re.IGNORECASE)))
        for cat, pats in options.patterns.items():
            for p in pats:
                self._rx.append((cat, re.compile(p)))

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        out: list[list[Finding]] = []
        for text in texts:
            found = [Finding(self.name, cat, self._score, (m.start(), m.end()), {"rule": cat})
                     for cat, rx in self._rx for m in rx.finditer(text) if m.end() > m.start()]
            out.append(found)
        return out


def _build(spec, options: KeywordOptions, build: BuildContext) -> KeywordDetector:  # noqa: ANN001
    return KeywordDetector(spec.name, options)


TYPE = DetectorType("keywords", KeywordOptions, _build, description="deny lists and regex patterns per category")
