"""Presidio recognisers of the PII detector, built from its options (Presidio is imported inside the
factories, never at import time).

* Checksums for custom recognisers and extra card numbers (Luhn, IBAN, ISO 7064 MOD 97-10).
* Offline replacements for Presidio's e-mail, URL and phone recognisers (no network, linear patterns,
  one candidate scan instead of one per phone region).
* Extra recognisers: card numbers Presidio leaves out, loose phone shapes with a context word, postal
  addresses and places (detectors/pii/address.py), names after a cue, country names.
* Custom recognisers declared in the policy (regex with optional checksum, context words, deny lists).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from detectors.pii.address import find_addresses, find_places
from detectors.pii.options import NER_ENTITIES, OPTIONAL_ENTITIES, PiiOptions, RecognizerDef
from detectors.pii.resolve import DATE_SHAPE

# ---------------------------------------------------------------------------------------- checksums


def luhn_ok(text: str) -> bool:
    digits = [int(c) for c in text if c.isdigit()]
    if len(digits) < 2:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def mod97_ok(text: str) -> bool:
    """ISO 7064 MOD 97-10 over the alphanumerics of `text` (letters count as 10..35)."""
    chars = [c for c in text.upper() if c.isalnum()]
    if len(chars) < 3 or not all(c.isascii() for c in chars):
        return False
    return int("".join(str(int(c, 36)) for c in chars)) % 97 == 1


def iban_ok(text: str) -> bool:
    s = "".join(c for c in text.upper() if c.isalnum())
    if not re.fullmatch(r"[A-Z]{2}\d{2}[A-Z0-9]{10,30}", s):
        return False
    return mod97_ok(s[4:] + s[:4])


CHECKSUMS = {"luhn": luhn_ok, "iban": iban_ok, "mod97": mod97_ok}

# --------------------------------------------------------------------------------- presidio adapters


def offline_tld_extractor() -> Any:
    """tldextract on its bundled public suffix snapshot: its default extractor fetches the list over the
    network on first use."""
    import tldextract

    return tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)


def _offline_email_recognizer(language: str, extract: Any) -> Any:
    """Presidio's EmailRecognizer, validating domains with the offline extractor."""
    from presidio_analyzer.predefined_recognizers import EmailRecognizer

    class OfflineEmailRecognizer(EmailRecognizer):
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None, regex_flags: Any = None) -> Any:
            if "@" not in text:  # the pattern needs one; skip its cost on most texts
                return []
            return super().analyze(text, entities, nlp_artifacts, regex_flags)

        def validate_result(self, pattern_text: str) -> bool:
            return extract(pattern_text).fqdn != ""

    return OfflineEmailRecognizer(supported_language=language)


_URL_TAIL = r"(?:[^\s<>\"'()\[\]{}]*[^\s<>\"'()\[\]{}.,;:!?])?"
URL_PATTERNS = (
    ("url_scheme", r"\b(?:https?|ftp)://[^\s<>\"'()/]+" + r"(?:/" + _URL_TAIL + r")?", 0.6),
    ("url_www", r"\bwww\d{0,3}\.[A-Za-z0-9\-.]+\.[A-Za-z]{2,24}(?::\d{2,5})?(?:/" + _URL_TAIL + r")?", 0.5),
    ("domain", r"(?<![\w@.\-/])(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?::\d{2,5})?"
               r"(?:/" + _URL_TAIL + r")?(?![\w@\-])", 0.5),
)


def _url_recognizer(language: str, extract: Any) -> Any:
    """URLs and bare domains: a few linear patterns, the domain's public suffix checked offline (instead of
    Presidio's UrlRecognizer, whose alternation of 1,000 TLDs costs more than the spaCy pass)."""
    from presidio_analyzer import Pattern, PatternRecognizer

    class FastUrlRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            host = re.sub(r"^[a-z]+://", "", pattern_text, flags=re.IGNORECASE).split("/", 1)[0].split(":", 1)[0]
            if re.fullmatch(r"[\d.]+", host):
                return None  # an IP host: the IP recogniser reports the address itself
            parts = extract(host)
            return None if parts.suffix and parts.domain else False

    return FastUrlRecognizer(supported_entity="URL", name="UrlRecognizer", supported_language=language,
                             patterns=[Pattern(n, rx, sc) for n, rx, sc in URL_PATTERNS],
                             context=["url", "website", "site", "link", "visit", "domain", "web"],
                             global_regex_flags=re.MULTILINE)


