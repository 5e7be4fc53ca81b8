"""Resolving PII findings after the recognisers (pure functions over the text and its findings).

* Overlaps: validated structured values beat loose patterns beat NER guesses; the weaker finding
  keeps only its longest part outside the stronger ones.
* NER dates only when concrete (`concrete_date`), phone numbers only when phone-like (`phone_like`).
* One LOCATION finding per address block (`merge_locations`), the rest of a list of names when NER found
  some of them (`complete_name_lists`), every mention of a name found once (`propagate_names`).
* Spans found on normalised text mapped back to the original (`to_original`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from guardrails.normalize import Normalized
from guardrails.types import Finding

from detectors.pii.options import BUILTIN_ENTITIES

# Which finding wins when two overlap: validated structured values beat loose patterns beat NER guesses.
_STRONG = {"EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "CRYPTO", "US_SSN"}
NER_RECOGNIZER = "SpacyRecognizer"
_NAMES = {"PERSON", "LOCATION", "ORGANIZATION", "NRP"}  # trimmed, not dropped, when a stronger finding cuts in


def _tier(f: Finding) -> int:
    rec = f.evidence.get("recognizer", "")
    if rec == NER_RECOGNIZER:
        return 1
    if f.category in _STRONG and f.score >= 0.5:
        return 3
    if f.category in BUILTIN_ENTITIES:
        return 2
    return 3  # custom recognisers are explicit policy: treat them as strong


DATE_SHAPE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_DATE_WORDS = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\b|"
    r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\b(?:christmas|easter|new year)", re.IGNORECASE)


def phone_like(value: str) -> bool:
    """At least 7 digits, and not a date or a timestamp (2000-04-16 11:34)."""
    return sum(c.isdigit() for c in value) >= 7 and not DATE_SHAPE.match(value.strip())


_NOT_A_DATE = re.compile(r"\b(?:old|age|aged)\b|^\W*\d+\s*\+?\s*(?:years?|yrs?)\b|\b\d+(?:st|nd|rd|th) years?\b",
                         re.IGNORECASE)


def concrete_date(value: str) -> bool:
    """NER dates worth reporting: a weekday, a month, or digits that can be a date (not a house number,
    postcode or card number, which the small model often calls DATE). "next week" identifies nobody."""
    if _NOT_A_DATE.search(value):
        return False  # ages and durations ("79 year old", "8+ years")
    if _DATE_WORDS.search(value):
        return True
    digits = re.sub(r"\D", "", value)
    if not digits:
        return False
    if value.strip().isdigit():
        return len(digits) == 4 and 1000 <= int(digits) <= 2199
    return len(digits) <= 14


def resolve_overlaps(text: str, found: list[Finding]) -> list[Finding]:
    """Where a finding overlaps one of a stronger tier (a URL inside an email, NER calling a card number a
    date, NER running a name into "Apt. 5"), the weaker one keeps only its longest part outside the
    stronger ones, or goes when nothing word-like is left. A phone number that is exactly a date the
    date patterns found goes too. Sorted by span."""
    keep: list[Finding] = []
    for f in found:
        s, e = f.span or (0, 0)
        t = _tier(f)
        parts = [(s, e)]
        for g in found:
            if g is f or not parts:
                continue
            gs, ge = g.span or (0, 0)
            if not (gs < e and s < ge):
                continue
            if _tier(g) > t:
                parts = [p for ps, pe in parts for p in ((ps, min(pe, gs)), (max(ps, ge), pe)) if p[1] > p[0]]
            elif f.category == "PHONE_NUMBER" and g.category == "DATE_TIME" and _tier(g) == 2 and (gs, ge) == (s, e):
                parts = []
        if parts == [(s, e)]:
            keep.append(f)
            continue
        if not parts:
            continue
        ps, pe = max(parts, key=lambda p: p[1] - p[0])
        value = text[ps:pe]
        lead = len(value) - len(value.lstrip(" \t\n,.;:-"))
        tail = len(value) - len(value.rstrip(" \t\n,.;:-"))
        ps, pe = ps + lead, pe - tail
        if pe - ps >= 2 and f.category in _NAMES and any(c.isupper() for c in text[ps:pe]):
            keep.append(Finding(f.detector, f.category, f.score, (ps, pe), f.evidence, f.message_index))
    keep.sort(key=lambda f: (f.span or (0, 0), f.category))
    return keep


_LOC_GAP = re.compile(r"[\s,]{0,4}")
_POSTCODE_AFTER = re.compile(r"[ \t,]{0,3}(?:[A-Z]{2}[ \t]+)?\d{4,6}\b")


def merge_locations(text: str, found: list[Finding]) -> list[Finding]:
    """One finding per address block: LOCATION findings separated only by spaces, commas or line breaks
    merge (street, unit, city, country), and a trailing postcode joins them. One placeholder then stands
    for the whole address instead of leaving its pieces readable between three placeholders."""
    locs = sorted((f for f in found if f.category == "LOCATION" and f.span), key=lambda f: f.span)
    if not locs:
        return found
    merged: list[Finding] = []
    for f in locs:
        if merged:
            last = merged[-1]
            ls, le = last.span  # type: ignore[misc]
            s, e = f.span  # type: ignore[misc]
            if s <= le or _LOC_GAP.fullmatch(text[le:s]):
                merged[-1] = Finding(last.detector, "LOCATION", max(last.score, f.score), (ls, max(le, e)),
                                     {"recognizer": "merged" if s > le or e > le else last.evidence.get("recognizer", "")})
                continue
        merged.append(f)
    final = []
    for f in merged:
        s, e = f.span  # type: ignore[misc]
        m = _POSTCODE_AFTER.match(text, e)
        if m and f.evidence.get("recognizer") != NER_RECOGNIZER or (m and (e - s) > 12):
            e = m.end()
        final.append(Finding(f.detector, f.category, f.score, (s, e), f.evidence))
    rest = [f for f in found if f.category != "LOCATION" or not f.span]
    rest = [f for f in rest if not any(g.span[0] <= (f.span or (-1, -1))[0] and (f.span or (0, 0))[1] <= g.span[1]
                                       and f.category in ("DATE_TIME", "PHONE_NUMBER") for g in final)]
    return sorted(rest + final, key=lambda f: (f.span or (0, 0), f.category))


_CAP = r"[A-ZÀ-ÞĀ-Ž][\w'’-]+(?:[ \t][A-ZÀ-ÞĀ-Ž][\w'’-]+)?"
_NAME_LIST = re.compile(rf"{_CAP}(?:[ \t]*,[ \t]*{_CAP})*,?[ \t]+(?:and|&)[ \t]+{_CAP}")
_ITEM = re.compile(_CAP)


def complete_name_lists(text: str, found: list[Finding]) -> list[Finding]:
    """In a list of capitalised names ("Kónya, Becker and Vasquez") where NER tagged some items PERSON
    and nothing stronger claims the others, the others are people too (NER on the small model often
    tags one of three, or calls a surname a place)."""
    extra: list[Finding] = []
    drop: set[int] = set()
    for m in _NAME_LIST.finditer(text):
        items = [(i.start(), i.end()) for i in _ITEM.finditer(text, m.start(), m.end())]
        if len(items) < 2:
            continue
        hits = {}
        for s, e in items:
            hits[(s, e)] = [f for f in found if f.span and f.span[0] < e and s < f.span[1]]
        persons = [f for fl in hits.values() for f in fl if f.category == "PERSON"]
        others = [f for fl in hits.values() for f in fl if f.category != "PERSON" and _tier(f) > 1]
        if not persons or others:
            continue
        score = min(f.score for f in persons)
        for (s, e), fl in hits.items():
            if any(f.category == "PERSON" for f in fl):
                continue
            drop.update(id(f) for f in fl)  # an NER place or organisation inside a list of people
            extra.append(Finding(persons[0].detector, "PERSON", score, (s, e), {"recognizer": "name_list"}))
    if not extra:
        return found
    return sorted([f for f in found if id(f) not in drop] + extra, key=lambda f: (f.span or (0, 0), f.category))


_NAME_TOKEN = re.compile(r"^[A-ZÀ-ÞĀ-Ž][\w'’-]{2,}$")


def propagate_names(texts: Sequence[str], results: list[list[Finding]], detector: str) -> list[list[Finding]]:
    """A name found once in a request is found everywhere in it: other mentions of the same name, and of
    its last word alone ("Ms Yefremova" after "Faina D. Yefremova"), in every message. Pseudonyms then
    stay consistent, and a surname the model missed in one sentence does not leak."""
    names: dict[str, float] = {}
    for text, found in zip(texts, results):
        for f in found:
            if f.category == "PERSON" and f.span:
                value = text[f.span[0]:f.span[1]].strip()
                if len(value) >= 3:
                    names[value] = max(names.get(value, 0.0), f.score)
                    last = value.split()[-1].rstrip(".,'’s")
                    if " " in value and _NAME_TOKEN.match(last):
                        names.setdefault(last, f.score)
    if not names:
        return results
    alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    rx = re.compile(rf"(?<![\w@.])(?:{alt})(?![\w@])")
    out = []
    for text, found in zip(texts, results):
        extra = []
        drop: set[int] = set()
        for m in rx.finditer(text):
            s, e = m.span()
            hit = [f for f in found if f.span and f.span[0] < e and s < f.span[1]]
            if any(f.category == "PERSON" or _tier(f) > 1 for f in hit):
                continue
            drop.update(id(f) for f in hit)  # NER called this name a place elsewhere: the name wins
            extra.append(Finding(detector, "PERSON", names[m.group(0)], (s, e), {"recognizer": "propagated"}))
        kept = [f for f in found if id(f) not in drop]
        out.append(sorted(kept + extra, key=lambda f: (f.span or (0, 0), f.category)) if extra else found)
    return out


def to_original(norm: Normalized, found: list[Finding]) -> list[Finding]:
    """Findings on normalised text with spans mapped back to the original (whole grapheme clusters)."""
    if not norm.changed:
        return found
    out = []
    for f in found:
        if not f.span:
            out.append(f)
            continue
        span = norm.original_span(f.span)
        if span[1] > span[0]:
            out.append(Finding(f.detector, f.category, f.score, span, f.evidence, f.message_index))
    return out
