"""Toxicity detector on the lexical model (`model: lexical`, BiLSTM + profanity ONNX, the earlier default):
per-sentence spans, windows, ensembles, policy wiring. The trained default: test_toxicity_minilm.py."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.toxicity import (
    DETOXIFY_LABELS,
    ToxicityDetector,
    ToxicityOptions,
    load_lexical,
    load_scorer,
    sentence_spans,
)
from guardrails.detector import Resources
from guardrails.errors import ConfigError, PolicyError
from guardrails.types import CallContext

pytestmark = pytest.mark.slow  # loads the embedded models (about a second)


@pytest.fixture(scope="module")
def resources():
    return Resources()


@pytest.fixture(scope="module")
def scorer(resources):
    return load_lexical(resources)


def test_sentence_spans():
    text = "Hello there. You idiot!  Fine?\nnext line"
    spans = sentence_spans(text)
    assert [text[s:e] for s, e in spans] == ["Hello there.", "You idiot!", "Fine?", "next line"]
    assert sentence_spans("") == [] and sentence_spans("   \n ") == []
    assert sentence_spans("Ça va. Très bien") == [(0, 6), (7, 16)]


def test_embedded_scores_toxic_above_benign(scorer):
    rows = scorer.score(["You are a stupid worthless idiot.", "Thanks, have a lovely day!", ""])
    assert set(DETOXIFY_LABELS) - {"sexual_explicit"} <= set(rows[0])
    assert rows[0]["toxicity"] > 0.9 and rows[0]["insult"] > 0.5
    assert rows[1]["toxicity"] < 0.2
    assert all(0.0 <= v <= 1.0 for r in rows for v in r.values())


def test_batch_size_does_not_change_scores(scorer):
    texts = [f"text {i}: you are {'an idiot' if i % 3 == 0 else 'kind'} and the sky is blue" for i in range(37)]
    together = scorer.bilstm.predict(texts)
    alone = np.stack([scorer.bilstm.predict([t])[0] for t in texts])
    assert np.abs(together - alone).max() < 1e-5


def test_scorer_is_shared_per_resources(resources, scorer):
    assert load_lexical(resources) is scorer
    assert load_scorer(resources, "lexical") is scorer
    assert load_lexical(Resources()) is not scorer
    assert load_scorer(resources, "embedded") is not scorer  # the trained default is another model


async def test_ascore_matches_score(scorer):
    texts = ["go to hell you moron", "the weather is fine"]
    assert await scorer.ascore(texts) == scorer.score(texts)


async def test_findings_point_at_the_offending_sentence(scorer):
    det = ToxicityDetector("toxicity", scorer, ToxicityOptions())
    text = "The meeting is at noon. You are a fucking idiot! See you there."
    [findings] = await det.detect([text], CallContext())
    tox = [f for f in findings if f.category == "toxicity"]
    assert tox and all(text[f.span[0]:f.span[1]] == "You are a fucking idiot!" for f in tox)
    assert max(f.score for f in tox) > 0.8
    assert all(f.evidence == {"sentence": 1, "label": f.category} for f in findings)
    assert all(text not in str(f.evidence) for f in findings)  # no raw text in evidence


async def test_batch_of_texts_and_empty_inputs(scorer):
    det = ToxicityDetector("tox", scorer, ToxicityOptions(min_score=0.5))
    out = await det.detect(["", "Lovely weather today.", "Shut up, you dumb bitch."], CallContext())
    assert out[0] == [] and out[1] == []
    assert {f.category for f in out[2]} >= {"toxicity", "insult"}


async def test_whole_text_mode_and_label_selection(scorer):
    det = ToxicityDetector("tox", scorer, ToxicityOptions(per_sentence=False, labels=["insult"], min_score=0.0))
    text = "Fine. You idiot."
    [findings] = await det.detect([text], CallContext())
    assert [f.category for f in findings] == ["insult"]
    assert findings[0].span == (0, len(text))
    with pytest.raises(PolicyError, match="sexual_explicit"):
        ToxicityDetector("tox", scorer, ToxicityOptions(labels=["sexual_explicit"]))


def test_ensemble_modes_are_consistent(resources):
    texts = ["fuck yeah, this is awesome", "you people are disgusting animals"]
    mean = load_lexical(resources, ensemble="mean").score(texts)
    mx = load_lexical(resources, ensemble="max").score(texts)
    bil = load_lexical(resources, ensemble="bilstm").score(texts)
    for m, x, b in zip(mean, mx, bil):
        p = m["profanity"]
        assert m["toxicity"] == pytest.approx((b["toxicity"] + p) / 2, abs=1e-6)
        assert x["toxicity"] == pytest.approx(max(b["toxicity"], p), abs=1e-6)
        assert m["threat"] == pytest.approx(b["threat"], abs=1e-6)


def test_profanity_onnx_equals_scikit_learn():
    from profanity_check import profanity_check as pc

    from detectors.toxicity import models_root
    from guardrails.inference.classifier import OnnxTextClassifier

    texts = ["you are a fucking idiot", "have a nice day", "Ça va très bien, connard", "Shit happens", "",
             "résumé über naïve", "I HATE YOU"]
    clf = OnnxTextClassifier(models_root() / "profanity-check", device="cpu")
    assert np.abs(clf.predict(texts)[:, 0] - pc.predict_prob(texts)).max() < 1e-5


def test_long_sentence_is_windowed_not_truncated(scorer):
    benign = "the weather is nice and the garden is green " * 40  # ~360 words, past the 100-word window
    tail = benign + "you stupid worthless idiot"
    bil = scorer.bilstm
    assert len(bil._tok.windows([tail])) > 1
    assert scorer.score([tail])[0]["insult"] > scorer.score([benign])[0]["insult"] + 0.3


def test_unknown_model_is_a_clear_error(resources, tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_scorer(resources, str(tmp_path / "missing"))


def test_detector_info_reports_device(scorer):
    det = ToxicityDetector("toxicity", scorer, ToxicityOptions())
    info = det.info()
    assert info["type"] == "toxicity" and info["device"] == "cpu"
    assert info["models"][0]["provider"] == "CPUExecutionProvider"


async def test_policy_blocks_toxic_output_and_redacts_a_sentence():
    from detectors.registry import builtin_registry
    from guardrails.pipeline import Pipeline
    from guardrails.policy import parse_policy
    from guardrails.runtime import build_detectors
    from guardrails.detector import BuildContext
    from guardrails.settings import Settings
    from guardrails.types import Action

    reg = builtin_registry()
    policy = parse_policy("""
policy: {id: tox, version: "1"}
detectors:
  - name: toxicity
    type: toxicity
    stages: [input, output]
    options: {max_wait_ms: 1, model: lexical}
    rules:
      "*": {action: block, threshold: 0.8}
    input_rules:
      "*": {action: redact, threshold: 0.8}
""", registry=reg)
    build = BuildContext(settings=Settings(), resources=Resources())
    dets = build_detectors(policy, reg, build)
    assert build.resources.items()  # the scorer lives in the runtime's resources
    pipe = Pipeline(policy, dets, hash_key=b"k" * 32)
    text = "The report is attached. You are a fucking idiot. Regards."
    d = await pipe.check("output", [text], CallContext())
    assert d.action is Action.BLOCK
    d_in = await pipe.check("input", [text], CallContext())
    assert d_in.action is Action.REDACT
    assert "The report is attached." in d_in.texts[0] and "idiot" not in d_in.texts[0]
    assert d_in.texts[0].endswith("Regards.")
    ok = await pipe.check("output", ["The report is attached. Regards."], CallContext())
    assert ok.action is Action.ALLOW
