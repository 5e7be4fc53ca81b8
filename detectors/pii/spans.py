"""Span boundary fixes for PII findings, applied after the recognisers (pure functions).

* PERSON: a name stops at a line break, a colon or a closing quote; the possessive "'s", a leading
  "ex-Band" qualifier, a leading courtesy title or role word ("Mr.", "Producer") and a trailing unit or
  field label ("Apt", "Phone") are not part of it.
* DATE_TIME: a date directly followed by a clock time ("2000-04-16 11:34:35", "12 May 2020 at 10:30")
  is one finding.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from guardrails.types import Finding

# Words that precede or follow a name without being part of it.
LEADING_WORDS = frozenset({
    "mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "madam", "dame", "lord", "lady", "rev", "fr", "producer",
    "director", "editor", "author", "writer", "singer", "artist", "president", "senator", "governor", "mayor",
    "judge", "justice", "captain", "capt", "general", "gen", "colonel", "col", "sergeant", "sgt", "officer",
    "agent", "detective", "coach", "doctor", "nurse", "professor", "minister", "chancellor", "king", "queen",
    "prince", "princess", "pope", "saint", "uncle", "aunt", "dear", "hi", "hello", "hey", "user", "customer",
    "patient", "client", "mister",
})
TRAILING_WORDS = frozenset({
    "apt", "apartment", "suite", "ste", "unit", "flat", "room", "address", "phone", "tel", "telephone", "mobile",
    "cell", "fax", "email", "e-mail", "mail", "website", "web", "office", "home", "work", "says", "said", "wrote",
})
_POSSESSIVE = re.compile(r"['’]s?$")
_EX_PREFIX = re.compile(r"^[a-z]{2,5}-[A-Z][\w'’-]*[ \t]+(?=\S)")
_TIME_AFTER = re.compile(r"(?:[ \t]*(?:,|at|T|@)?[ \t]*|T)\d{1,2}:\d{2}(?::\d{2}(?:\.\d{1,6})?)?"
                         r"(?:[ \t]?(?:[AaPp]\.?[Mm]\.?))?(?:[ \t]?(?:Z|[+-]\d{2}:?\d{2}|UTC|GMT))?(?![\w:])")


def _person_span(text: str, start: int, end: int) -> tuple[int, int] | None:
    value = text[start:end]
    cut = re.search(r"\n|:|\"|“|”|\t{1}|[ \t]{3,}", value)
    if cut:
        if cut.start() == 0:
            return None
        value = value[:cut.start()]
    m = _EX_PREFIX.match(value)
    if m:
        start, value = start + m.end(), value[m.end():]
    words = list(re.finditer(r"\S+", value))
    while len(words) > 1 and words[0].group(0).rstrip(".,").lower() in LEADING_WORDS:
        words.pop(0)
    while len(words) > 1 and words[-1].group(0).rstrip(".,:").lower() in TRAILING_WORDS:
        words.pop()
    if not words:
        return None
    s, e = start + words[0].start(), start + words[-1].end()
    value = text[s:e]
    trimmed = _POSSESSIVE.sub("", value) if re.search(r"\w['’]s?$", value) and len(value) > 3 else value
    trimmed = trimmed.rstrip(" \t,.;") if not re.search(r"\b[A-Z]\.$", trimmed) else trimmed.rstrip(" \t,;")
    if len(trimmed) < 2:
        return None
    return s, s + len(trimmed)


def tidy_persons(text: str, found: Sequence[Finding]) -> list[Finding]:
    """PERSON findings with their boundaries fixed; a finding left with nothing name-like goes."""
    out: list[Finding] = []
    for f in found:
        if f.category != "PERSON" or not f.span:
            out.append(f)
            continue
        span = _person_span(text, *f.span)
        if span is None:
            continue
        out.append(f if span == f.span else Finding(f.detector, f.category, f.score, span, f.evidence,
                                                     f.message_index))
    return out


def join_date_times(text: str, found: Sequence[Finding]) -> list[Finding]:
    """A DATE_TIME finding directly followed by a clock time grows over it; findings it now covers go."""
    out: list[Finding] = []
    for f in found:
        m = _TIME_AFTER.match(text, f.span[1]) if f.category == "DATE_TIME" and f.span else None
        if m and f.span:
            f = Finding(f.detector, f.category, f.score, (f.span[0], m.end()), f.evidence, f.message_index)
        out.append(f)
    grown = [f.span for f in out if f.category == "DATE_TIME" and f.span]
    return [f for f in out if not (f.category == "DATE_TIME" and f.span and any(
        s <= f.span[0] and f.span[1] <= e and (s, e) != f.span for s, e in grown))]
