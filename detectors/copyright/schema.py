"""The protected-corpus index's data: its parameters, the documents it keeps (metadata only), the matches
a search reports, and the layout of its arrays, including the inverted index of shingle hashes.

Persistence format constants live here too, so that readers of an index file need no search code.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from guardrails.errors import TrustwallError

FORMAT = "trustwall-copyright-index"
VERSION = 2  # 2: + the inverted index `inv`; version 1 files load (the inverted index is derived from `shingles`)
READABLE_VERSIONS = (1, 2)
INDEX_FILE = "index.npz"
LOW_BITS = np.uint64(0xFFFFFFFF)
HASH_SHIFT = np.uint64(32)
MAX_SHINGLES = 2**32 - 1  # global shingle indexes are the low 32 bits of an inverted-index entry


class CorpusError(TrustwallError):
    """A corpus file or the index itself is unusable. The message names the file (and line)."""


@dataclass(frozen=True, slots=True)
class IndexParams:
    """Fixed when an index is created (changing them means re-adding the documents)."""

    shingle: int = 3  # words per shingle
    bands: int = 8  # LSH bands ...
    rows: int = 2  # ... of this many MinHash values: num_perm = bands * rows
    seed: int = 1
    window: int = 32  # shingles per indexed window
    stride: int = 16  # shingles between indexed windows (window must be a multiple)

    @property
    def num_perm(self) -> int:
        return self.bands * self.rows

    def validate(self) -> IndexParams:
        if not 1 <= self.shingle <= 8:
            raise CorpusError("shingle must be between 1 and 8 words")
        if self.window % self.stride or self.stride < 1:
            raise CorpusError("window must be a positive multiple of stride")
        if not (2 <= self.bands <= 64 and 1 <= self.rows <= 16):
            raise CorpusError("bands must be 2..64 and rows 1..16")
        return self


@dataclass(frozen=True, slots=True)
class Document:
    """One protected work to add."""

    id: str
    text: str
    title: str = ""
    licence: str | None = None
    origin: str = ""  # file (and line) it came from, for messages only


@dataclass(frozen=True, slots=True)
class SourceDoc:
    """What the index keeps about a document (no text)."""

    id: str
    title: str
    licence: str | None
    n_words: int
    n_chars: int
    sha256: str
    added: float


@dataclass(frozen=True, slots=True)
class Match:
    """A verified reuse of a protected document in a checked text."""

    source_id: str
    title: str
    licence: str | None
    span: tuple[int, int]  # code points in the checked text
    source_span: tuple[int, int]  # code points in the source document
    words: int  # words in the output span
    matched_words: int  # of which covered by shingles shared with the source
    similarity: float  # matched_words / words


@dataclass
class IndexArrays:
    """The index's arrays (one row per word, shingle or window of every document, concatenated)."""

    word_off: np.ndarray  # int64 (n_docs+1): first word of each doc in word_start/word_end
    word_start: np.ndarray  # int32: char offset of each word in its doc
    word_end: np.ndarray  # int32
    sh_off: np.ndarray  # int64 (n_docs+1): first shingle of each doc
    shingles: np.ndarray  # uint32
    win_doc: np.ndarray  # int32: doc index of each window
    win_start: np.ndarray  # int32: first shingle of the window (in its doc)
    win_key: np.ndarray  # int64: stable LSH key, increasing
    sigs: np.ndarray  # uint32 (n_win, num_perm)
    inv: np.ndarray  # uint64 sorted: (shingle hash << 32) | global shingle index, one per shingle occurrence

    @classmethod
    def empty(cls, num_perm: int) -> IndexArrays:
        z64 = np.zeros(1, dtype=np.int64)
        return cls(z64, np.zeros(0, np.int32), np.zeros(0, np.int32), z64.copy(), np.zeros(0, np.uint32),
                   np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64),
                   np.zeros((0, num_perm), np.uint32), np.zeros(0, np.uint64))


def inverted_keys(shingles: np.ndarray, base: int = 0) -> np.ndarray:
    """Sorted inverted-index entries for shingles whose global indexes start at `base`."""
    pos = np.arange(base, base + len(shingles), dtype=np.uint64)
    keys = (shingles.astype(np.uint64) << HASH_SHIFT) | pos
    keys.sort()
    return keys


@dataclass(frozen=True, slots=True)
class Candidate:
    """A document nominated by the exact stage: distinct output shingles found in it (rare ones only)."""

    doc: int  # index in CorpusIndex.docs
    hits: int


@dataclass(frozen=True, slots=True)
class DocMatch:
    """Document-level reuse: how much of the output's shingle set one source contains."""

    source_id: str
    title: str
    licence: str | None
    containment: float  # share of the output's distinct shingles found anywhere in the source
    local_containment: float  # ... found inside one source region of about twice the output's length
    shingles: int  # distinct output shingles counted in local_containment
    output_shingles: int  # distinct shingles of the output
    spans: tuple[tuple[int, int], ...]  # output code-point spans covered by those shingles (merged)
    source_span: tuple[int, int]  # code points of the source region


def default_index_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / "copyright" / INDEX_FILE


def allow_filter(sources: Sequence[str], licences: Sequence[str]) -> Callable[[SourceDoc], bool] | None:
    """A predicate true for documents the policy allows (licensed works): id globs or licence names."""
    if not sources and not licences:
        return None
    lic = {x.casefold() for x in licences}

    def allowed(doc: SourceDoc) -> bool:
        if doc.licence is not None and doc.licence.casefold() in lic:
            return True
        return any(fnmatch.fnmatchcase(doc.id, pat) for pat in sources)

    return allowed
