"""The demographic bias detector (type `bias`); the code lives in detectors/bias/scorer.py for now."""

from __future__ import annotations

from detectors.bias.scorer import (
    ATTRIBUTES,
    CATEGORIES,
    CATEGORY_PREFIX,
    MASK,
    PROXY_MAX,
    TYPE,
    BiasDetector,
    BiasOptions,
    BiasScorer,
    Classifier,
    Group,
    Lexicon,
    Mention,
    SentenceScore,
    Term,
    ToxicityFn,
    Variant,
    counterfactual_report,
    counterfactual_variants,
    load_scorer,
    probe,
    swap_term,
)

__all__ = [
    "ATTRIBUTES", "CATEGORIES", "CATEGORY_PREFIX", "MASK", "PROXY_MAX", "TYPE", "BiasDetector", "BiasOptions",
    "BiasScorer", "Classifier", "Group", "Lexicon", "Mention", "SentenceScore", "Term", "ToxicityFn", "Variant",
    "counterfactual_report", "counterfactual_variants", "load_scorer", "probe", "swap_term",
]
