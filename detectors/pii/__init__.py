"""PII detector (`type: pii`): Presidio's AnalyzerEngine on the runtime's shared spaCy pipeline.

Layout (each module imports only the ones above it in this list; none imports this package's names):

* ``public``: separated card/SSN numbers, public places, lone names (pure functions, the gazetteer in
  detectors/data/places.json).
* ``spans``: PERSON and DATE_TIME boundary fixes (pure functions).
* ``address``: postal address blocks and places after residence/travel verbs (pure functions).
* ``options``: built-in entity types, the spaCy label mapping, ``PiiOptions`` and custom recogniser models.
* ``resolve``: overlaps between findings, merged address blocks, name lists and propagation, spans back
  on the original text (pure functions).
* ``recognizers``: checksums and the Presidio recognisers built from the options.
* ``analyzer``: the AnalyzerEngine on an NLP engine wrapping the shared spaCy pipeline.
* ``detector``: ``PiiDetector`` and the registry entry ``TYPE``.

Presidio and spaCy are imported inside the factories, never when this package is imported.
"""

from __future__ import annotations

from detectors.pii.analyzer import build_analyzer
from detectors.pii.detector import TYPE, PiiDetector
from detectors.pii.options import (
    BUILTIN_ENTITIES,
    DEFAULT_ENTITIES,
    DEFAULT_PHONE_REGIONS,
    ENTITY_RE,
    NER_ENTITIES,
    NER_MAPPING,
    OPTIONAL_ENTITIES,
    PATTERN_ENTITIES,
    PatternDef,
    PiiOptions,
    RecognizerDef,
)
from detectors.pii.public import LONE_NAME, PUBLIC_PLACE, LoneNames, PublicPlaces
from detectors.pii.recognizers import (
    CARD_CONTEXT,
    CHECKSUMS,
    LOOSE_PHONE,
    PERSON_CUE,
    PHONE_CONTEXT,
    URL_PATTERNS,
    build_recognizers,
    country_names,
    iban_ok,
    luhn_ok,
    mod97_ok,
    offline_tld_extractor,
)
from detectors.pii.resolve import complete_name_lists, merge_locations, propagate_names, resolve_overlaps, to_original

__all__ = [
    "BUILTIN_ENTITIES", "CARD_CONTEXT", "CHECKSUMS", "DEFAULT_ENTITIES", "DEFAULT_PHONE_REGIONS", "ENTITY_RE",
    "LONE_NAME", "LOOSE_PHONE", "NER_ENTITIES", "NER_MAPPING", "OPTIONAL_ENTITIES", "PATTERN_ENTITIES", "PERSON_CUE",
    "PHONE_CONTEXT", "PUBLIC_PLACE", "TYPE", "URL_PATTERNS", "LoneNames", "PatternDef", "PiiDetector", "PiiOptions",
    "PublicPlaces", "RecognizerDef", "build_analyzer", "build_recognizers", "complete_name_lists", "country_names",
    "iban_ok", "luhn_ok", "merge_locations", "mod97_ok", "offline_tld_extractor", "propagate_names",
    "resolve_overlaps", "to_original",
]
