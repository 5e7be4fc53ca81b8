"""Reversible pseudonymisation for one conversation: <PERSON_1> <-> the original value.

A Vault belongs to one call context. It is never global, never logged and never audited. The same
value (compared case- and whitespace-insensitively) always maps to the same placeholder. Restoration
is exact-match and tolerant of case and whitespace inside the placeholder ("<person_1>",
"< PERSON_1 >"), and incremental: a Restorer can be fed stream chunks, and placeholders split across
chunks still come out right.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

_WS = re.compile(r"\s+")
# A placeholder as models may echo it back: angle brackets, optional spaces, CATEGORY_N.
PLACEHOLDER_RE = re.compile(r"<\s*([A-Za-z][A-Za-z0-9_]*?)\s*_\s*(\d+)\s*>")
MAX_PLACEHOLDER_LEN = 64  # longest prefix we hold back while waiting for a placeholder to close


def placeholder_category(category: str) -> str:
    """The form a category takes inside placeholders (and in restore permissions): PERSON, CREDIT_CARD."""
    return re.sub(r"[^A-Za-z0-9]", "_", category.upper()) or "ENTITY"


def _norm(value: str) -> str:
    return _WS.sub(" ", value.strip()).casefold()


class Vault:
    """Mapping for one conversation. Thread-safe; cheap to create."""

    __slots__ = ("_by_value", "_by_key", "_counters", "_reserved", "_lock")

    def __init__(self) -> None:
        self._by_value: dict[tuple[str, str], str] = {}
        self._by_key: dict[str, tuple[str, str]] = {}  # "PERSON_1" -> (category, original)
        self._counters: dict[str, int] = {}
        self._reserved: set[str] = set()  # placeholders the caller typed: never handed out, never restored
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:  # never show values
        return f"Vault({len(self)} entries)"

    def pseudonym(self, category: str, value: str) -> str:
        cat = placeholder_category(category)
        key = (cat, _norm(value))
        with self._lock:
            existing = self._by_value.get(key)
            if existing is not None:
                return f"<{existing}>"
            n = self._counters.get(cat, 0) + 1
            while f"{cat}_{n}" in self._reserved:
                n += 1
            self._counters[cat] = n
            name = f"{cat}_{n}"
            self._by_value[key] = name
            self._by_key[name] = (cat, value)
            return f"<{name}>"

    def reserve(self, text: str) -> None:
        """Keep every placeholder-shaped string already in `text` (one the caller typed, or one a tool
        result carried) out of this vault, so a model echoing it back never gets a value restored."""
        found = {f"{placeholder_category(m.group(1))}_{int(m.group(2))}" for m in PLACEHOLDER_RE.finditer(text)}
        if found:
            with self._lock:
                self._reserved |= found - set(self._by_key)

    def lookup(self, category: str, number: str) -> tuple[str, str] | None:
        return self._by_key.get(f"{category.upper()}_{int(number)}")

    def categories(self) -> set[str]:
        return {c for c, _ in self._by_key.values()}

    def restore(self, text: str, allowed: Callable[[str], bool] | None = None) -> str:
        """Replace every known placeholder whose category `allowed` permits."""
        def sub(m: re.Match[str]) -> str:
            hit = self.lookup(m.group(1), m.group(2))
            if hit is None or (allowed is not None and not allowed(hit[0])):
                return m.group(0)
            return hit[1]

        return PLACEHOLDER_RE.sub(sub, text)

    def restorer(self, allowed: Callable[[str], bool] | None = None) -> Restorer:
        return Restorer(self, allowed)


class Restorer:
    """Incremental restoration for streams: feed chunks, get text that is safe to emit."""

    def __init__(self, vault: Vault, allowed: Callable[[str], bool] | None = None):
        self._vault = vault
        self._allowed = allowed
        self._pending = ""

    def feed(self, chunk: str) -> str:
        text = self._pending + chunk
        cut = _incomplete_tail(text)
        self._pending = text[cut:]
        return self._vault.restore(text[:cut], self._allowed)

    def flush(self) -> str:
        text, self._pending = self._pending, ""
        return self._vault.restore(text, self._allowed)


_PARTIAL_RE = re.compile(r"<\s*(?:[A-Za-z][A-Za-z0-9_]*)?\s*(?:_\s*\d*\s*)?$")


def _incomplete_tail(text: str) -> int:
    """Index where a possibly-unfinished placeholder starts (len(text) when there is none)."""
    start = text.rfind("<", max(0, len(text) - MAX_PLACEHOLDER_LEN))
    if start == -1:
        return len(text)
    tail = text[start:]
    if ">" in tail:
        return len(text)
    return start if _PARTIAL_RE.fullmatch(tail) else len(text)

