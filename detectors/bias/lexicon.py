"""The identity-group lexicon (detectors/data/bias_lexicon.json) and its prefix-trie word matchers.

`Lexicon` compiles the groups' nouns and adjectives, the names, titles, places and proxy words into
case-insensitive (names: case-sensitive) regexes; `word_rx` builds one such matcher from a word list.
Pure: json and re only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

ATTRIBUTES: tuple[str, ...] = (
    "gender", "race_ethnicity", "nationality", "religion", "age", "disability", "sexual_orientation",
    "socioeconomic", "appearance",
)
CATEGORY_PREFIX = "bias_"
CATEGORIES: tuple[str, ...] = tuple(CATEGORY_PREFIX + a for a in ATTRIBUTES)


def data_path(name: str) -> Path:
    """A file of the package data under detectors/data (resolved through the `detectors` package)."""
    return Path(str(files("detectors").joinpath("data", name)))


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


def word_rx(words: Iterable[str], *, flexible: bool = False, ignore_case: bool = False,
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
                        self.terms.setdefault(self.norm(w), []).append(Term(grp, kind, w))
        self.rx = word_rx(self.terms, flexible=True, ignore_case=True)
        self.frame_rx = word_rx(self.frames + self.quantifier_phrases, ignore_case=True, hyphen_bound=False)
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
                key = self.norm(w)
                self.proxy_words[key] = self.proxy_words.get(key, ()) + (self.groups[gid],)
        self.proxy_rx = word_rx(self.proxy_words, flexible=True, ignore_case=True)
        self.name_rx = word_rx(self.names)
        self.ambiguous_names = frozenset(raw.get("ambiguous_names", ()))  # also common words: need a PROPN tag
        self.place_rx = word_rx(self.places)
        self.counter_rx = word_rx(raw.get("counter_speech", ()), ignore_case=True, hyphen_bound=False)

    @staticmethod
    def norm(s: str) -> str:
        return re.sub(r"[\s\-]+", " ", s.lower()).strip()

    def lookup(self, matched: str) -> list[Term]:
        key = self.norm(matched)
        return self.terms.get(key, [])

    def is_frame(self, phrase: str) -> bool:
        return phrase.lower() in self._frame_set

    @classmethod
    def load(cls, path: Path | None = None) -> Lexicon:
        p = path or data_path("bias_lexicon.json")
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
