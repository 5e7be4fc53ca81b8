"""Shared spaCy pipeline: conditional components (run only for the texts that need them)."""

from __future__ import annotations

import asyncio

import pytest

from detectors.nlp import DEFAULT_MODEL, get_nlp, parse
from guardrails.detector import Resources
from guardrails.types import CallContext


def _parse(shared, stage, texts):  # noqa: ANN001, ANN202
    return asyncio.run(parse(CallContext(), shared, texts, stage))


def test_conditional_components_run_only_for_texts_that_satisfy_the_predicate():
    resources = Resources()
    shared = get_nlp(resources, DEFAULT_MODEL, components=("ner",), stages=("input", "output"))
    seen: list[bool] = []

    def wants(doc) -> bool:  # noqa: ANN001
        seen.append(doc.has_annotation("DEP") or doc.has_annotation("ENT_IOB"))  # only tokenised so far
        return any(t.lower_ == "group" for t in doc)

    get_nlp(resources, DEFAULT_MODEL, components=("parser",), stages=("output",), when=wants)
    plain, grouped = "Sarah Connor lives in Paris. She likes it.", "The group from Paris met Sarah Connor."
    d_plain, d_grouped = _parse(shared, "output", [plain, grouped])
    assert [d_plain.text, d_grouped.text] == [plain, grouped]  # order kept across the two batches
    assert d_plain.ents and d_grouped.ents  # the unconditional NER ran for both
    assert not d_plain.has_annotation("DEP")
    assert d_grouped.has_annotation("DEP")
    assert seen == [False, False]  # the predicate saw bare tokens
    (d_in,) = _parse(shared, "input", [grouped])  # the condition belongs to the output stage only
    assert d_in.ents and not d_in.has_annotation("DEP")


def test_needed_components_per_stage_and_doc():
    resources = Resources()
    shared = get_nlp(resources, DEFAULT_MODEL, components=("ner",), stages=("input", "output"))
    get_nlp(resources, DEFAULT_MODEL, components=("parser",), stages=("output",), when=lambda d: len(d) > 3)
    nlp = shared.nlp
    short, long = nlp.make_doc("Hi there."), nlp.make_doc("A much longer sentence here.")
    assert "parser" not in shared.needed("output", short)
    assert "parser" in shared.needed("output", long)
    assert "parser" in shared.needed("output")  # no Doc: conservative
    assert "parser" not in shared.needed("input", long)
    assert {"ner", "parser"} <= shared.needed(None)  # outside any stage: everything declared
    assert "parser" in shared.required


def test_conditional_only_stage_runs_nothing_but_the_tokenizer_when_the_predicate_fails():
    resources = Resources()
    shared = get_nlp(resources, DEFAULT_MODEL, components=("tagger", "parser"), stages=("output",),
                     when=lambda d: False)
    (doc,) = _parse(shared, "output", ["Sarah Connor lives in Paris."])
    assert len(doc) == 6
    assert not doc.has_annotation("DEP") and not doc.has_annotation("TAG") and not doc.ents


@pytest.mark.slow
def test_bias_gate_is_exact_no_candidate_means_no_mention():
    """The bias detector's gate may only skip texts where mentions() would find nothing."""
    from detectors.bias import load_scorer
    from detectors.bias import BiasOptions

    scorer = load_scorer(BiasOptions(toxicity="off"))
    shared = get_nlp(Resources(), DEFAULT_MODEL, components=("tagger", "parser", "lemmatizer"))
    texts = [
        "Fuel costs rose by eight percent over the quarter.",
        "The new warehouse opened three weeks late.",
        "Women are bad drivers.",
        "He said the report was late.",
        "Ask her-self? No: ask HIM.",
        "Immigrants built this city.",
        "The old man and the sea.",
        "Our team in the north met the carriers.",
        "I'm a Deaf grandmother.",
        "They hired two new nurses.",
    ]
    docs = shared.parse_sync(texts)
    gated = [scorer.may_mention(shared.nlp.make_doc(t)) for t in texts]
    found = [bool(scorer.mentions(d)) for d in docs]
    assert all(g for g, f in zip(gated, found) if f), list(zip(texts, gated, found))
    assert gated[:2] == [False, False]  # plain business prose skips the parser
    assert found[2] and found[3] and found[4]
    # the detector's own gate (min_score 0.3) is tighter: proxies alone (he, her, Jamal, Syria) can never reach
    # 0.3, so only explicit group terms run the parser, and every text with a finding passes the gate
    may_find = [scorer.may_find(shared.nlp.make_doc(t)) for t in texts]
    reported = [bool(r) for r in scorer.analyse(docs)]
    assert all(g for g, r in zip(may_find, reported) if r)
    assert may_find[3] is False and may_find[4] is False and gated[3] and gated[4]
    assert scorer.analyse([shared.nlp.make_doc(t) for t in texts[3:5]]) == [[], []]  # unparsed, proxy-only: skipped


