"""trustwall core. Importing this package is cheap: it loads no model and imports no detector.

    from guardrails import guard, Guard, Blocked
"""

from __future__ import annotations

from typing import Any

from guardrails.errors import AccessDenied, Blocked, DetectorError, PolicyError, TrustwallError
from guardrails.types import Action, CallContext, Decision, Finding, Message, Principal

__version__ = "0.1.0"

_LAZY = {
    "guard": "guardrails.inprocess",
    "Guard": "guardrails.inprocess",
    "trustwall_principal": "guardrails.inprocess",
    "build_runtime": "guardrails.runtime",
    "load_policy": "guardrails.policy",
    "Settings": "guardrails.settings",
}

__all__ = [
    "AccessDenied", "Action", "Blocked", "CallContext", "Decision", "DetectorError", "Finding", "Message",
    "PolicyError", "Principal", "TrustwallError", *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'guardrails' has no attribute {name!r}")
