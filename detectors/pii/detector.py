"""PII detector: Presidio's AnalyzerEngine on the runtime's shared spaCy pipeline (detectors/nlp.py).

* The spaCy pass runs once per text and call (``detectors.nlp.parse``: one ``nlp.pipe`` batch over all
  messages, off the event loop, memoised so other detectors share the Docs); only the components NER
  needs run. Presidio's recognisers then read those Docs through an NLP engine that wraps the shared
  pipeline and never loads or downloads anything itself.
* Entities: PERSON, EMAIL_ADDRESS, PHONE_NUMBER (international), CREDIT_CARD (Luhn), US_SSN, IBAN_CODE
  (checksum), IP_ADDRESS (v4 and v6), LOCATION, URL, DATE_TIME, US_BANK_NUMBER, CRYPTO, plus custom
  recognisers declared in the policy (regex with optional checksum, context words, deny lists).
* ``Finding.score`` is Presidio's score; thresholds and operators per entity come from the policy rules.
* Allow lists (exact strings, case-insensitive, or regexes matching the whole span) drop findings.
* Evidence holds the recogniser name only, never the matched value.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.types import CallContext, Finding, Stage

from detectors.nlp import DEFAULT_MODEL, SharedNLP, get_nlp, parse
from detectors.pii_public import (
    LONE_NAME,
    PUBLIC_PLACE,
    LoneNames,
    PublicPlaces,
    context_places,
    load_places,
    lone_names,
    public_places,
    separated_numbers,
)
from detectors.pii_spans import join_date_times, tidy_persons
from guardrails.normalize import Normalized, normalize

NER_ENTITIES = ("PERSON", "LOCATION", "DATE_TIME")
PATTERN_ENTITIES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS", "URL",
                    "US_BANK_NUMBER", "CRYPTO")
DEFAULT_ENTITIES = ("PERSON", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE", "IP_ADDRESS",
                    "LOCATION", "URL", "DATE_TIME", "US_BANK_NUMBER", "CRYPTO")
OPTIONAL_ENTITIES = ("ORGANIZATION", "NRP")  # from NER too; off unless listed in `entities`
BUILTIN_ENTITIES = DEFAULT_ENTITIES + OPTIONAL_ENTITIES
# spaCy (OntoNotes / CoNLL) labels -> Presidio entity types.
NER_MAPPING = {"PERSON": "PERSON", "PER": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION",
               "DATE": "DATE_TIME", "TIME": "DATE_TIME", "NORP": "NRP", "ORG": "ORGANIZATION"}
DEFAULT_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "NL", "BE", "CH", "AT", "SE", "DK", "FI", "NO", "IE",
                         "PT", "PL", "AU", "CA", "IN", "IL", "BR", "MX", "JP")
ENTITY_RE = r"^[A-Z][A-Z0-9_]{1,47}$"
_SPACES = re.compile(r"\s+")


# ------------------------------------------------------------------------------------------- options


class PatternDef(Options):
    regex: str = Field(min_length=1, max_length=2000)
    score: float = Field(0.6, ge=0.0, le=1.0)
    name: str | None = None

    @field_validator("regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            rx = re.compile(v)
        except re.error as exc:
            raise ValueError(f"invalid regex {v!r}: {exc}") from None
        if rx.match(""):
            raise ValueError(f"regex {v!r} matches the empty string")
        return v


class RecognizerDef(Options):
    """A custom recogniser declared in the policy."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$")
    entity: str = Field(pattern=ENTITY_RE, description="the category it reports, e.g. EMPLOYEE_ID")
    patterns: list[PatternDef] = Field(default_factory=list)
    checksum: Literal["none", "luhn", "iban", "mod97"] = "none"
    context: list[str] = Field(default_factory=list, description="words near a match that raise its score")
    deny_list: list[str] = Field(default_factory=list, description="exact terms (case-insensitive, whole words)")
    deny_list_score: float = Field(1.0, ge=0.0, le=1.0)
    case_sensitive: bool = False

    @model_validator(mode="after")
    def _something_to_match(self) -> RecognizerDef:
        if not self.patterns and not self.deny_list:
            raise ValueError(f"recognizer {self.name!r} needs at least one of 'patterns' or 'deny_list'")
        if self.checksum != "none" and not self.patterns:
            raise ValueError(f"recognizer {self.name!r}: a checksum applies to patterns, and it has none")
        if any(not t.strip() for t in self.deny_list):
            raise ValueError(f"recognizer {self.name!r}: empty deny_list entry")
        return self