@pytest.mark.slow
def test_numpy_gemm_gives_the_same_annotations_as_blis():
    from detectors.nlp import load_pipeline

    fast, ref = load_pipeline(DEFAULT_MODEL, numpy_gemm=True), load_pipeline(DEFAULT_MODEL, numpy_gemm=False)
    ops = {type(node.ops).__name__ + str(getattr(node.ops, "use_blis", None))
           for _n, c in fast.nlp.pipeline if hasattr(getattr(c, "model", None), "walk") for node in c.model.walk()}
    assert ops == {"NumpyOpsFalse"}
    assert all(getattr(node.ops, "use_blis", True) for _n, c in ref.nlp.pipeline
               if hasattr(getattr(c, "model", None), "walk") for node in c.model.walk())
    texts = [
        "Maria Gonzalez from Berlin called +1 555 0100 on Monday about the contract with Acme Corp.",
        "Dr. John O'Neil moved to 221B Baker Street, London, in March 2021.",
        "the muslims in paris said that immigrants always work hard, according to a BBC report.",
        "Fuel costs rose by about eight percent, and two regional carriers renegotiated their rates.",
    ]
    for a, b in zip(fast.nlp.pipe(texts), ref.nlp.pipe(texts)):
        assert [(e.start_char, e.end_char, e.label_) for e in a.ents] == [(e.start_char, e.end_char, e.label_) for e in b.ents]
        assert [(t.tag_, t.dep_, t.head.i, t.lemma_) for t in a] == [(t.tag_, t.dep_, t.head.i, t.lemma_) for t in b]


@pytest.mark.slow
@pytest.mark.parametrize(("threads", "use_blis"), [(1, False), (2, True)])
def test_numpy_gemm_is_chosen_only_when_blas_runs_one_thread(threads, use_blis):  # noqa: ANN001
    from threadpoolctl import threadpool_limits

    from detectors.nlp import blas_single_threaded, load_pipeline

    with threadpool_limits(limits=threads, user_api="blas"):
        single = blas_single_threaded()
        shared = load_pipeline(DEFAULT_MODEL)
    if threads == 1:
        assert single
    elif single:  # a one-core machine: OpenBLAS will not run two threads, so numpy stays the choice
        use_blis = False
    flags = {getattr(node.ops, "use_blis", None) for _n, c in shared.nlp.pipeline
             if hasattr(getattr(c, "model", None), "walk") for node in c.model.walk()}
    assert flags == {use_blis}


# ------------------------------------------------------------------ the embedded (fine-tuned) NER overlay


@pytest.mark.slow
def test_embedded_default_is_the_stock_pipeline_with_the_trained_ner_only():
    from detectors.nlp import EMBEDDED_NER, STOCK_MODEL, load_pipeline

    after, before = load_pipeline(DEFAULT_MODEL, numpy_gemm=False), load_pipeline("sm", numpy_gemm=False)
    assert DEFAULT_MODEL == "embedded" and (EMBEDDED_NER / "MODEL_CARD.md").is_file()
    assert after.base == before.base == STOCK_MODEL
    assert after.nlp.pipe_names == before.nlp.pipe_names
    for name in ("tok2vec", "tagger", "parser", "lemmatizer"):  # what bias reads is untouched
        assert after.nlp.get_pipe(name).to_bytes(exclude=["vocab"]) == before.nlp.get_pipe(name).to_bytes(
            exclude=["vocab"]), name
    assert after.nlp.get_pipe("ner").to_bytes(exclude=["vocab"]) != before.nlp.get_pipe("ner").to_bytes(
        exclude=["vocab"])
    assert after.nlp.get_pipe("ner").labels == before.nlp.get_pipe("ner").labels
    text = "lol @jess ur coming 2 the bbq w/ kevin nguyen in leeds on sat??"
    a, b = after.nlp(text), before.nlp(text)
    assert [(t.tag_, t.dep_, t.lemma_) for t in a] == [(t.tag_, t.dep_, t.lemma_) for t in b]
    assert any(e.label_ == "PERSON" and "nguyen" in e.text for e in a.ents)  # lower-cased tweet name


def test_stock_requests_without_ner_join_the_runtime_pipeline():
    from detectors.nlp import STOCK_MODEL

    resources = Resources()
    pii = get_nlp(resources, DEFAULT_MODEL, components=("ner",), stages=("input", "output"))
    bias = get_nlp(resources, STOCK_MODEL, components=("tagger", "parser", "lemmatizer"), stages=("output",))
    assert bias is pii  # one parse per text on the output stage: PII and bias share the Doc
    assert "parser" not in pii.needed("input") and "parser" in pii.needed("output")
    stock_ner = get_nlp(resources, "sm", components=("ner",))
    assert stock_ner is not pii and stock_ner.base == pii.base

    first_stock = Resources()  # a runtime whose PII chose the stock NER: bias joins that one
    chosen = get_nlp(first_stock, "sm", components=("ner",))
    assert get_nlp(first_stock, STOCK_MODEL, components=("tagger",)) is chosen
    assert set(first_stock.items()) == {"spacy:sm"}


def test_overlay_resolution_and_errors(tmp_path, monkeypatch):
    import detectors.nlp as nlp_mod
    from guardrails.errors import DetectorError

    assert nlp_mod.ner_overlay(DEFAULT_MODEL) == nlp_mod.EMBEDDED_NER
    assert nlp_mod.ner_overlay("sm") is None and nlp_mod.base_model("sm") == nlp_mod.STOCK_MODEL
    other = tmp_path / "other"
    (other / "ner").mkdir(parents=True)
    (other / "meta.json").write_text('{"kind": "something-else"}', encoding="utf-8")
    assert nlp_mod.ner_overlay(str(other)) is None  # a folder that is not an overlay is a spaCy path
    with pytest.raises(DetectorError, match="not installed"):
        nlp_mod.resolve_model_name("no_such_pipeline_xyz")
    monkeypatch.setattr(nlp_mod, "EMBEDDED_NER", tmp_path / "missing")
    with pytest.raises(DetectorError, match="embedded NER is missing"):
        nlp_mod.load_pipeline(DEFAULT_MODEL)
