"""PII detector options: the built-in entity types, spaCy label mapping, phone regions, and the policy's
option models (custom recognisers with their patterns, allow lists, public places, lone names).

Pure pydantic models and constants; nothing here imports Presidio or spaCy.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from guardrails.detector import Options

from detectors.nlp import DEFAULT_MODEL
from detectors.pii.public import LoneNames, PublicPlaces

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
