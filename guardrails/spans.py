"""Pure span arithmetic: grapheme-safe boundaries, merging, and applying replacements."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import regex

T = TypeVar("T")
_GRAPHEME = regex.compile(r"\X")


def grapheme_boundaries(text: str) -> list[int]:
    """Sorted code-point offsets where grapheme clusters start, plus len(text)."""
    if text.isascii():
        return list(range(len(text) + 1))
    out = [m.start() for m in _GRAPHEME.finditer(text)]
    out.append(len(text))
    return out


def snap(span: tuple[int, int], text: str, bounds: list[int] | None = None) -> tuple[int, int]:
    """Clamp a span into the text and widen it to whole grapheme clusters (so a redaction never
    leaves half an emoji or an orphan combining mark behind)."""
    start, end = max(0, min(span[0], len(text))), max(0, min(span[1], len(text)))
    if end < start:
        start, end = end, start
    if text.isascii():
        return start, end
    import bisect

    b = bounds if bounds is not None else grapheme_boundaries(text)
    i = bisect.bisect_right(b, start) - 1
    j = bisect.bisect_left(b, end)
    return b[max(i, 0)], b[min(j, len(b) - 1)]


def merge_spans(items: Sequence[tuple[tuple[int, int], T]], *, rank: Callable[[T], tuple]) -> list[tuple[tuple[int, int], T]]:
    """Merge overlapping and adjacent spans. Each merged span keeps the item with the highest rank."""
    ordered = sorted(items, key=lambda it: (it[0][0], -it[0][1]))
    out: list[tuple[tuple[int, int], T]] = []
    for (s, e), item in ordered:
        if out and s <= out[-1][0][1]:
            (ps, pe), pitem = out[-1]
            keep = item if rank(item) > rank(pitem) else pitem
            out[-1] = ((ps, max(pe, e)), keep)
        else:
            out.append(((s, e), item))
    return out


def apply_replacements(text: str, items: Sequence[tuple[tuple[int, int], T]], render: Callable[[T, str], str],
                       *, rank: Callable[[T], tuple] = lambda _: ()) -> str:
    """Replace each (merged, grapheme-snapped) span by render(item, original_span_text).

    Text outside the spans is copied unchanged."""
    if not items:
        return text
    bounds = None if text.isascii() else grapheme_boundaries(text)
    snapped = [(snap(span, text, bounds), item) for span, item in items if span[1] > span[0]]
    snapped = [(sp, it) for sp, it in snapped if sp[1] > sp[0]]
    merged = merge_spans(snapped, rank=rank)
    parts: list[str] = []
    pos = 0
    for (s, e), item in merged:
        parts.append(text[pos:s])
        parts.append(render(item, text[s:e]))
        pos = e
    parts.append(text[pos:])
    return "".join(parts)
