"""Text normalisation for detectors, with an offset map back to the original (pure functions).

`normalize(text)` returns the text a detector should match on and a map from every normalised
code point to the original range it came from, so a span found in the normalised text is redacted
in the original (`Normalized.to_original`, then widened to whole grapheme clusters by the caller or
`Normalized.original_span`). Transforms, in order:

* invisible characters dropped: format characters (zero-width space/joiners, soft hyphen, word
  joiner, BOM, bidi controls: Unicode category Cf), variation selectors, the combining grapheme
  joiner and Hangul fillers;
* compatibility forms folded per character with NFKC (fullwidth letters and digits, mathematical
  bold/italic/script letters, circled letters, ligatures); other Unicode decimal digits (Arabic-Indic,
  Devanagari, ...) become ASCII digits; small capitals become lower-case letters;
* `confusables=True`: Cyrillic/Greek letters that look Latin are mapped to Latin inside a word that
  also has Latin letters or an "@" (so "jоhn@exаmple.com" matches, and "Москва" stays Cyrillic);
* `drop_symbols=True` (PII): a run of pictographs (emoji, skin tones, other symbols) becomes one
  space. They carry no personal data, and each costs spaCy several tokens: a word of thousands of
  emoji is quadratic in spaCy's tokenizer and held the parser thread for a minute (issue 20);
* `leet=True` (toxicity only): digits and symbols inside words read as letters ("1d10t" -> "idiot"),
  and single letters joined by separators ("s.h.i.t", "f u c k") are joined.

Lone surrogates and unassigned code points pass through unchanged. Time is linear in the text.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INVISIBLE_EXTRA = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u3164\uffa0")
SMALL_CAPS = dict(zip("ᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘꞯʀꜱᴛᴜᴠᴡʏᴢ", "abcdefghijklmnopqrstuvwyz", strict=True))
# Cyrillic and Greek letters that render like Latin ones (after NFKC).
CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "м": "m", "н": "h",
    "о": "o", "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T", "Х": "X",
    "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S", "Ԁ": "D", "Ԛ": "Q", "Ԝ": "W",
    "α": "a", "β": "b", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P",
    "Τ": "T", "Υ": "Y", "Χ": "X",
}
LEET = {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b", "9": "g", "@": "a", "$": "s",
        "!": "i", "|": "l", "+": "t", "€": "e"}
_LEET_WORD = re.compile(r"[A-Za-z0-9@$!|+€]+")
_SPACED_LETTERS = re.compile(r"(?<![A-Za-z])[A-Za-z](?:(?:[.\-_*]|[ ])[A-Za-z](?![A-Za-z])){2,}")
_SEPARATOR = re.compile(r"[.\-_* ]")
_WORD = re.compile(r"\S+")
_SYMBOL_CATS = frozenset({"So", "Sk", "Co"})


def _invisible(ch: str, cat: str) -> bool:
    o = ord(ch)
    return (cat == "Cf" or ch in INVISIBLE_EXTRA or 0xFE00 <= o <= 0xFE0F or 0xE0100 <= o <= 0xE01EF
            or 0xE0000 <= o <= 0xE007F)


def _fold(ch: str) -> str:
    """One character's folded form (possibly several characters, possibly itself)."""
    if ch.isdecimal() and not ch.isascii():
        return str(unicodedata.decimal(ch))
    if ch in SMALL_CAPS:
        return SMALL_CAPS[ch]
    try:
        out = unicodedata.normalize("NFKC", ch)
    except (UnicodeError, ValueError):  # pragma: no cover - defensive: lone surrogates normalise as-is
        return ch
    if out and all(c.isdecimal() and not c.isascii() for c in out):
        out = "".join(str(unicodedata.decimal(c)) for c in out)
    return out or ch


