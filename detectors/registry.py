"""The explicit registry of built-in detector types: YAML `type:` name -> DetectorType.

Each module listed here is light at import (heavy libraries are imported inside its factory).
"""

from __future__ import annotations

import importlib

from guardrails.detector import Registry

BUILTIN_MODULES: tuple[str, ...] = (
    "detectors.keywords",
    "detectors.bias",
    "detectors.pii",
    "detectors.secrets",
    "detectors.copyright",
    "detectors.toxicity",
    "detectors.injection",
)


def builtin_registry() -> Registry:
    """A fresh registry of the built-in detector types (no module-level mutable state)."""
    reg = Registry()
    for mod_name in BUILTIN_MODULES:
        module = importlib.import_module(mod_name)
        for dtype in getattr(module, "TYPES", (getattr(module, "TYPE", None),)):
            if dtype is not None:
                reg.register(dtype)
    return reg
