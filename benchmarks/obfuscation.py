"""Shared perturbation generators for obfuscation benchmarks (issue 16 item 2, issue 20 item 5).

`PERTURBATIONS`: name -> function(value, rng) -> the value as an attacker would disguise it.
`styled(text, rng)`: a toxic sentence in leetspeak / Unicode-styled letters (one of `STYLES`).
Pure functions; the same seed gives the same cases.
"""

from __future__ import annotations

import base64
import random
from collections.abc import Callable

Perturb = Callable[[str, random.Random], str]

HOMOGLYPHS = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "y": "у", "i": "і", "j": "ј", "s": "ѕ",
              "A": "А", "B": "В", "E": "Е", "K": "К", "M": "М", "H": "Н", "O": "О", "P": "Р", "C": "С", "T": "Т"}


def _insert(value: str, rng: random.Random, ch: str, k: int = 3) -> str:
    if len(value) < 2:
        return value
    cuts = sorted(rng.sample(range(1, len(value)), min(k, len(value) - 1)))
    out, pos = [], 0
    for c in cuts:
        out.append(value[pos:c])
        out.append(ch)
        pos = c
    out.append(value[pos:])
    return "".join(out)


def zero_width(value: str, rng: random.Random) -> str:
    return _insert(value, rng, rng.choice(["\u200b", "\u200c", "\u200d"]))


def soft_hyphen(value: str, rng: random.Random) -> str:
    return _insert(value, rng, "\u00ad")


def word_joiner(value: str, rng: random.Random) -> str:
    return _insert(value, rng, "\u2060")


def bom(value: str, rng: random.Random) -> str:
    return _insert(value, rng, "\ufeff", k=2)


def fullwidth_digits(value: str, rng: random.Random) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in value)


def homoglyph(value: str, rng: random.Random) -> str:
    idx = [i for i, c in enumerate(value) if c in HOMOGLYPHS]
    pick = set(rng.sample(idx, min(len(idx), max(1, len(idx) // 3)))) if idx else set()
    return "".join(HOMOGLYPHS[c] if i in pick else c for i, c in enumerate(value))


def separators(value: str, rng: random.Random) -> str:
    """Digits regrouped with spaces, dots or dashes (card numbers, SSNs)."""
    digits = [c for c in value if c.isdigit()]
    if len(digits) < 6 or len(value) != sum(c.isdigit() or c in " -." for c in value):
        return value  # not a pure number
    out, run = [], 0
    for i, d in enumerate(digits):
        out.append(d)
        run += 1
        if i < len(digits) - 1 and run >= rng.randint(2, 4):
            out.append(rng.choice([" ", ".", "-", " . ", " - "]))
            run = 0
    return "".join(out)


def base64_encoded(value: str, rng: random.Random) -> str:
    return base64.b64encode(value.encode()).decode()


def url_encoded(value: str, rng: random.Random) -> str:
    return "".join(f"%{b:02X}" for b in value.encode())


PERTURBATIONS: dict[str, Perturb] = {
    "zero_width": zero_width, "soft_hyphen": soft_hyphen, "word_joiner": word_joiner, "bom": bom,
    "fullwidth_digits": fullwidth_digits, "homoglyph": homoglyph, "separators": separators,
    "base64": base64_encoded, "url": url_encoded,
}
PII_TECHNIQUES = ("zero_width", "soft_hyphen", "word_joiner", "bom", "fullwidth_digits", "homoglyph", "separators")
SECRET_TECHNIQUES = ("zero_width", "base64", "url")

# Unicode-styled alphabets (lower-case a..z offsets into the Mathematical Alphanumeric Symbols block, etc.)
_MATH = {"bold": 0x1D41A, "italic": 0x1D44E, "bold_italic": 0x1D482, "script_bold": 0x1D4EA, "fraktur_bold": 0x1D586,
         "sans_bold": 0x1D5EE, "monospace": 0x1D68A}
_SMALL_CAPS = dict(zip("abcdefghijklmnopqrstuvwyz", "ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", strict=True))
_LEET = {"a": "4", "e": "3", "i": "1", "o": "0", "s": "5", "t": "7"}


def _math(text: str, base: int) -> str:
    return "".join(chr(base + ord(c) - 97) if "a" <= c <= "z" else c for c in text.lower())


def _styles() -> dict[str, Callable[[str, random.Random], str]]:
    out: dict[str, Callable[[str, random.Random], str]] = {
        name: (lambda t, r, b=base: _math(t, b)) for name, base in _MATH.items()}
    out["circled"] = lambda t, r: "".join(chr(0x24D0 + ord(c) - 97) if "a" <= c <= "z" else c for c in t.lower())
    out["fullwidth"] = lambda t, r: "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in t)
    out["small_caps"] = lambda t, r: "".join(_SMALL_CAPS.get(c, c) for c in t.lower())
    out["leetspeak"] = lambda t, r: "".join(_LEET.get(c, c) if r.random() < 0.7 else c for c in t.lower())
    out["spaced"] = lambda t, r: " ".join(".".join(w) if len(w) > 3 and r.random() < 0.5 else w for w in t.split())
    out["homoglyph"] = lambda t, r: homoglyph(t, r)
    out["zero_width"] = lambda t, r: " ".join(zero_width(w, r) if len(w) > 2 else w for w in t.split())
    return out


STYLES = _styles()


def styled(text: str, rng: random.Random, style: str | None = None) -> str:
    """`text` in one style (random when not named)."""
    name = style or rng.choice(sorted(STYLES))
    return STYLES[name](text, rng)
