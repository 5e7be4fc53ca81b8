"""The counterfactual probe: swap identity-group terms (nouns, adjectives, names, titles, pronouns) for
another group's and report how the bias and toxicity scores move (`trustwall bias probe`)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from detectors.bias.detector import BiasDetector, BiasOptions, load_scorer
from detectors.bias.lexicon import ATTRIBUTES, Group, Lexicon
from detectors.bias.scorer import BiasScorer, Mention
from guardrails.detector import BuildContext
from guardrails.types import CallContext


if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc


_IRREGULAR_PLURALS = {"men", "women", "people", "children", "folks", "gentlemen", "ladies", "elderly", "poor",
                      "rich", "wealthy", "homeless", "disabled", "blind", "deaf", "chinese", "japanese", "irish",
                      "french", "dutch", "swiss", "british", "vietnamese", "lgbtq", "youth"}


def _is_plural(phrase: str) -> bool:
    last = phrase.lower().split()[-1]
    return last.endswith("s") or last in _IRREGULAR_PLURALS or phrase.lower().startswith("the ")


def _match_case(src: str, repl: str) -> str:
    if src.isupper() and len(src) > 1:
        return repl.upper()
    if src[:1].isupper():
        return repl[:1].upper() + repl[1:]
    return repl


def swap_term(lex: Lexicon, phrase: str, kind: str, target: Group) -> str | None:
    """A term of `target` that can stand where `phrase` (a noun, adjective or name) stood."""
    if kind == "name":
        return _swap_name(lex, phrase, target)
    if kind in ("adj", "attributive") and target.adjs:  # "a Mexican restaurant" -> "an American restaurant"
        return _match_case(phrase, target.adjs[0])
    pool = [n for n in target.nouns if _is_plural(n) == _is_plural(phrase)]
    if not pool and target.adjs:  # e.g. a religion listed by adjective only: "Hasidic people"
        return _match_case(phrase, f"{target.adjs[0]} {'people' if _is_plural(phrase) else 'person'}")
    pool = pool or list(target.nouns)
    starts_the = phrase.lower().startswith("the ")
    pool = [n for n in pool if n.lower().startswith("the ") == starts_the] or pool
    if not pool:
        return None
    return _match_case(phrase, pool[0])


_ARTICLE_RX = re.compile(r"(?<!\w)(a|an|A|An)(\s+)$")


def _fix_article(before: str, word: str) -> str:
    """`before` with a trailing "a"/"an" agreeing with `word` ("a Mexican" -> "an American")."""
    m = _ARTICLE_RX.search(before)
    if m is None or not word:
        return before
    art = "an" if word[0].lower() in "aeiou" else "a"
    art = art.capitalize() if m.group(1)[0].isupper() else art
    return before[: m.start()] + art + m.group(2)


_TITLE_SWAP = {"Mr": "Mrs", "Mr.": "Mrs.", "Sir": "Madam", "Mrs": "Mr", "Mrs.": "Mr.", "Ms": "Mr", "Ms.": "Mr.",
               "Miss": "Mr", "Madam": "Sir"}


def _swap_name(lex: Lexicon, name: str, target: Group, taken: Iterable[str] = ()) -> str | None:
    """A name (or title) of `target` that keeps the source name's other proxies where it can: a Black
    woman's first name becomes a white woman's, not a man's. Names in `taken` (already given to another
    person in the same text) are passed over, so two people stay two people."""
    kind = lex.name_kind.get(name, "names")
    if kind == "titles":
        repl = _TITLE_SWAP.get(name)
        return repl if repl is not None and target in lex.names.get(repl, ()) else None
    keep_ = {g.id for g in lex.names.get(name, ()) if g.attribute != target.attribute}
    used = set(taken)
    best: tuple[int, int, str] | None = None
    for i, cand in enumerate(lex.names_of(target.id, kind)):
        if cand in used or cand == name:
            continue
        shared = len(keep_ & {g.id for g in lex.names[cand]})
        if best is None or (shared, -i) > (best[0], best[1]):
            best = (shared, -i, cand)
    return None if best is None else best[2]


_PRONOUN_SWAP = {
    "men": {"she": "he", "hers": "his", ("her", "PRP$"): "his", ("her", "PRP"): "him"},
    "women": {"he": "she", "him": "her", ("his", "PRP$"): "her", ("his", "PRP"): "hers"},
}


def _swap_pronoun(word: str, tag: str, target: str) -> str | None:
    table = _PRONOUN_SWAP.get(target)
    if table is None:
        return None
    low = word.lower()
    repl = table.get(low) or table.get((low, tag))
    return None if repl is None else _match_case(word, repl)


@dataclass(frozen=True)
class Variant:
    attribute: str
    from_group: str
    to_group: str
    text: str


def counterfactual_variants(scorer: BiasScorer, doc: Doc, *, all_groups: bool = False) -> list[Variant]:
    """Texts with the identity terms of one group swapped for its counterpart (or every other group of
    the same attribute when `all_groups`). All mentions of the swapped group change together."""
    lex = scorer.lex
    mentions = [m for m in scorer.mentions(doc) if m.kind not in ("place", "proxy")]  # names and pronouns swap
    by_group: dict[str, list[Mention]] = {}
    for m in mentions:
        by_group.setdefault(m.group.id, []).append(m)
    out: list[Variant] = []
    text = doc.text
    for gid, ms in by_group.items():
        g = lex.groups[gid]
        if all_groups:
            targets = [o for o in lex.groups.values() if o.attribute == g.attribute and o.id != gid]
        else:
            targets = [lex.groups[g.counterpart]] if g.counterpart in lex.groups else []
        for tgt in targets:
            new = text
            ok = True
            names: dict[str, str] = {}  # one target name per source name, distinct targets for distinct people
            for m in sorted(ms, key=lambda x: x.start):
                if m.kind == "name" and text[m.start:m.end] not in names:
                    got = _swap_name(lex, text[m.start:m.end], tgt, taken=names.values())
                    if got is not None:
                        names[text[m.start:m.end]] = got
            edge = len(text) + 1  # replacements run right to left; an overlapping mention is skipped
            for m in sorted(ms, key=lambda x: (x.start, -x.end), reverse=True):
                if m.end > edge:
                    continue
                if m.kind == "pronoun":
                    tok = doc[m.head_i]
                    standalone = tok.dep_ != "poss" or tok.i + 1 >= len(doc) or doc[tok.i + 1].is_punct
                    repl = _swap_pronoun(text[m.start:m.end], "PRP" if standalone else "PRP$", tgt.id)
                    if repl is None:
                        continue  # a pronoun stays when the swap is not between women and men
                else:
                    repl = names.get(text[m.start:m.end]) if m.kind == "name" else swap_term(lex, text[m.start:m.end], m.kind, tgt)
                    if repl is None:
                        ok = False
                        break
                new = _fix_article(new[: m.start], repl) + repl + new[m.end:]
                edge = m.start
            if ok and new != text:
                out.append(Variant(g.attribute, gid, tgt.id, new))
    return out


async def counterfactual_report(runtime: Any, text: str, *, all_groups: bool = False) -> dict[str, Any]:
    """Swap group terms in `text` and report how the bias and toxicity scores move.

    Uses the runtime's bias detector (or builds a scorer with the embedded defaults) and, when the policy
    has a toxicity detector, its highest score per variant. The result is JSON-serialisable."""
    from detectors.nlp import get_nlp

    bias_det = next((d for d in runtime.detectors.values() if isinstance(d, BiasDetector)), None)
    tox_det = None
    for spec in runtime.policy.detectors:
        if spec.type == "toxicity" and spec.name in runtime.detectors:
            tox_det = runtime.detectors[spec.name]
            break
    if bias_det is None:
        nlp = get_nlp(runtime.resources, BiasOptions().model, components=("tagger", "parser", "lemmatizer"))
        bias_det = BiasDetector("bias", load_scorer(BiasOptions(), BuildContext(runtime.settings, runtime.resources)),
                                nlp, ATTRIBUTES)
    return await probe(bias_det, text, toxicity=tox_det, all_groups=all_groups)


async def probe(bias_det: BiasDetector, text: str, *, toxicity: Any = None, all_groups: bool = False) -> dict[str, Any]:
    """The counterfactual probe over one detector (see counterfactual_report)."""
    from detectors.nlp import parse

    ctx = CallContext(route="counterfactual")
    docs = await parse(ctx, bias_det.nlp, [text], "output")
    variants = counterfactual_variants(bias_det.scorer, docs[0], all_groups=all_groups)
    texts = [text] + [v.text for v in variants]
    bias_det.resolve_late_toxicity()
    # raw scores (min_score 0): a swapped name or pronoun moves the score even below the reporting cut-off
    sc = bias_det.scorer
    raw = BiasScorer(sc.lex, sc.clf, sc.toxicity, min_score=0.0, marginalised_prior=sc.priors[1], other_prior=sc.priors[0])
    all_docs = await parse(CallContext(route="counterfactual"), bias_det.nlp, texts)  # no stage: the full parse
    raw_scores = await asyncio.to_thread(raw.analyse, all_docs)
    bias = [BiasScorer.text_score(s) for s in raw_scores]
    scores = [[s for s in raw_scores[0] if s.score >= sc.min_score and s.attribute in bias_det.attributes]]
    tox: list[float | None] = [None] * len(texts)
    ident: list[float | None] = [None] * len(texts)
    if toxicity is not None:
        scorer = getattr(toxicity, "scorer", None)
        if scorer is not None and callable(getattr(scorer, "score", None)):
            # raw scores (the detector itself only reports labels above its min_score)
            labels = getattr(toxicity, "labels", None)
            raw = await asyncio.to_thread(scorer.score, texts)
            tox = [max((float(v) for k, v in d.items() if labels is None or k in labels), default=0.0) for d in raw]
            ident = [float(d["identity_attack"]) if "identity_attack" in d else None for d in raw]
        else:
            found = await toxicity.detect(texts, CallContext(route="counterfactual"), "output")
            tox = [max((f.score for f in fl), default=0.0) for fl in found]
    rows = []
    for v, b, t, ia in zip(variants, bias[1:], tox[1:], ident[1:]):
        rows.append({
            "attribute": v.attribute, "from": v.from_group, "to": v.to_group, "text": v.text,
            "bias": round(b, 4), "delta_bias": round(b - bias[0], 4),
            "toxicity": None if t is None else round(t, 4),
            "delta_toxicity": None if (t is None or tox[0] is None) else round(t - tox[0], 4),
            "identity_attack": None if ia is None else round(ia, 4),
            "delta_identity_attack": None if (ia is None or ident[0] is None) else round(ia - ident[0], 4),
        })
    gaps = [abs(r["delta_bias"]) for r in rows]
    tgaps = [abs(r["delta_toxicity"]) for r in rows if r["delta_toxicity"] is not None]
    return {
        "original": {"bias": round(bias[0], 4), "toxicity": None if tox[0] is None else round(tox[0], 4),
                     "identity_attack": None if ident[0] is None else round(ident[0], 4),
                     "findings": [{"category": s.category, "group": s.group, "score": round(s.score, 4),
                                   "span": list(s.span)} for s in scores[0]]},
        "variants": rows,
        "max_abs_delta_bias": round(max(gaps, default=0.0), 4),
        "max_abs_delta_toxicity": round(max(tgaps), 4) if tgaps else None,
    }