class PiiOptions(Options):
    model: str = Field(DEFAULT_MODEL, min_length=1, description="installed spaCy package or local path")
    language: str = Field("en", pattern=r"^[a-z]{2,3}$")
    entities: list[str] | None = Field(None, description="entity types to report; default: all built-in + custom")
    recognizers: list[RecognizerDef] = Field(default_factory=list)
    allow_list: list[str] = Field(default_factory=list, description="values never reported (case-insensitive)")
    allow_patterns: list[str] = Field(default_factory=list, description="regexes; a finding they fully match is dropped")
    phone_regions: list[str] = Field(default_factory=lambda: list(DEFAULT_PHONE_REGIONS))
    min_score: float = Field(0.3, ge=0.0, le=1.0, description="findings below this are not reported at all")
    ner_score: float = Field(0.85, ge=0.0, le=1.0, description="score given to spaCy NER entities")
    normalize: bool = Field(True, description="match on normalised text (invisible characters, NFKC, homoglyphs); "
                                              "spans map back to the original")
    public_places: PublicPlaces = Field("ignore", description="countries, capitals, continents, major regions and "
                                        "cities outside a personal context: ignore (not reported), flag (reported "
                                        "as PUBLIC_PLACE) or redact (reported as LOCATION)")
    context_places: bool = Field(True, description="with public_places ignore/flag: any place the NER finds on its "
                                 "own, in a sentence with no person and no personal cue, is treated as public too")
    lone_names: LoneNames = Field("redact", description="a one-word name (no title, not introduced with 'my name "
                                  "is') in a request with no other personal data: redact (reported as PERSON, the "
                                  "privacy-first default), flag (reported as LONE_NAME) or ignore (not reported)")

    @field_validator("allow_patterns")
    @classmethod
    def _compile_allow(cls, v: list[str]) -> list[str]:
        for p in v:
            try:
                re.compile(p)
            except re.error as exc:
                raise ValueError(f"invalid allow pattern {p!r}: {exc}") from None
        return v

    @field_validator("phone_regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if not re.fullmatch(r"[A-Z]{2}", r)]
        if bad:
            raise ValueError(f"phone_regions are ISO 3166 alpha-2 codes in capitals, got {bad}")
        return v

    @model_validator(mode="after")
    def _check(self) -> PiiOptions:
        names = [r.name for r in self.recognizers]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"recognizer names must be unique, repeated: {dup}")
        if self.entities is not None:
            known = set(BUILTIN_ENTITIES) | {r.entity for r in self.recognizers}
            unknown = [e for e in self.entities if e not in known]
            if unknown:
                raise ValueError(f"unknown entities {unknown}; known: {sorted(known)}")
        if self.language != "en" and self.model == DEFAULT_MODEL:
            raise ValueError(f"the embedded model is English; name a spaCy model for language {self.language!r}")
        return self

    def wanted_entities(self) -> list[str]:
        if self.entities is not None:
            return list(dict.fromkeys(self.entities))
        return list(dict.fromkeys([*DEFAULT_ENTITIES, *(r.entity for r in self.recognizers)]))


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


