"""Copyright detector: normalisation and offsets, datasketch-compatible hashing, span merging,
search behaviour, allow/cite lists, empty corpus, and the pipeline end to end."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash, MinHashLSH
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.copyright import CITE_CATEGORY, CopyrightOptions, citation_block
from detectors.copyright.index import CorpusIndex
from detectors.copyright.schema import Document
from detectors.copyright.text import (
    MinHasher,
    covered_words,
    normalise,
    runs,
    shingle_hashes,
    tokenize,
    word_hashes,
)
from guardrails.detector import BuildContext
from guardrails.policy import parse_policy
from guardrails.runtime import build_runtime
from guardrails.settings import Settings
from guardrails.types import Action, CallContext

_RNG = random.Random(5)
_VOCAB = [f"w{i}" for i in range(3000)]


def prose(n: int, rng: random.Random = _RNG) -> str:
    return " ".join(rng.choice(_VOCAB) for _ in range(n))


SOURCE_A = ("It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
            "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of "
            "Light, it was the season of Darkness, it was the spring of hope, it was the winter of despair, we had "
            "everything before us, we had nothing before us, we were all going direct to Heaven, we were all "
            "going direct the other way.")


@pytest.fixture(scope="module")
def corpus() -> CorpusIndex:
    rng = random.Random(11)
    idx = CorpusIndex()
    idx.add([Document("tale", SOURCE_A, "A Tale of Two Cities", "public-domain")]
            + [Document(f"doc{i}", prose(400, rng), f"Doc {i}") for i in range(20)])
    idx.build_lsh()
    return idx


# ----------------------------------------------------------------------------------- normalisation


def test_normalise_folds_case_punctuation_whitespace_and_compatibility_forms() -> None:
    assert normalise("Marley was DEAD:   to begin\twith!!") == "marley was dead to begin with"
    assert normalise("“Ｆｕｌｌ-width” ﬁne STRASSE Straße") == "full width fine strasse strasse"
    assert normalise("café") == normalise("cafe\u0301") == "café"  # composed and decomposed agree
    assert normalise("snake_case ... --- ") == "snake case"
    assert normalise("") == "" and normalise("?!") == ""


def test_tokens_map_back_to_original_offsets() -> None:
    text = "  Ｈｅｌｌｏ, WORLD —  ﬁne\u00a0day "
    toks = tokenize(text)
    assert toks.words == ["hello", "world", "fine", "day"]
    assert [text[s:e] for s, e in zip(toks.starts, toks.ends)] == ["Ｈｅｌｌｏ", "WORLD", "ﬁne", "day"]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("aZ9 é\u0301ßİﬁ①_-–’'.,\n日Ｆ½\u00a0\U0001F600\u200d")), max_size=60))
def test_vectorised_tokeniser_equals_the_regex_reference(text: str) -> None:
    import unicodedata

    import regex

    ref = [(m.start(), m.end(), "".join(regex.findall(r"[\p{L}\p{N}\p{M}]+",
                                                     unicodedata.normalize("NFKC", m.group()).casefold())))
           for m in regex.finditer(r"[\p{L}\p{N}\p{M}]+", text)]
    ref = [r for r in ref if r[2]]
    toks = tokenize(text)
    assert list(zip(toks.starts.tolist(), toks.ends.tolist(), toks.words)) == ref


def test_word_hashes_are_stable_and_length_independent() -> None:
    a = word_hashes(["alpha", "be", "alpha"])
    b = word_hashes(["alpha"])
    c = word_hashes(["x" * 200, "alpha"])  # a long word in the batch changes nothing for the others
    assert a[0] == a[2] == b[0] == c[1]
    assert a[0] != a[1]
    assert word_hashes(["x" * 200])[0] != word_hashes(["x" * 201])[0]


def test_vectorised_minhash_equals_datasketch() -> None:
    sh = shingle_hashes(word_hashes(tokenize(SOURCE_A).words), 3)
    mh = MinHasher(num_perm=16, seed=1)
    ref = MinHash(num_perm=16, seed=1, scheme="affine32", hashfunc=lambda x: x)
    ref.update_batch([int(x) for x in sh])
    assert np.array_equal(ref.hashvalues, mh.signature(sh))
    starts, sigs = mh.window_signatures(sh, 8, 4)
    for s, sig in zip(starts, sigs):
        assert np.array_equal(sig, mh.signature(sh[s:s + 8]))
    assert starts[-1] + 8 >= len(sh) - 4  # the tail is covered


def test_bulk_lsh_insert_matches_datasketch_insert(corpus: CorpusIndex) -> None:
    p = corpus.params
    ref = MinHashLSH(num_perm=p.num_perm, params=(p.bands, p.rows))
    a = corpus._a
    for key, sig in zip(a.win_key[:50].tolist(), a.sigs[:50]):
        ref.insert(key, corpus.hasher.lean(sig))
    ours = corpus.build_lsh()
    for key, sig in zip(a.win_key[:50].tolist(), a.sigs[:50]):
        assert key in ours.query(corpus.hasher.lean(sig))
        assert sorted(ref.keys.get(key)) == sorted(ours.keys.get(key))


# ----------------------------------------------------------------------------------- span merging


def test_covered_words_and_runs_bridge_small_gaps_only() -> None:
    matched = np.zeros(30, dtype=bool)
    matched[[0, 1, 2, 10, 11, 25]] = True
    cov = covered_words(matched, 3, 32)
    assert cov[:5].all() and not cov[5] and cov[10:14].all() and cov[25:28].all() and not cov[28]
    assert runs(cov, max_gap=3) == [(0, 5), (10, 14), (25, 28)]
    assert runs(cov, max_gap=5) == [(0, 14), (25, 28)]
    assert runs(np.zeros(4, dtype=bool), 3) == []


def test_adjacent_hits_merge_into_one_span_with_source_offsets(corpus: CorpusIndex) -> None:
    text = "As the novel says: " + SOURCE_A.upper().replace(",", "") + " That is all."
    (m,) = corpus.search(text, min_words=10)
    assert m.source_id == "tale" and m.title == "A Tale of Two Cities"
    assert text[m.span[0]:m.span[1]].startswith("IT WAS THE BEST") and text[m.span[0]:m.span[1]].endswith("OTHER WAY")
    assert m.source_span == (0, len(SOURCE_A) - 1)
    assert m.similarity == 1.0 and m.words == m.matched_words == len(tokenize(SOURCE_A))


def test_near_verbatim_copy_is_found_with_lower_similarity(corpus: CorpusIndex) -> None:
    words = SOURCE_A.split()
    del words[7], words[20], words[33]  # three drops
    words[40], words[41] = words[41], words[40]  # one swap
    (m,) = corpus.search(" ".join(words), min_words=10)
    assert m.source_id == "tale" and 0.8 <= m.similarity < 1.0


def test_two_separate_copies_give_two_spans(corpus: CorpusIndex) -> None:
    doc3 = prose(400, random.Random(11))  # same rng sequence: doc0 of the corpus
    rng = random.Random(11)
    docs = [prose(400, rng) for _ in range(3)]
    assert docs[0] == doc3
    part1 = " ".join(docs[1].split()[100:140])
    part2 = " ".join(docs[2].split()[200:240])
    text = f"{prose(30)}. {part1}. {prose(40)}. {part2}. {prose(10)}"
    ms = corpus.search(text, min_words=20)
    assert {m.source_id for m in ms} == {"doc1", "doc2"}
    spans = sorted(m.span for m in ms)
    assert spans[0][1] < spans[1][0]
    by_id = {m.source_id: m for m in ms}
    assert text[by_id["doc1"].span[0]:by_id["doc1"].span[1]] == part1


def test_unrelated_text_and_short_overlaps_find_nothing(corpus: CorpusIndex) -> None:
    assert corpus.search(prose(300, random.Random(99))) == []
    short = " ".join(SOURCE_A.split()[:12])
    assert corpus.search(f"{prose(20)} {short} {prose(20)}", min_words=20) == []


def test_allow_list_excludes_licensed_sources(corpus: CorpusIndex) -> None:
    from detectors.copyright.schema import allow_filter

    assert corpus.search(SOURCE_A, exclude=allow_filter(["ta*"], [])) == []
    assert corpus.search(SOURCE_A, exclude=allow_filter([], ["Public-Domain"])) == []
    assert corpus.search(SOURCE_A, exclude=allow_filter(["doc*"], ["cc-by"]))


# ----------------------------------------------------------------------------------- detector


def _policy(options: str = "", rules: str = '"*": {action: block, threshold: 0.8}') -> str:
    return f"""
