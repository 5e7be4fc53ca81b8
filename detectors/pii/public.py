"""PII helpers for normalised text and public places (pure functions).

* `separated_numbers`: card numbers and SSNs whose digits are split by unusual separators
  ("4111.1111 1111-1111", "123 . 45 . 6789", "1-2-3-4-5-6-7-8-9"), which Presidio's patterns miss.
  Cards are Luhn- and issuer-checked; SSNs must be valid (area not 000/666/9xx, group not 00, serial
  not 0000), carry at least two separators and follow an SSN context word ("SSN", "social
  security") within 60 characters: nine digits in odd groups are otherwise often a phone or an id.
* `public_places`: LOCATION findings that are only a country, capital, continent, well-known region or
  major city (the gazetteer in detectors/data/places.json) identify nobody. They are dropped or
  re-labelled PUBLIC_PLACE unless the context makes them personal: part of a longer address block,
  or in a sentence that also names a person or says where the writer lives ("I live in", "my
  address", "born in" after a name...).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from importlib import resources
from typing import Literal

from guardrails.types import Finding

PublicPlaces = Literal["ignore", "flag", "redact"]
PUBLIC_PLACE = "PUBLIC_PLACE"

_DIGIT_RUN = re.compile(r"(?<![\w.\-])\d(?:(?:[ \t.\-_/·•]{1,3})?\d){8,22}(?![\w\-]|\.\d)")
_SEP = re.compile(r"[ \t.\-_/·•]")
_CARD_IIN = re.compile(r"^(?:4|5[1-5]|2[2-7]|3[47]|3[0689]|6(?:011|5|4[4-9]|2)|35|2131|1800)")


_SSN_CONTEXT = re.compile(r"(?i)\b(?:ssn|ssns|social[ \t]+security|soc[ \t]*sec|tax[ \t]+id|tin)\b")


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _ssn_ok(d: str) -> bool:
    return d[:3] not in ("000", "666") and d[0] != "9" and d[3:5] != "00" and d[5:] != "0000"


def separated_numbers(text: str, detector: str, wanted: set[str]) -> list[Finding]:
    out: list[Finding] = []
    for m in _DIGIT_RUN.finditer(text):
        value = m.group(0)
        digits = "".join(c for c in value if c.isdigit())
        seps = len(_SEP.findall(value))
        if seps == 0:
            continue
        if "CREDIT_CARD" in wanted and 13 <= len(digits) <= 19 and _CARD_IIN.match(digits) and _luhn(digits):
            out.append(Finding(detector, "CREDIT_CARD", 0.6, m.span(), {"recognizer": "SeparatedNumberRecognizer"}))
        elif "US_SSN" in wanted and len(digits) == 9 and seps >= 2 and _ssn_ok(digits) \
                and max(len(g) for g in re.split(r"[^\d]+", value)) <= 4 \
                and _SSN_CONTEXT.search(text, max(0, m.start() - 60), m.start()):
            out.append(Finding(detector, "US_SSN", 0.6, m.span(), {"recognizer": "SeparatedNumberRecognizer"}))
    return out


def load_places() -> frozenset[str]:
    """The gazetteer, case-folded, with and without a leading "the"."""
    raw = json.loads(resources.files("detectors").joinpath("data/places.json").read_text("utf-8"))
    names: set[str] = set()
    for key, values in raw.items():
        if key.startswith("_"):
            continue
        for v in values:
            k = _key(v)
            names.add(k)
            names.add(re.sub(r"^the ", "", k))
    return frozenset(names)


def _key(value: str) -> str:
    return re.sub(r"\s+", " ", value.strip(" \t\n,.;:!?\"'()")).casefold()


_LIST_SEP = re.compile(r"\s*(?:,|;|/|&|\band\b|\bor\b)\s*")


def _public(value: str, places: frozenset[str]) -> bool:
    """The value is a gazetteer name, or a list of them ("Germany, France" merged into one finding)."""
    if _key(value) in places:
        return True
    parts = [p for p in _LIST_SEP.split(value) if p.strip()]
    return len(parts) > 1 and all(_key(p) in places for p in parts)


_SENTENCE = re.compile(r"[^.!?\n]+(?:[.!?]+|\n|$)")
_PERSONAL_CUE = re.compile(
    r"\b(?:I|I'm|I've|we|we're|my|our|me|he|she|his|her|they|their|lives?|lived|living|resides?|resided|"
    r"born|moved|moving|address|located|home|hometown|stay(?:s|ing)?|based)\b", re.IGNORECASE)
_NAMED_PERSON = ("PERSON",)


def public_places(text: str, found: Sequence[Finding], places: frozenset[str], mode: PublicPlaces) -> list[Finding]:
    """Apply the `public_places` policy option to LOCATION findings (see the module docstring)."""
    if mode == "redact" or not places:
        return list(found)
    sentences = [m.span() for m in _SENTENCE.finditer(text)]
    persons = [f.span for f in found if f.category in _NAMED_PERSON and f.span]
    out: list[Finding] = []
    for f in found:
        if f.category != "LOCATION" or not f.span or not _public(text[f.span[0]:f.span[1]], places):
            out.append(f)
            continue
        s, e = f.span
        sent = next(((a, b) for a, b in sentences if a <= s < b), (0, len(text)))
        personal = any(a < sent[1] and sent[0] < b for a, b in persons) or bool(
            _PERSONAL_CUE.search(text, sent[0], sent[1]))
        if personal:
            out.append(f)
        elif mode == "flag":
            out.append(Finding(f.detector, PUBLIC_PLACE, f.score, f.span, {**f.evidence, "public_place": True},
                               f.message_index))
    return out


# ------------------------------------------------------------------ names and places that identify nobody

LoneNames = Literal["ignore", "flag", "redact"]
LONE_NAME = "LONE_NAME"
_TITLE_BEFORE = re.compile(r"(?i)\b(?:mr|mrs|ms|mx|miss|dr|prof|sir|dame|lord|lady|rev|fr|capt|sgt|officer|"
                           r"detective|judge|senator|president|minister|professor|doctor|uncle|aunt)\.?\s+$")
_INTRO_BEFORE = re.compile(r"(?i)(?:\b(?:my|his|her|their|your) name is|\bI am|\bI'm|\bnamed|\bcalled|\bcall me|"
                           r"\bthis is|\b(?:dear|hi|hello|hey|thanks|thank you|regards|sincerely|cheers|best),?)\s+$")
_NOT_IDENTIFYING = {"DATE_TIME", "URL", "NRP", "ORGANIZATION", PUBLIC_PLACE, LONE_NAME}
_NER = "SpacyRecognizer"


def _lone_name(text: str, f: Finding) -> bool:
    """A name the NER (or propagation of an NER name) found that is one word, with no title before it and
    not introduced or addressed ("my name is Priya", "I'm Priya", "Hi Priya,", "Thanks, Priya")."""
    if f.category != "PERSON" or not f.span or f.evidence.get("recognizer") not in (_NER, "propagated", "name_list"):
        return False
    s, e = f.span
    value = text[s:e].strip()
    before = text[max(0, s - 24):s]
    return bool(value) and not any(c.isspace() for c in value) and not _TITLE_BEFORE.search(before) \
        and not _INTRO_BEFORE.search(before)


def context_places(text: str, found: Sequence[Finding], mode: PublicPlaces) -> list[Finding]:
    """A place the NER found on its own (not an address block, not a merged list) in a sentence with no
    personal cue and no full name identifies nobody either ("the Alps", "Springfield's mayor said"):
    treated like a public place. Addresses, postcodes and places next to a person stay LOCATION."""
    if mode == "redact":
        return list(found)
    sentences = [m.span() for m in _SENTENCE.finditer(text)]
    persons = [f.span for f in found if f.category == "PERSON" and f.span and not _lone_name(text, f)]
    out: list[Finding] = []
    for f in found:
        if f.category != "LOCATION" or not f.span or f.evidence.get("recognizer") != _NER:
            out.append(f)
            continue
        s, _ = f.span
        sent = next(((a, b) for a, b in sentences if a <= s < b), (0, len(text)))
        if any(a < sent[1] and sent[0] < b for a, b in persons) or _PERSONAL_CUE.search(text, sent[0], sent[1]):
            out.append(f)
        elif mode == "flag":
            out.append(Finding(f.detector, PUBLIC_PLACE, f.score, f.span, {**f.evidence, "public_place": True},
                               f.message_index))
    return out


def lone_names(texts: Sequence[str], results: Sequence[Sequence[Finding]], mode: LoneNames,
               min_score: float = 0.5) -> list[list[Finding]]:
    """A given name on its own ("Janet sells 16 eggs", "ask Bob") identifies nobody unless something else
    in the same request does: a full name, a titled name, a name the writer introduces ("my name is"), or
    any identifier (e-mail, phone, card, account, address, a personal place...). Without one, lone names
    are dropped (`ignore`), reported as LONE_NAME (`flag`) or kept as PERSON (`redact`). The whole request
    is one scope, so a name is treated the same in every message and pseudonyms stay consistent."""
    if mode == "redact":
        return [list(fl) for fl in results]
    identified = any(f.category not in _NOT_IDENTIFYING and f.score >= min_score and not _lone_name(t, f)
                     for t, fl in zip(texts, results) for f in fl)
    if identified:
        return [list(fl) for fl in results]
    out: list[list[Finding]] = []
    for t, fl in zip(texts, results):
        kept: list[Finding] = []
        for f in fl:
            if not _lone_name(t, f):
                kept.append(f)
            elif mode == "flag":
                kept.append(Finding(f.detector, LONE_NAME, f.score, f.span, {**f.evidence, "lone_name": True},
                                    f.message_index))
        out.append(kept)
    return out