def _phone_recognizer(language: str, regions: Sequence[str]) -> Any:
    """Presidio's PhoneRecognizer scans the whole text once per region with phonenumbers' matcher; this
    one finds number-shaped candidates once and asks phonenumbers which region (if any) makes each a
    valid number. Same entity, same score (0.4) and context words."""
    import phonenumbers
    from presidio_analyzer import RecognizerResult
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    cand = re.compile(r"(?<![\w+])(?:\+|00)?\(?\d{1,4}\)?(?:[ .\-/]{0,2}\(?\d{1,6}\)?){1,6}"
                      r"(?:[ ]?(?:x|ext\.?)[ ]?\d{1,5})?(?![\w])")

    def matches(number: str) -> list[tuple[int, int]]:
        """Spans phonenumbers' matcher (leniency VALID, as Presidio uses it) finds in a candidate, trying
        the regions in order until one yields a match."""
        for region in regions:
            found = [(m.start, m.end) for m in phonenumbers.PhoneNumberMatcher(number, region, leniency=1)]
            if found:
                return found
        return []

    class FastPhoneRecognizer(PhoneRecognizer):
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            out = []
            for m in cand.finditer(text):
                value = m.group(0).rstrip(" .-/")
                if not 7 <= sum(c.isdigit() for c in value) <= 17:
                    continue
                for ms, me in matches(value):
                    out.append(RecognizerResult(self.supported_entities[0], m.start() + ms, m.start() + me, self.SCORE,
                                                analysis_explanation=self._get_analysis_explanation("any"),
                                                recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                                      RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
            return out

    return FastPhoneRecognizer(supported_language=language, supported_regions=tuple(regions), name="PhoneRecognizer")


def _custom_recognizer(d: RecognizerDef, language: str) -> Any:
    from presidio_analyzer import Pattern, PatternRecognizer

    check = CHECKSUMS.get(d.checksum)
    flags = re.DOTALL | re.MULTILINE | (0 if d.case_sensitive else re.IGNORECASE)

    class CustomRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            if check is None:
                return None
            return check(pattern_text)

    pats = [Pattern(p.name or f"{d.name}_{i}", p.regex, p.score) for i, p in enumerate(d.patterns)]
    return CustomRecognizer(supported_entity=d.entity, name=d.name, supported_language=language,
                            patterns=pats or None, deny_list=d.deny_list or None, context=d.context or None,
                            deny_list_score=d.deny_list_score, global_regex_flags=flags)


# Loose phone shapes that phonenumbers rejects (made-up or local numbers): only with a context word nearby.
LOOSE_PHONE = (r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]\d{2,5}){1,4}(?:[ ]?x\d{1,5})?(?![\w-])"
               r"|(?<![\w+])\d{9,11}(?!\w)")
PHONE_CONTEXT = ["phone", "call", "number", "tel", "telephone", "mobile", "cell", "fax", "reach", "contact", "dial",
                 "text", "whatsapp", "ring"]
# "my name is X", "Mr X", "Dr. X Y": the capitalised words after a cue.
PERSON_CUE = (r"(?:\b(?:[Mm]y|[Hh]is|[Hh]er|[Tt]heir) name is|\bI am|\bI'm|\b[Nn]amed|\b[Cc]all me|"
              r"\b(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof|Sir|Madam)\.?|\b(?:Dear|Hi|Hello|Hey|Thanks|Regards|Sincerely|Cheers),?)[ \t]+"
              r"((?:[A-Z][\w'’-]+|[A-Z]\.)(?:[ \t]+(?:[A-Z][\w'’-]+|[A-Z]\.)){0,3})")