policy: {{id: cr-test}}
detectors:
  - name: copyright
    type: copyright
    stages: [output]
    options: {{{options}}}
    rules: {{{rules}}}
"""


def _runtime(tmp_path: Path, corpus: CorpusIndex | None, text: str) -> object:
    from detectors.registry import builtin_registry

    settings = Settings(data_dir=tmp_path / "data", hash_key="k", audit_key="k")
    if corpus is not None:
        corpus.save(tmp_path / "data" / "copyright" / "index.npz")
    return build_runtime(settings, policy=parse_policy(text, registry=builtin_registry()), audit=False)


async def test_empty_corpus_finds_nothing(tmp_path: Path) -> None:
    rt = _runtime(tmp_path, None, _policy())
    det = rt.detectors["copyright"]
    assert det.info()["documents"] == 0 and det.index._lsh is None  # nothing built, nothing to cost
    dec = await rt.pipeline.check_output(SOURCE_A, CallContext())
    assert dec.action is Action.ALLOW and not dec.findings


async def test_pipeline_blocks_and_redacts_with_span_evidence(tmp_path: Path, corpus: CorpusIndex) -> None:
    rt = _runtime(tmp_path, corpus, _policy())
    out = "Sure. " + SOURCE_A + " Hope that helps."
    dec = await rt.pipeline.check_output(out, CallContext())
    assert dec.action is Action.BLOCK
    (f,) = dec.findings
    assert f.category == "copyright" and f.score == 1.0 and out[f.span[0]:f.span[1]].startswith("It was the best")
    assert f.evidence["source_id"] == "tale" and f.evidence["source_start"] == 0
    assert set(f.evidence) >= {"source_id", "title", "source_start", "source_end", "similarity"}
    assert not any(isinstance(v, str) and "times" in v for v in f.evidence.values())  # no raw text

    rt2 = _runtime(tmp_path / "r", corpus, _policy(rules='"*": {action: redact, threshold: 0.8}'))
    dec2 = await rt2.pipeline.check_output(out, CallContext())
    assert dec2.action is Action.REDACT and dec2.text == "Sure. <copyright>. Hope that helps."


async def test_cite_mode_passes_with_a_citation(tmp_path: Path, corpus: CorpusIndex) -> None:
    rt = _runtime(tmp_path, corpus, _policy(options='cite_licences: [public-domain]',
                                            rules='copyright_cite: {action: flag, threshold: 0.8}, '
                                                  '"*": {action: block, threshold: 0.8}'))
    dec = await rt.pipeline.check_output(SOURCE_A, CallContext())
    assert dec.action is Action.FLAG
    (j,) = dec.judgements
    assert j.finding.category == CITE_CATEGORY and j.finding.evidence["citation"] == "A Tale of Two Cities (tale)"
    assert citation_block(dec.judgements) == "\n\nSources: A Tale of Two Cities (tale)"
    assert citation_block([]) == ""
    assert dec.text == SOURCE_A + "\n\nSources: A Tale of Two Cities (tale)"  # appended by the pipeline


async def test_allow_sources_option_in_policy(tmp_path: Path, corpus: CorpusIndex) -> None:
    rt = _runtime(tmp_path, corpus, _policy(options="allow_sources: [tale]"))
    dec = await rt.pipeline.check_output(SOURCE_A, CallContext())
    assert dec.action is Action.ALLOW and not dec.findings


def test_explicit_corpus_path_must_exist(tmp_path: Path) -> None:
    from detectors.copyright import build_detector, resolve_corpus
    from guardrails.errors import TrustwallError

    build = BuildContext(settings=Settings(data_dir=tmp_path))
    opts = CopyrightOptions(corpus=str(tmp_path / "nope"))
    assert resolve_corpus(opts, build) == tmp_path / "nope" / "index.npz"
    with pytest.raises(TrustwallError, match="no corpus index"):
        build_detector(type("S", (), {"name": "c"})(), opts, build)


def test_bad_options_are_policy_errors() -> None:
    from detectors.registry import builtin_registry
    from guardrails.errors import PolicyError

    with pytest.raises(PolicyError, match="min_words"):
        parse_policy(_policy(options="min_words: 1"), registry=builtin_registry())
    with pytest.raises(PolicyError, match="unknown field"):
        parse_policy(_policy(options="treshold: 1"), registry=builtin_registry())


async def test_default_policy_copyright_entry_uses_the_data_dir_corpus(tmp_path: Path, corpus: CorpusIndex) -> None:
    from detectors.registry import builtin_registry
    from guardrails.policy import load_policy
    from guardrails.settings import default_policy_path

    reg = builtin_registry()
    spec = next(d for d in load_policy(default_policy_path(), reg).detectors if d.type == "copyright")
    dtype = reg.get("copyright")
    build = BuildContext(settings=Settings(data_dir=tmp_path))
    empty = dtype.factory(spec, dtype.options_model.model_validate(spec.options), build)
    assert await empty.detect(["anything at all " * 20], CallContext()) == [[]]
    corpus.save(tmp_path / "copyright" / "index.npz")
    det = dtype.factory(spec, dtype.options_model.model_validate(spec.options), BuildContext(settings=Settings(data_dir=tmp_path)))
    (found,) = await det.detect([SOURCE_A], CallContext())
    assert [f.evidence["source_id"] for f in found] == ["tale"]
    assert spec.rule_for("output", found[0].category).action == "block"
    assert spec.rule_for("output", CITE_CATEGORY).action == "flag"


# ----------------------------------------------------------------------------------- exact stage, document level


def _words(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(n)]


def test_exact_containment_on_a_hand_made_corpus() -> None:
    idx = CorpusIndex()
    src = _words("s", 100)
    idx.add([Document("src", " ".join(src), "Source"), Document("other", " ".join(_words("o", 50) + src[:4]), "Other")])
    # 20 source words (18 of the output's 3-grams), then 20 new words: 38 distinct 3-grams, 18 found in "src"
    out = src[:20] + _words("x", 20)
    assert idx.containment(" ".join(out)) == {"src": pytest.approx(18 / 38)}  # "other": 2 hits < min_hits
    assert idx.containment(" ".join(out), min_hits=2) == {"src": pytest.approx(18 / 38), "other": pytest.approx(2 / 38)}
    qsh = shingle_hashes(word_hashes(out), 3)
    assert [(idx.docs[c.doc].id, c.hits) for c in idx.exact_candidates(qsh)] == [("src", 18)]  # "other": 2 < min_hits
    assert [(idx.docs[c.doc].id, c.hits) for c in idx.exact_candidates(qsh, min_hits=2)] == [("src", 18), ("other", 2)]
    # a 3-gram that occurs more often than max_postings does not nominate, but still counts once nominated
    assert [c.hits for c in idx.exact_candidates(qsh, max_postings=1, min_hits=2)] == [16]
    (d, o) = idx.documents(" ".join(out), min_hits=2)
    assert (d.source_id, d.shingles, d.output_shingles) == ("src", 18, 38)
    assert d.containment == d.local_containment == pytest.approx(18 / 38)
    text = " ".join(out)
    assert d.spans == ((0, len(" ".join(src[:20]))),)
    assert d.source_span == (0, len(" ".join(src[:20])))
    assert (o.source_id, o.shingles) == ("other", 2) and text[o.spans[0][0]:o.spans[0][1]] == "s0 s1 s2 s3"


def test_local_containment_ignores_hits_spread_over_a_long_source() -> None:
    idx = CorpusIndex()
    # the output's 3-grams occur in the source, but each pair of words 400 words from the next
    pieces = [_words(f"p{j}q", 3) for j in range(12)]
    filler = [_words(f"f{j}q", 400) for j in range(12)]
    idx.add([Document("long", " ".join(w for j in range(12) for w in pieces[j] + filler[j]), "Long")])
    out = " ".join(w for p in pieces for w in p)  # 36 words, 34 3-grams, 12 of them in the source
    (d,) = idx.documents(out)
    assert d.containment == pytest.approx(12 / 34)
    assert d.local_containment < d.containment and d.shingles <= 1  # the source region holds at most one
    assert idx.search(out, min_words=8) == []


def test_exact_stage_finds_a_revision_and_reports_it_at_document_level(corpus: CorpusIndex, tmp_path: Path) -> None:
    rng = random.Random(3)
    src = " ".join(prose(400, random.Random(11)).split())  # doc0 of the corpus
    words = src.split()[:200]
    revised = [w if i % 4 else rng.choice(["really", "indeed", "so", "quite"]) for i, w in enumerate(words)]
    text = " ".join(revised)  # every 4th word replaced: no run of 20 words at similarity 0.8, half the 3-grams kept
    assert "doc0" in corpus.containment(text)
    spans, docs = corpus.search_all(text, doc_sources=4)
    assert not any(m.similarity >= 0.8 for m in spans)
    best = docs[0]
    assert best.source_id == "doc0" and 0.24 < best.local_containment < 0.27 and best.shingles >= 20
    from detectors.copyright import PARAPHRASE_CATEGORY, CopyrightDetector

    det = CopyrightDetector("c", corpus, CopyrightOptions(doc_min_containment=0.2))
    found = det.check(text)
    assert all(f.score < 0.8 for f in found if f.category == "copyright")  # weak spans only: below the policy threshold
    (f,) = [f for f in found if f.category == PARAPHRASE_CATEGORY]
    assert f.evidence["source_id"] == "doc0" and f.score == pytest.approx(best.local_containment, abs=1e-4)
    assert f.evidence["spans"] and f.span == (f.evidence["spans"][0][0], f.evidence["spans"][-1][1])
    assert set(f.evidence) >= {"source_id", "title", "containment", "local_containment", "shingles", "source_start"}
    off = CopyrightDetector("c", corpus, CopyrightOptions(document_findings=False))
    assert not [f for f in off.check(text) if f.category == PARAPHRASE_CATEGORY]
    strict = CopyrightDetector("c", corpus, CopyrightOptions(doc_min_containment=0.3))
    assert not [f for f in strict.check(text) if f.category == PARAPHRASE_CATEGORY]
    # a verbatim copy is reported by its span, not again at document level
    assert [f.category for f in det.check(SOURCE_A)] == ["copyright"]


def test_candidate_modes_agree_on_verbatim_copies_and_lsh_is_built_only_when_asked() -> None:
    from detectors.copyright import CopyrightDetector

    idx = CorpusIndex()
    idx.add([Document("tale", SOURCE_A, "Tale")] + [Document(f"n{i}", prose(300, random.Random(i))) for i in range(5)])
    CopyrightDetector("c", idx, CopyrightOptions())
    assert idx._lsh is None  # default: exact stage only, no LSH memory
    for mode in ("exact", "lsh", "both"):
        (m,) = idx.search("Quote: " + SOURCE_A, candidates=mode)
        assert m.source_id == "tale" and m.similarity == 1.0
    with pytest.raises(ValueError, match="candidates"):
        idx.search(SOURCE_A, candidates="fuzzy")
    idx2 = CorpusIndex()
    idx2.add([Document("tale", SOURCE_A, "Tale")])
    CopyrightDetector("c", idx2, CopyrightOptions(candidates="both"))
    assert idx2._lsh is not None


def test_empty_corpus_costs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    import detectors.copyright.index as ci
    import detectors.copyright.search as cs

    idx = CorpusIndex()

    def boom(*_a: object) -> None:
        raise AssertionError("tokenised with an empty corpus")

    monkeypatch.setattr(ci, "tokenize", boom)  # building
    monkeypatch.setattr(cs, "tokenize", boom)  # searching
    assert idx.search(SOURCE_A) == [] and idx.search_all(SOURCE_A, doc_sources=4) == ([], [])
    assert idx.containment(SOURCE_A) == {} and idx.documents(SOURCE_A) == []
    assert idx.exact_candidates(np.arange(5, dtype=np.uint32)) == []
    assert idx.stats()["inverted_entries"] == 0 and idx.stats()["array_bytes"] < 200