def _engine(shared: SharedNLP, language: str) -> Any:
    """A Presidio NLP engine over the shared pipeline: never loads, never downloads."""
    from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine

    class SharedSpacyNlpEngine(SpacyNlpEngine):
        def __init__(self) -> None:
            labels: set[str] = set()
            if "ner" in shared.nlp.pipe_names:
                labels = set(shared.nlp.get_pipe("ner").labels)
            conf = NerModelConfiguration(
                model_to_presidio_entity_mapping=dict(NER_MAPPING),
                labels_to_ignore=sorted(labels - set(NER_MAPPING)),
            )
            super().__init__(models=[{"lang_code": language, "model_name": shared.model_name}],
                             ner_model_configuration=conf)
            self.nlp = {language: shared.nlp}

        def load(self) -> None:  # the pipeline is the runtime's shared one, already loaded
            return None

        def process_text(self, text: str, language: str) -> Any:  # pragma: no cover - we pass artifacts
            return self._doc_to_nlp_artifact(shared.parse_sync([text])[0], language)

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            # Without the lemmatizer (not needed for NER) lemma_ is empty: use the lower-cased text so that
            # Presidio's context words still match.
            lemmas = [t.lemma_ or t.lower_ for t in doc]
            entities, scores = self._get_updated_entities(self._get_entities(doc), self._get_scores_for_entities(doc))
            return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[t.idx for t in doc], lemmas=lemmas,
                                nlp_engine=self, language=language, scores=scores)

    return SharedSpacyNlpEngine()


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
    """Postal address blocks and place names after residence/travel verbs (detectors/pii_address.py)."""
    from presidio_analyzer import AnalysisExplanation, LocalRecognizer, RecognizerResult

    from detectors.pii_address import find_addresses, find_places

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
            return None if 7 <= digits <= 15 and not _DATE_SHAPE.fullmatch(pattern_text.strip()) else False

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


def build_analyzer(shared: SharedNLP, opts: PiiOptions) -> Any:
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry

    registry = RecognizerRegistry(supported_languages=[opts.language])
    for rec in build_recognizers(opts):
        registry.add_recognizer(rec)
    return AnalyzerEngine(registry=registry, nlp_engine=_engine(shared, opts.language),
                          supported_languages=[opts.language])


# ----------------------------------------------------------------------------------------- detector


class PiiDetector:
    """Reports PII spans; the pipeline applies the policy's operators."""

    def __init__(self, name: str, options: PiiOptions, shared: SharedNLP):
        self.name = name
        self.options = options
        self.shared = shared
        self.entities = options.wanted_entities()
        self._analyzer = build_analyzer(shared, options)
        self._engine = self._analyzer.nlp_engine
        self._allow = {_norm(v) for v in options.allow_list}
        self._allow_rx = [re.compile(p, re.IGNORECASE) for p in options.allow_patterns]
        self._places = load_places() if options.public_places != "redact" and "LOCATION" in self.entities else frozenset()
        self._wanted = set(self.entities)

    def info(self) -> dict[str, Any]:
        return {"model": self.shared.model_name, "components": sorted(self.shared.required),
                "entities": self.entities, "device": "cpu", "spacy_batches": self.shared.batch_stats()}

    async def aclose(self) -> None:
        self.shared.close()  # idempotent; a later parse starts a fresh worker

    def _allowed(self, value: str) -> bool:
        if _norm(value) in self._allow:
            return True
        return any(rx.fullmatch(value.strip()) for rx in self._allow_rx)

    def analyze_docs(self, texts: Sequence[str], docs: Sequence[Any]) -> list[list[Finding]]:
        """Synchronous analysis of already parsed texts (runs in a worker thread)."""
        out: list[list[Finding]] = []
        lang = self.options.language
        for text, doc in zip(texts, docs):
            if not text.strip():
                out.append([])
                continue
            artifacts = self._engine._doc_to_nlp_artifact(doc, lang)
            results = self._analyzer.analyze(text=text, language=lang, entities=self.entities,
                                             nlp_artifacts=artifacts, score_threshold=self.options.min_score)
            found = []
            for r in results:
                if r.end <= r.start or self._allowed(text[r.start:r.end]):
                    continue
                rec = (r.recognition_metadata or {}).get("recognizer_name", "")
                if rec == _NER_RECOGNIZER and r.entity_type == "DATE_TIME" and not _concrete_date(text[r.start:r.end]):
                    continue
                if r.entity_type == "PHONE_NUMBER" and not _phone_like(text[r.start:r.end]):
                    continue
                found.append(Finding(self.name, r.entity_type, float(r.score), (int(r.start), int(r.end)),
                                     {"recognizer": rec}))
            found.extend(g for g in separated_numbers(text, self.name, self._wanted)  # new spans only
                         if not any(f.category == g.category and f.span == g.span for f in found))
            found = join_date_times(text, tidy_persons(text, found))
            found = merge_locations(text, complete_name_lists(text, resolve_overlaps(text, found)))
            found = public_places(text, found, self._places, self.options.public_places)
            if self.options.context_places and self._places:
                found = context_places(text, found, self.options.public_places)
            out.append(found)
        return lone_names(texts, propagate_names(texts, out, self.name), self.options.lone_names)

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        if not texts:
            return []
        if not self.options.normalize:
            docs = await parse(ctx, self.shared, texts, stage)
            return await asyncio.to_thread(self.analyze_docs, list(texts), docs)
        # drop_symbols: a word of thousands of emoji is quadratic in spaCy's tokenizer (issue 20)
        norms = [normalize(t, confusables=True, drop_symbols=True) for t in texts]
        seen = [n.text for n in norms]
        docs = await parse(ctx, self.shared, seen, stage)
        results = await asyncio.to_thread(self.analyze_docs, seen, docs)
        return [to_original(n, fl) for n, fl in zip(norms, results)]


