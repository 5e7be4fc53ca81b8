"""Pure scoring over parsed spaCy Docs: group mentions, generalisation structure, content, one score.

`BiasScorer.analyse` gives, per text, one `SentenceScore` per (sentence, attribute) with a group mention;
the score is the geometric mean of structure and content times the group prior (see detectors/bias/__init__.py
for the signals). Thread-safe after construction; no I/O (the lexicon and classifier come in built).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from detectors.bias.classifier import MASK, Classifier
from detectors.bias.lexicon import CATEGORY_PREFIX, Group, Lexicon, Term


if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc, Span, Token


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
                for g in self.lex.proxy_words[self.lex.norm(pm.group(0))]:
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
