"""The explicit registry of built-in detector types: YAML `type:` name -> DetectorType.

Every built-in type is imported by name here (no module-name strings, no directory scans). Each
detector module is light at import: heavy libraries (spaCy, Presidio, ONNX Runtime) are imported inside
its factory, when a runtime builds it.
"""

from __future__ import annotations

from detectors.bias import TYPE as BIAS
from detectors.copyright import TYPE as COPYRIGHT
from detectors.injection import TYPE as INJECTION
from detectors.keywords import TYPE as KEYWORDS
from detectors.pii import TYPE as PII
from detectors.secrets import TYPE as SECRETS
from detectors.toxicity import TYPE as TOXICITY
from guardrails.detector import DetectorType, Registry

BUILTIN_TYPES: tuple[DetectorType, ...] = (KEYWORDS, BIAS, PII, SECRETS, COPYRIGHT, TOXICITY, INJECTION)


def builtin_registry() -> Registry:
    """A fresh registry of the built-in detector types (no module-level mutable state)."""
    reg = Registry()
    for dtype in BUILTIN_TYPES:
        reg.register(dtype)
    return reg