@dataclass(frozen=True)
class Normalized:
    """A normalised text and, per normalised code point, the original [start, end) it came from.

    `starts`/`ends` are None when the text is unchanged (identity map)."""

    text: str
    original: str
    starts: tuple[int, ...] | None = None
    ends: tuple[int, ...] | None = None

    @property
    def changed(self) -> bool:
        return self.starts is not None

    def to_original(self, span: tuple[int, int]) -> tuple[int, int]:
        """The original range covering normalised `span` (clamped; empty spans stay empty)."""
        n = len(self.text)
        s, e = max(0, min(span[0], n)), max(0, min(span[1], n))
        if e < s:
            s, e = e, s
        if self.starts is None or self.ends is None:
            return s, e
        if s == e:
            pos = self.starts[s] if s < n else len(self.original)
            return pos, pos
        return self.starts[s], max(self.ends[e - 1], self.starts[s])

    def original_span(self, span: tuple[int, int]) -> tuple[int, int]:
        """`to_original`, widened to whole grapheme clusters of the original text."""
        from guardrails.spans import snap

        return snap(self.to_original(span), self.original)

    def original_offset(self, pos: int) -> int:
        """The original offset of normalised position `pos` (for callers mapping single points)."""
        if self.starts is None:
            return max(0, min(pos, len(self.original)))
        if pos >= len(self.text):
            return len(self.original)
        return self.starts[max(0, pos)]


def normalize(text: str, *, confusables: bool = True, leet: bool = False,
              drop_symbols: bool = False) -> Normalized:
    """The detector view of `text`; see the module docstring."""
    if text.isascii() and not leet:
        return Normalized(text, text)
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    folds: dict[str, str] = {}  # per call: the same few characters repeat
    for i, ch in enumerate(text):
        if ch.isascii():
            chars.append(ch)
            starts.append(i)
            ends.append(i + 1)
            continue
        cat = unicodedata.category(ch)
        if _invisible(ch, cat):
            continue
        out = folds.get(ch)
        if out is None:
            out = ch if cat in ("Cs", "Cn", "Co") else _fold(ch)
            folds[ch] = out
        if drop_symbols and cat in _SYMBOL_CATS and not any(c.isalnum() for c in out):
            if chars and not chars[-1].isspace():
                chars.append(" ")  # one space stands for the run; it maps to the empty range at i
                starts.append(i)
                ends.append(i)
            continue
        for c in out:
            chars.append(c)
            starts.append(i)
            ends.append(i + 1)
    out_text = "".join(chars)
    if confusables:
        out_text = _map_confusables(out_text)
    if leet:
        out_text = _map_leet(out_text)
        out_text, starts, ends = _join_spaced_letters(out_text, starts, ends)
    if out_text == text:
        return Normalized(text, text)
    return Normalized(out_text, text, tuple(starts), tuple(ends))


def _map_confusables(text: str) -> str:
    if not any(c in CONFUSABLES for c in text):
        return text
    parts: list[str] = []
    pos = 0
    for m in _WORD.finditer(text):
        word = m.group(0)
        if any(c in CONFUSABLES for c in word) and ("@" in word or any("a" <= c.lower() <= "z" for c in word)):
            parts.append(text[pos:m.start()])
            parts.append("".join(CONFUSABLES.get(c, c) for c in word))
            pos = m.end()
    parts.append(text[pos:])
    return "".join(parts)


def _map_leet(text: str) -> str:
    def fix(m: re.Match[str]) -> str:
        full = m.group(0)
        w = full.rstrip("!")
        tail = full[len(w):]
        letters = sum(c.isalpha() for c in w)
        if letters == 0 or (letters < 2 and len(w) < 3) or w.isdigit():
            return full
        return "".join(LEET.get(c, c) for c in w) + tail

    return _LEET_WORD.sub(fix, text)


def _join_spaced_letters(text: str, starts: list[int], ends: list[int]) -> tuple[str, list[int], list[int]]:
    """Drop the separators of "s.h.i.t" / "f u c k" (3+ single letters); offsets follow."""
    drop: set[int] = set()
    for m in _SPACED_LETTERS.finditer(text):
        drop.update(m.start() + k.start() for k in _SEPARATOR.finditer(m.group(0)))
    if not drop:
        return text, starts, ends
    keep = [i for i in range(len(text)) if i not in drop]
    return "".join(text[i] for i in keep), [starts[i] for i in keep], [ends[i] for i in keep]


def fold_for_toxicity(text: str) -> str:
    """The text a toxicity scorer should read: invisible characters gone, styled letters folded,
    homoglyphs and leetspeak read as letters. Same meaning, no offsets (the caller keeps its spans)."""
    return normalize(text, confusables=True, leet=True).text


def map_spans(norm: Normalized, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Original, grapheme-widened spans for normalised spans (empty results dropped)."""
    out = []
    for sp in spans:
        o = norm.original_span(sp)
        if o[1] > o[0]:
            out.append(o)
    return out


__all__ = ["Normalized", "normalize", "fold_for_toxicity", "map_spans", "CONFUSABLES", "LEET"]
