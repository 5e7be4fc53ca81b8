"""PII detector: Presidio's AnalyzerEngine on the runtime's shared spaCy pipeline (detectors/nlp.py).

* The spaCy pass runs once per text and call (``detectors.nlp.parse``: one ``nlp.pipe`` batch over all
  messages, off the event loop, memoised so other detectors share the Docs); only the components NER
  needs run. Presidio's recognisers then read those Docs through an NLP engine that wraps the shared
  pipeline and never loads or downloads anything itself.
* Entities: PERSON, EMAIL_ADDRESS, PHONE_NUMBER (international), CREDIT_CARD (Luhn), US_SSN, IBAN_CODE
  (checksum), IP_ADDRESS (v4 and v6), LOCATION, URL, DATE_TIME, US_BANK_NUMBER, CRYPTO, plus custom
  recognisers declared in the policy (regex with optional checksum, context words, deny lists).
* ``Finding.score`` is Presidio's score; thresholds and operators per entity come from the policy rules.
* Allow lists (exact strings, case-insensitive, or regexes matching the whole span) drop findings.
* Evidence holds the recogniser name only, never the matched value.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any

from guardrails.detector import BuildContext, DetectorType
from guardrails.types import CallContext, Finding, Stage

from detectors.nlp import SharedNLP, get_nlp, parse
from detectors.pii.analyzer import build_analyzer
from detectors.pii.options import BUILTIN_ENTITIES, PiiOptions
from detectors.pii.public import (
    LONE_NAME,
    PUBLIC_PLACE,
    context_places,
    load_places,
    lone_names,
    public_places,
    separated_numbers,
)
from detectors.pii.resolve import (
    NER_RECOGNIZER,
    complete_name_lists,
    concrete_date,
    merge_locations,
    phone_like,
    propagate_names,
    resolve_overlaps,
    to_original,
)
from detectors.pii.spans import join_date_times, tidy_persons
from guardrails.normalize import normalize

_SPACES = re.compile(r"\s+")


# ----------------------------------------------------------------------------------------- detector


class PiiDetector:
    """Reports PII spans; the pipeline applies the policy's operators."""

    def __init__(self, name: str, options: PiiOptions, shared: SharedNLP):
        self.name = name
        self.options = options
        self.shared = shared
        self.entities = options.wanted_entities()
        self._analyzer = build_analyzer(shared, options)
        self._engine = self._analyzer.nlp_engine
        self._allow = {_norm(v) for v in options.allow_list}
        self._allow_rx = [re.compile(p, re.IGNORECASE) for p in options.allow_patterns]
        self._places = load_places() if options.public_places != "redact" and "LOCATION" in self.entities else frozenset()
        self._wanted = set(self.entities)

    def info(self) -> dict[str, Any]:
        return {"model": self.shared.model_name, "components": sorted(self.shared.required),
                "entities": self.entities, "device": "cpu", "spacy_batches": self.shared.batch_stats()}

    async def aclose(self) -> None:
        self.shared.close()  # idempotent; a later parse starts a fresh worker

    def _allowed(self, value: str) -> bool:
        if _norm(value) in self._allow:
            return True
        return any(rx.fullmatch(value.strip()) for rx in self._allow_rx)

    def analyze_docs(self, texts: Sequence[str], docs: Sequence[Any]) -> list[list[Finding]]:
        """Synchronous analysis of already parsed texts (runs in a worker thread)."""
        out: list[list[Finding]] = []
        lang = self.options.language
        for text, doc in zip(texts, docs):
            if not text.strip():
                out.append([])
                continue
            artifacts = self._engine._doc_to_nlp_artifact(doc, lang)
            results = self._analyzer.analyze(text=text, language=lang, entities=self.entities,
                                             nlp_artifacts=artifacts, score_threshold=self.options.min_score)
            found = []
            for r in results:
                if r.end <= r.start or self._allowed(text[r.start:r.end]):
                    continue
                rec = (r.recognition_metadata or {}).get("recognizer_name", "")
                if rec == NER_RECOGNIZER and r.entity_type == "DATE_TIME" and not concrete_date(text[r.start:r.end]):
                    continue
                if r.entity_type == "PHONE_NUMBER" and not phone_like(text[r.start:r.end]):
                    continue
                found.append(Finding(self.name, r.entity_type, float(r.score), (int(r.start), int(r.end)),
                                     {"recognizer": rec}))
            found.extend(g for g in separated_numbers(text, self.name, self._wanted)  # new spans only
                         if not any(f.category == g.category and f.span == g.span for f in found))
            found = join_date_times(text, tidy_persons(text, found))
            found = merge_locations(text, complete_name_lists(text, resolve_overlaps(text, found)))
            found = public_places(text, found, self._places, self.options.public_places)
            if self.options.context_places and self._places:
                found = context_places(text, found, self.options.public_places)
            out.append(found)
        return lone_names(texts, propagate_names(texts, out, self.name), self.options.lone_names)

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        if not texts:
            return []
        if not self.options.normalize:
            docs = await parse(ctx, self.shared, texts, stage)
            return await asyncio.to_thread(self.analyze_docs, list(texts), docs)
        # drop_symbols: a word of thousands of emoji is quadratic in spaCy's tokenizer (issue 20)
        norms = [normalize(t, confusables=True, drop_symbols=True) for t in texts]
        seen = [n.text for n in norms]
        docs = await parse(ctx, self.shared, seen, stage)
        results = await asyncio.to_thread(self.analyze_docs, seen, docs)
        return [to_original(n, fl) for n, fl in zip(norms, results)]


def _norm(value: str) -> str:
    return _SPACES.sub(" ", value.strip()).casefold()


def _build(spec: Any, options: PiiOptions, build: BuildContext) -> PiiDetector:
    shared = get_nlp(build.resources, options.model, components=("ner",), stages=spec.stages)
    return PiiDetector(spec.name, options, shared)


TYPE = DetectorType(
    "pii",
    PiiOptions,
    _build,
    categories=(*BUILTIN_ENTITIES, PUBLIC_PLACE, LONE_NAME),
    description="PII (Presidio on the shared spaCy pipeline): names, contact data, cards, IBANs, ids, custom",
)