# Card numbers Presidio's CreditCardRecognizer leaves out: 19-digit Visa, Mastercard 2-series, 12-19 digit
# Maestro, 15-digit JCB (2131/1800), UnionPay. Luhn-checked and matched against the issuer prefixes below.
_CARD_IIN = re.compile(r"^(?:4|5[0-5]|5[6-9]|6\d|2(?:2[2-9]|[3-6]\d|7[01]|720)|2131|1800|3[0-9])")
_CARD_LONG = r"(?<![\d-])(?:\d{4}[ -]?){3}\d{3,4}(?:[ -]?\d{1,3})?(?![\d-])|(?<![\d-])\d{4}[ -]?\d{6}[ -]?\d{5}(?![\d-])"
_CARD_SHORT = r"(?<![\d-])\d{12,14}(?![\d-])"
CARD_CONTEXT = ["card", "credit", "debit", "visa", "mastercard", "maestro", "amex", "jcb", "discover", "payment",
                "cc", "expiry", "cvv"]


def _extra_card_recognizer(language: str) -> Any:
    from presidio_analyzer import Pattern, PatternRecognizer

    class ExtraCardRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            digits = "".join(c for c in pattern_text if c.isdigit())
            ok = 12 <= len(digits) <= 19 and bool(_CARD_IIN.match(digits)) and luhn_ok(digits)
            return None if ok else False  # None keeps the pattern's score

    return ExtraCardRecognizer(supported_entity="CREDIT_CARD", name="ExtraCardRecognizer", supported_language=language,
                               patterns=[Pattern("card_15_19", _CARD_LONG, 0.6), Pattern("card_12_14", _CARD_SHORT, 0.3)],
                               context=CARD_CONTEXT, global_regex_flags=re.MULTILINE)


def _address_recognizer(language: str) -> Any:
    """Postal address blocks and place names after residence/travel verbs (detectors/pii/address.py)."""
    from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

    class AddressRecognizer(LocalRecognizer):
        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            meta = {"recognizer_name": self.name, "recognizer_identifier": self.id}
            return [RecognizerResult("LOCATION", s, e, sc, analysis_explanation=AnalysisExplanation(self.name, sc),
                                     recognition_metadata=dict(meta))
                    for s, e, sc in (*find_addresses(text), *find_places(text))]

    return AddressRecognizer(supported_entities=["LOCATION"], name="StreetAddressRecognizer", supported_language=language)


def _loose_phone_recognizer(language: str) -> Any:
    from presidio_analyzer import Pattern, PatternRecognizer

    class LoosePhoneRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            # None keeps the pattern's score (True would raise it to 1.0); False rejects.
            digits = sum(c.isdigit() for c in pattern_text)
            return None if 7 <= digits <= 15 and not DATE_SHAPE.fullmatch(pattern_text.strip()) else False

    return LoosePhoneRecognizer(supported_entity="PHONE_NUMBER", name="LoosePhoneRecognizer",
                                supported_language=language, patterns=[Pattern("loose_phone", LOOSE_PHONE, 0.3)],
                                context=PHONE_CONTEXT, global_regex_flags=re.MULTILINE)


def _person_cue_recognizer(language: str) -> Any:
    from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

    rx = re.compile(PERSON_CUE)
    stop = {"A", "An", "The", "I", "In", "On", "At", "Not", "So", "Very", "Just", "Here", "Sorry", "Glad", "Happy",
            "Looking", "Going", "Trying", "Writing", "Calling", "From", "Also", "Still", "Now", "Currently", "Interested",
            "All", "Everyone", "There", "Team", "Sir", "Madam", "Guys", "Folks", "Again", "For", "To", "And", "Thanks",
            "Thank", "You", "Please", "Customer", "Support", "Hello", "Hi", "Good", "Morning", "Afternoon", "Evening",
            "Friend", "Friends", "Colleagues", "World", "Best", "Kind", "Warm", "Regards", "Yes", "No", "Ok", "Okay"}

    class PersonCueRecognizer(LocalRecognizer):
        def load(self) -> None:
            return None

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            out = []
            for m in rx.finditer(text):
                words = m.group(1).split()
                while words and words[0].rstrip(".,") in stop:
                    words.pop(0)
                if not words:
                    continue
                start = m.start(1) + m.group(1).find(words[0])
                end = m.end(1)
                value = text[start:end].rstrip(".,")
                out.append(RecognizerResult("PERSON", start, start + len(value), 0.7,
                                            analysis_explanation=AnalysisExplanation(self.name, 0.7),
                                            recognition_metadata={"recognizer_name": self.name,
                                                                  "recognizer_identifier": self.id}))
            return out

    return PersonCueRecognizer(supported_entities=["PERSON"], name="PersonCueRecognizer", supported_language=language)