# Which finding wins when two overlap: validated structured values beat loose patterns beat NER guesses.
_STRONG = {"EMAIL_ADDRESS", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "CRYPTO", "US_SSN"}
_NER_RECOGNIZER = "SpacyRecognizer"
_NAMES = {"PERSON", "LOCATION", "ORGANIZATION", "NRP"}  # trimmed, not dropped, when a stronger finding cuts in


def _tier(f: Finding) -> int:
    rec = f.evidence.get("recognizer", "")
    if rec == _NER_RECOGNIZER:
        return 1
    if f.category in _STRONG and f.score >= 0.5:
        return 3
    if f.category in BUILTIN_ENTITIES:
        return 2
    return 3  # custom recognisers are explicit policy: treat them as strong


_DATE_SHAPE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
_DATE_WORDS = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.?\b|"
    r"\b(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|\b(?:christmas|easter|new year)", re.IGNORECASE)


def _phone_like(value: str) -> bool:
    """At least 7 digits, and not a date or a timestamp (2000-04-16 11:34)."""
    return sum(c.isdigit() for c in value) >= 7 and not _DATE_SHAPE.match(value.strip())


_NOT_A_DATE = re.compile(r"\b(?:old|age|aged)\b|^\W*\d+\s*\+?\s*(?:years?|yrs?)\b|\b\d+(?:st|nd|rd|th) years?\b",
                         re.IGNORECASE)


def _concrete_date(value: str) -> bool:
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
        if m and f.evidence.get("recognizer") != _NER_RECOGNIZER or (m and (e - s) > 12):
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


def _norm(value: str) -> str:
    return _SPACES.sub(" ", value.strip()).casefold()


def _build(spec: Any, options: PiiOptions, build: BuildContext) -> PiiDetector:
    shared = get_nlp(build.resources, options.model, components=("ner",), stages=spec.stages)
    return PiiDetector(spec.name, options, shared)


TYPE = DetectorType(
    "pii",
    PiiOptions,
    _build,
    categories=(*BUILTIN_ENTITIES, PUBLIC_PLACE, LONE_NAME),
    description="PII (Presidio on the shared spaCy pipeline): names, contact data, cards, IBANs, ids, custom",
)