# Country names that are also common words or given names: left to NER, which sees the context.
_AMBIGUOUS_COUNTRIES = {"Chad", "Jordan", "Georgia", "Turkey", "Guinea", "Niger", "Jersey", "Dominica", "Israel",
                        "Mali", "Cuba", "Peru", "Oman", "Togo", "Iran", "Iraq", "China", "Japan", "Panama"}


def country_names() -> list[str]:
    """English country and territory names, from phonenumbers' bundled locale data (offline)."""
    from phonenumbers.geodata.locale import LOCALE_DATA

    out: set[str] = set()
    for names in LOCALE_DATA.values():
        name = names.get("en", "")
        while name.startswith("*"):
            name = names.get(name[1:], "")
        name = name.strip()
        if name and "(" not in name and name not in _AMBIGUOUS_COUNTRIES:
            out.add(name)
    out |= {"USA", "U.S.A.", "UK", "U.K.", "Britain", "Great Britain", "England", "Scotland", "Wales",
            "Northern Ireland", "Holland", "Czechia", "South Korea", "North Korea", "Russia", "Vietnam"}
    return sorted(out)


def _country_recognizer(language: str) -> Any:
    from presidio_analyzer import PatternRecognizer

    names = country_names()
    # deny_list matches whole words; case-sensitive so "jersey" or "turkey" in lower case never match, but
    # upper-case forms ("CANADA" in an address block) do.
    terms = sorted(set(names) | {n.upper() for n in names if len(n) > 4})
    return PatternRecognizer(supported_entity="LOCATION", name="CountryRecognizer", supported_language=language,
                             deny_list=terms, deny_list_score=0.7, global_regex_flags=re.MULTILINE)


def build_recognizers(opts: PiiOptions) -> list[Any]:
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        CryptoRecognizer,
        DateRecognizer,
        IbanRecognizer,
        IpRecognizer,
        SpacyRecognizer,
        UsBankRecognizer,
        UsSsnRecognizer,
    )

    lang = opts.language
    wanted = set(opts.wanted_entities())
    extract = offline_tld_extractor()
    recs: list[Any] = []
    ner = [e for e in (*NER_ENTITIES, *OPTIONAL_ENTITIES) if e in wanted]
    if ner:
        recs.append(SpacyRecognizer(supported_language=lang, supported_entities=ner, ner_strength=opts.ner_score))
    makers = {
        "EMAIL_ADDRESS": lambda: _offline_email_recognizer(lang, extract),
        "PHONE_NUMBER": lambda: _phone_recognizer(lang, opts.phone_regions),
        "CREDIT_CARD": lambda: CreditCardRecognizer(supported_language=lang),
        "US_SSN": lambda: UsSsnRecognizer(supported_language=lang),
        "IBAN_CODE": lambda: IbanRecognizer(supported_language=lang),
        "IP_ADDRESS": lambda: IpRecognizer(supported_language=lang),
        "URL": lambda: _url_recognizer(lang, extract),
        "US_BANK_NUMBER": lambda: UsBankRecognizer(supported_language=lang),
        "CRYPTO": lambda: CryptoRecognizer(supported_language=lang),
    }
    for entity, make in makers.items():
        if entity in wanted:
            recs.append(make())
    if "DATE_TIME" in wanted:
        recs.append(DateRecognizer(supported_language=lang))
    if "CREDIT_CARD" in wanted:
        recs.append(_extra_card_recognizer(lang))
    if "LOCATION" in wanted:
        recs.append(_address_recognizer(lang))
        if lang == "en":
            recs.append(_country_recognizer(lang))
    if "PHONE_NUMBER" in wanted:
        recs.append(_loose_phone_recognizer(lang))
    if "PERSON" in wanted:
        recs.append(_person_cue_recognizer(lang))
    recs.extend(_custom_recognizer(d, lang) for d in opts.recognizers if d.entity in wanted)
    return recs
