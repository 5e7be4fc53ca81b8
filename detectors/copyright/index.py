"""The protected-corpus index: per-document word offsets and shingle hashes, an exact inverted index of
those shingles, MinHash signatures of overlapping windows with a datasketch MinHashLSH over them, and
the search that verifies candidates exactly on their shingles and merges hits into spans.

Candidate stages (`search(..., candidates=...)`):
- "exact": the inverted index `inv`, ONE sorted uint64 array with (shingle hash << 32 | global shingle
  index) per shingle occurrence, looked up in bulk with np.searchsorted. A document is a candidate when
  at least `min_hits` distinct output shingles occur in it (shingles with more than `max_postings`
  occurrences in the whole corpus are too common to nominate candidates, but they still count in the
  exact containment of a candidate). No MinHash, no LSH: nothing is missed by sampling.
- "lsh": MinHash windows in a datasketch MinHashLSH (Jaccard of 32-shingle windows; misses heavily
  revised text and costs much more memory: Python dicts of band keys).
- "both": the union.

`documents()` gives the document-level view used for heavy paraphrase: per candidate source, the share
of the output's distinct shingles found in that source (exact containment), and the same share inside
the best source region of about twice the output's length ("local containment", so chance 3-gram hits
spread over a long book do not add up), with the output spans those shingles cover.

Persistence: ONE file, `index.npz` (numpy arrays, loaded with allow_pickle=False) holding a JSON
manifest (`meta`, utf-8 bytes as a uint8 array: format name, version, parameters, documents) next to
the arrays. It is written to a temporary file in the same directory, fsynced and renamed over the old
one, so a crash or a rejected input never leaves a half-written index. No raw text is stored: only
hashes, offsets and metadata (id, title, licence, sha256 of the text).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from detectors.copyright_text import MinHasher, Tokens, covered_words, runs, shingle_hashes, tokenize, word_hashes
from guardrails.errors import TrustwallError

FORMAT = "trustwall-copyright-index"
VERSION = 2  # 2: + the inverted index `inv`; version 1 files load (the inverted index is derived from `shingles`)
READABLE_VERSIONS = (1, 2)
INDEX_FILE = "index.npz"
_ARRAYS_V1 = ("word_off", "word_start", "word_end", "sh_off", "shingles", "win_doc", "win_start", "win_key", "sigs")
_ARRAYS = _ARRAYS_V1 + ("inv",)
_LOW = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
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
class _Arrays:
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
    def empty(cls, num_perm: int) -> _Arrays:
        z64 = np.zeros(1, dtype=np.int64)
        return cls(z64, np.zeros(0, np.int32), np.zeros(0, np.int32), z64.copy(), np.zeros(0, np.uint32),
                   np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64),
                   np.zeros((0, num_perm), np.uint32), np.zeros(0, np.uint64))


def inverted_keys(shingles: np.ndarray, base: int = 0) -> np.ndarray:
    """Sorted inverted-index entries for shingles whose global indexes start at `base`."""
    pos = np.arange(base, base + len(shingles), dtype=np.uint64)
    keys = (shingles.astype(np.uint64) << _S32) | pos
    keys.sort()
    return keys


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64) - offs, lengths) + np.arange(total, dtype=np.int64)


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


def _merge_sorted(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    """Merge two sorted uint64 arrays (O(n): insert positions found by searchsorted)."""
    if len(old) == 0:
        return new
    if len(new) == 0:
        return old
    out = np.empty(len(old) + len(new), dtype=np.uint64)
    at = np.searchsorted(old, new, side="right") + np.arange(len(new))
    mask = np.ones(len(out), dtype=bool)
    mask[at] = False
    out[at] = new
    out[mask] = old
    return out


def _drop_from_inverted(inv: np.ndarray, keep_shingle: np.ndarray) -> np.ndarray:
    """Entries of kept shingles, renumbered to the compacted global indexes (order, hence sorting, kept)."""
    pos = (inv & _LOW).astype(np.int64)
    keep = keep_shingle[pos]
    new_index = (np.cumsum(keep_shingle) - 1).astype(np.uint64)
    kept = inv[keep]
    return (kept & ~_LOW) | new_index[pos[keep]]


# one document ready to append: metadata, (word starts, word ends), shingle hashes, window starts, signatures
_Part = tuple[SourceDoc, tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CorpusIndex:
    """A protected corpus. Not thread-safe for writes; searches may run concurrently once built."""

    def __init__(self, params: IndexParams | None = None):
        self.params = (params or IndexParams()).validate()
        self.docs: list[SourceDoc] = []
        self._a = _Arrays.empty(self.params.num_perm)
        self._next_key = 0
        self._lsh: Any = None
        self._hasher: MinHasher | None = None
        self._pos: dict[str, int] = {}

    # ---------------------------------------------------------------------------- properties

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def hasher(self) -> MinHasher:
        if self._hasher is None:
            self._hasher = MinHasher(self.params.num_perm, self.params.seed)
        return self._hasher

    def ids(self) -> list[str]:
        return [d.id for d in self.docs]

    def __contains__(self, doc_id: object) -> bool:
        return doc_id in self._pos

    def stats(self) -> dict[str, Any]:
        a = self._a
        nbytes = sum(getattr(a, n).nbytes for n in _ARRAYS)
        return {
            "documents": len(self.docs),
            "words": int(len(a.word_start)),
            "shingles": int(len(a.shingles)),
            "windows": int(len(a.win_doc)),
            "inverted_entries": int(len(a.inv)),
            "array_bytes": int(nbytes),
            "params": asdict(self.params),
            "lsh_threshold": round(self.lsh_threshold(), 3),
        }

    def lsh_threshold(self) -> float:
        """The Jaccard similarity at which a window pair becomes a candidate with probability 1/2."""
        b, r = self.params.bands, self.params.rows
        return float((1 - 0.5 ** (1 / b)) ** (1 / r))

    # ---------------------------------------------------------------------------- building

    def _hash_batch(self, docs: Sequence[Document]) -> list[tuple[Tokens, np.ndarray]]:
        """Tokenise a batch of documents and hash all their words in one vectorised call."""
        toks = [tokenize(d.text) for d in docs]
        words = [w for t in toks for w in t.words]
        wh = word_hashes(words)
        out, pos = [], 0
        for t in toks:
            out.append((t, wh[pos:pos + len(t)]))
            pos += len(t)
        return out

    def _batches(self, docs: Sequence[Document], max_chars: int = 2_000_000) -> Iterable[list[Document]]:
        batch: list[Document] = []
        size = 0
        for d in docs:
            batch.append(d)
            size += len(d.text)
            if size >= max_chars:
                yield batch
                batch, size = [], 0
        if batch:
            yield batch

    def add(self, documents: Iterable[Document], *, replace: bool = False,
            progress: Callable[[Document], None] | None = None) -> list[str]:
        """Add documents (all or nothing). An id already present is an error unless `replace`."""
        docs = list(documents)
        seen: set[str] = set()
        for d in docs:
            where = f"{d.origin}: " if d.origin else ""
            if not isinstance(d.id, str) or not d.id.strip():
                raise CorpusError(f"{where}document id must be a non-empty string")
            if d.id in seen:
                raise CorpusError(f"{where}duplicate document id {d.id!r} in this import")
            seen.add(d.id)
            if d.id in self._pos and not replace:
                raise CorpusError(f"{where}document id {d.id!r} is already in the corpus (use --replace)")
        parts: list[_Part] = []
        for batch in self._batches(docs):
            for d, (toks, wh) in zip(batch, self._hash_batch(batch)):
                parts.append(self._doc_part(d, toks, wh))
                if progress is not None:
                    progress(d)
        replaced = [d.id for d in docs if d.id in self._pos]
        if replaced:
            self.remove(replaced)
        self._append(parts)
        return [d.id for d in docs]

    def _doc_part(self, d: Document, toks: Tokens, wh: np.ndarray
                  ) -> _Part:
        p = self.params
        sh = shingle_hashes(wh, p.shingle)
        if len(sh) == 0:
            where = f"{d.origin}: " if d.origin else ""
            raise CorpusError(f"{where}document {d.id!r} has fewer than {p.shingle} words")
        if len(d.text) >= 2**31:
            raise CorpusError(f"document {d.id!r} is too large (2 GiB of text)")
        starts, sigs = self.hasher.window_signatures(sh, p.window, p.stride)
        meta = SourceDoc(d.id, d.title or d.id, d.licence, len(toks), len(d.text), _sha(d.text), time.time())
        # word offsets as int32 arrays only: the word strings are dropped here, not kept for the whole import
        return meta, (toks.starts.astype(np.int32), toks.ends.astype(np.int32)), sh, starts, sigs

    def _append(self, parts: Sequence[_Part]) -> None:
        if not parts:
            return
        a = self._a
        base = len(self.docs)
        n_words = np.array([len(p[1][0]) for p in parts], dtype=np.int64)
        n_sh = np.array([len(p[2]) for p in parts], dtype=np.int64)
        n_win = [len(p[3]) for p in parts]
        keys = np.arange(self._next_key, self._next_key + sum(n_win), dtype=np.int64)
        total_sh = int(a.sh_off[-1] + n_sh.sum())
        if total_sh > MAX_SHINGLES:
            raise CorpusError(f"the corpus would hold {total_sh:,} shingles; at most {MAX_SHINGLES:,} fit in one index")
        added_inv = inverted_keys(np.concatenate([p[2] for p in parts]), int(a.sh_off[-1]))
        self._next_key += int(sum(n_win))
        new = _Arrays(
            word_off=np.concatenate((a.word_off, a.word_off[-1] + np.cumsum(n_words))),
            word_start=np.concatenate([a.word_start] + [p[1][0] for p in parts]),
            word_end=np.concatenate([a.word_end] + [p[1][1] for p in parts]),
            sh_off=np.concatenate((a.sh_off, a.sh_off[-1] + np.cumsum(n_sh))),
            shingles=np.concatenate([a.shingles] + [p[2] for p in parts]),
            win_doc=np.concatenate([a.win_doc] + [np.full(n, base + i, np.int32) for i, n in enumerate(n_win)]),
            win_start=np.concatenate([a.win_start] + [p[3].astype(np.int32) for p in parts]),
            win_key=np.concatenate((a.win_key, keys)),
            sigs=np.concatenate([a.sigs] + [p[4] for p in parts], axis=0),
            inv=_merge_sorted(a.inv, added_inv),
        )
        self._a = new
        for p in parts:
            self._pos[p[0].id] = len(self.docs)
            self.docs.append(p[0])
        if self._lsh is not None:
            self._insert(keys, new.sigs[-len(keys):] if len(keys) else new.sigs[:0])

    def remove(self, ids: Iterable[str]) -> list[str]:
        """Remove documents by id. Unknown ids are an error (nothing is removed then)."""
        ids = list(dict.fromkeys(ids))
        unknown = [i for i in ids if i not in self._pos]
        if unknown:
            raise CorpusError(f"unknown document id {unknown[0]!r}")
        if not ids:
            return []
        drop = np.zeros(len(self.docs), dtype=bool)
        drop[[self._pos[i] for i in ids]] = True
        a = self._a
        keep_doc = ~drop
        words_per = np.diff(a.word_off)
        sh_per = np.diff(a.sh_off)
        word_mask = np.repeat(keep_doc, words_per)
        sh_mask = np.repeat(keep_doc, sh_per)
        win_mask = keep_doc[a.win_doc]
        new_index = np.cumsum(keep_doc) - 1
        removed_keys = a.win_key[~win_mask]
        self._a = _Arrays(
            word_off=np.concatenate(([0], np.cumsum(words_per[keep_doc]))).astype(np.int64),
            word_start=a.word_start[word_mask], word_end=a.word_end[word_mask],
            sh_off=np.concatenate(([0], np.cumsum(sh_per[keep_doc]))).astype(np.int64),
            shingles=a.shingles[sh_mask],
            win_doc=new_index[a.win_doc[win_mask]].astype(np.int32),
            win_start=a.win_start[win_mask], win_key=a.win_key[win_mask], sigs=a.sigs[win_mask],
            inv=_drop_from_inverted(a.inv, sh_mask),
        )
        self.docs = [d for d, k in zip(self.docs, keep_doc) if k]
        self._pos = {d.id: i for i, d in enumerate(self.docs)}
        if self._lsh is not None:
            for key in removed_keys.tolist():
                self._lsh.remove(key)
        return ids

    # ---------------------------------------------------------------------------- LSH

    def _insert(self, keys: np.ndarray, sigs: np.ndarray) -> None:
        """Bulk insert: the band keys of all windows are computed with numpy (exactly what
        MinHashLSH.insert computes: the big-endian bytes of each band) and put in the index's own
        storages, which is what MinHashLSH.insert does one key at a time."""
        lsh = self._lsh
        n = len(keys)
        if n == 0:
            return
        be = np.ascontiguousarray(sigs, dtype=">u4")
        key_list = keys.tolist()
        per_band: list[list[bytes]] = []
        for (s, e), table in zip(lsh.hashranges, lsh.hashtables):
            width = (e - s) * 4
            buf = np.ascontiguousarray(be[:, s:e]).tobytes()
            hs = [buf[i:i + width] for i in range(0, n * width, width)]
            for h, key in zip(hs, key_list):
                table.insert(h, key)
            per_band.append(hs)
        for key, *hs in zip(key_list, *per_band):
            lsh.keys.insert(key, *hs)

    def build_lsh(self) -> Any:
        """Build the datasketch MinHashLSH over every window (done once, at start-up)."""
        if self._lsh is None:
            from datasketch import MinHashLSH

            p = self.params
            self._lsh = MinHashLSH(num_perm=p.num_perm, params=(p.bands, p.rows))
            if len(self._a.win_key):
                self._insert(self._a.win_key, self._a.sigs)
        return self._lsh

    # ---------------------------------------------------------------------------- search

    def candidates(self, sigs: np.ndarray) -> np.ndarray:
        """Window rows whose signature collides with any query signature in some LSH band."""
        lsh, hasher = self.build_lsh(), self.hasher
        keys: set[int] = set()
        for sig in sigs:
            keys.update(lsh.query(hasher.lean(sig)))
        if not keys:
            return np.zeros(0, dtype=np.int64)
        return np.searchsorted(self._a.win_key, np.fromiter(keys, dtype=np.int64, count=len(keys)))

    # ---------------------------------------------------------------------------- exact stage

    def _query(self, text: str) -> tuple[Tokens, np.ndarray]:
        toks = tokenize(text)
        return toks, shingle_hashes(word_hashes(toks.words), self.params.shingle)

    def exact_candidates(self, qsh: np.ndarray, *, min_hits: int = 3, max_postings: int = 1024) -> list[Candidate]:
        """Documents holding at least `min_hits` distinct query shingles, most hits first. Shingles with more
        than `max_postings` occurrences in the corpus do not nominate (their postings are not read)."""
        inv = self._a.inv
        if len(inv) == 0 or len(qsh) == 0:
            return []
        uq = np.unique(qsh).astype(np.uint64) << _S32
        lo = np.searchsorted(inv, uq, side="left")
        hi = np.searchsorted(inv, uq | _LOW, side="right")
        df = hi - lo
        use = np.flatnonzero((df > 0) & (df <= max_postings))
        if len(use) == 0:
            return []
        entries = _ranges(lo[use], df[use])
        doc = np.searchsorted(self._a.sh_off, (inv[entries] & _LOW).astype(np.int64), side="right") - 1
        qid = np.repeat(use, df[use])
        pairs = np.unique(doc * len(uq) + qid)  # distinct (document, query shingle)
        hits = np.bincount(pairs // len(uq))
        cands = np.flatnonzero(hits >= min_hits)
        order = cands[np.argsort(-hits[cands], kind="stable")]
        return [Candidate(int(d), int(hits[d])) for d in order.tolist()]

    def _doc_hits(self, uq: np.ndarray, di: int, max_per_shingle: int = 64) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For distinct query shingle hashes `uq` and document `di`: (found mask per uq, query index and
        in-document shingle position of each occurrence; at most `max_per_shingle` per shingle)."""
        a = self._a
        s0, s1 = int(a.sh_off[di]), int(a.sh_off[di + 1])
        keys = uq.astype(np.uint64) << _S32
        lo = np.searchsorted(a.inv, keys | np.uint64(s0), side="left")
        hi = np.searchsorted(a.inv, keys | np.uint64(s1), side="left")
        n = np.minimum(hi - lo, max_per_shingle)
        entries = _ranges(lo, n)
        pos = (a.inv[entries] & _LOW).astype(np.int64) - s0
        return hi > lo, np.repeat(np.arange(len(uq)), n), pos

    def _dense_starts(self, uq: np.ndarray, di: int, min_hits: int, max_per_shingle: int = 8) -> np.ndarray:
        """Starts (multiples of stride) of the source windows of `window` shingles that hold at least
        `min_hits` distinct query shingles: the exact counterpart of an LSH window candidate, so that
        verification looks only where hits cluster, not around every chance occurrence of a common 3-gram."""
        p = self.params
        _, qid, pos = self._doc_hits(uq, di, max_per_shingle)
        if len(pos) == 0:
            return np.zeros(0, dtype=np.int64)
        per = p.window // p.stride
        pairs = np.unique((pos // p.stride) * len(uq) + qid)  # distinct (bucket, query shingle)
        buckets, counts = np.unique(pairs // len(uq), return_counts=True)
        csum = np.concatenate(([0], np.cumsum(counts)))
        # hits in the window starting at bucket b: buckets b .. b + per - 1 (every window holding a hit starts
        # at most per - 1 buckets before it)
        first = np.unique(np.maximum(buckets[:, None] - np.arange(per)[None, :], 0).ravel())
        lo = np.searchsorted(buckets, first, side="left")
        hi = np.searchsorted(buckets, first + per, side="left")
        return first[(csum[hi] - csum[lo]) >= min_hits] * p.stride

    def containment(self, text: str, *, min_hits: int = 3) -> dict[str, float]:
        """Per exact candidate source: share of the text's distinct shingles found anywhere in that source."""
        if not self.docs:
            return {}
        _, qsh = self._query(text)
        uq = np.unique(qsh)
        return {self.docs[c.doc].id: float(self._doc_hits(uq, c.doc, 0)[0].mean())
                for c in self.exact_candidates(qsh, min_hits=min_hits)}

    def documents(self, text: str, *, min_hits: int = 3, max_sources: int = 4, max_gap: int = 3,
                  exclude: Callable[[SourceDoc], bool] | None = None) -> list[DocMatch]:
        """Document-level reuse for the exact candidates with most hits, best local containment first."""
        if not self.docs:
            return []
        toks, qsh = self._query(text)
        return self._documents(toks, qsh, self.exact_candidates(qsh, min_hits=min_hits), max_sources, max_gap, exclude)

    def _documents(self, toks: Tokens, qsh: np.ndarray, cands: Sequence[Candidate], max_sources: int, max_gap: int,
                   exclude: Callable[[SourceDoc], bool] | None) -> list[DocMatch]:
        a, k = self._a, self.params.shingle
        uq, inv_q = np.unique(qsh, return_inverse=True)
        n_q = len(uq)
        width = 2 * n_q + self.params.window  # source region: about twice the output, plus one window of slack
        out: list[DocMatch] = []
        for c in cands:
            if len(out) >= max_sources:
                break
            src = self.docs[c.doc]
            if exclude is not None and exclude(src):
                continue
            found, qid, pos = self._doc_hits(uq, c.doc)
            if len(pos) == 0:
                continue
            order = np.argsort(pos, kind="stable")
            pos, qid = pos[order], qid[order]
            ends = np.searchsorted(pos, pos + width, side="left")
            best = int(np.argmax(ends - np.arange(len(pos))))
            local_q = np.unique(qid[best:ends[best]])
            in_local = np.zeros(n_q, dtype=bool)
            in_local[local_q] = True
            cov = covered_words(in_local[inv_q], k, len(toks))
            spans = tuple((int(toks.starts[s]), int(toks.ends[e - 1])) for s, e in runs(cov, max_gap))
            sel = pos[best:ends[best]][in_local[qid[best:ends[best]]]]
            w0 = int(a.word_off[c.doc])
            src_span = (int(a.word_start[w0 + int(sel.min())]), int(a.word_end[w0 + int(sel.max()) + k - 1]))
            out.append(DocMatch(src.id, src.title, src.licence, float(found.mean()), len(local_q) / n_q,
                                len(local_q), n_q, spans, src_span))
        out.sort(key=lambda m: m.local_containment, reverse=True)
        return out

    # ---------------------------------------------------------------------------- search

    def search(self, text: str, *, min_words: int = 20, max_gap: int = 3, query_stride: int = 4,
               exclude: Callable[[SourceDoc], bool] | None = None, max_sources: int = 32,
               candidates: str = "exact", min_hits: int = 3) -> list[Match]:
        """Find verified reuse of protected documents in `text`, best first, spans not overlapping.
        `candidates`: "exact" (inverted index), "lsh" (MinHash LSH windows) or "both"."""
        return self.search_all(text, min_words=min_words, max_gap=max_gap, query_stride=query_stride, exclude=exclude,
                               max_sources=max_sources, candidates=candidates, min_hits=min_hits)[0]

    def search_all(self, text: str, *, min_words: int = 20, max_gap: int = 3, query_stride: int = 4,
                   exclude: Callable[[SourceDoc], bool] | None = None, max_sources: int = 32,
                   candidates: str = "exact", min_hits: int = 3, doc_sources: int = 0
                   ) -> tuple[list[Match], list[DocMatch]]:
        """`search` plus, when `doc_sources` > 0, the document-level view of that many exact candidates
        (one tokenisation and one candidate lookup for both)."""
        if candidates not in ("exact", "lsh", "both"):
            raise ValueError("candidates must be 'exact', 'lsh' or 'both'")
        if not self.docs:
            return [], []
        p = self.params
        toks, qsh = self._query(text)
        if len(qsh) == 0:
            return [], []
        a = self._a
        starts_of: dict[int, list[np.ndarray]] = {}
        score: dict[int, int] = {}
        exact: list[Candidate] = []
        if candidates != "lsh" or doc_sources:
            exact = self.exact_candidates(qsh, min_hits=min_hits)
        docs_out = self._documents(toks, qsh, exact, doc_sources, max_gap, exclude) if doc_sources else []
        if len(toks) < max(min_words, p.shingle):
            return [], docs_out
        if candidates != "lsh":
            uq = np.unique(qsh)
            for c in exact[:max_sources]:
                if exclude is not None and exclude(self.docs[c.doc]):
                    continue
                dense = self._dense_starts(uq, c.doc, min_hits)
                if len(dense):
                    starts_of.setdefault(c.doc, []).append(dense)
                    score[c.doc] = c.hits
        if candidates != "exact":
            step = max(1, min(query_stride, p.window))
            qwin = (p.window // step) * step
            _, qsigs = self.hasher.window_signatures(qsh, qwin, step)
            rows = self.candidates(qsigs)
            docs_of = a.win_doc[rows]
            uniq, counts = np.unique(docs_of, return_counts=True)
            if exclude is not None and len(uniq):
                keep = np.fromiter((not exclude(self.docs[d]) for d in uniq.tolist()), dtype=bool, count=len(uniq))
                uniq, counts = uniq[keep], counts[keep]
            order = np.argsort(-counts, kind="stable")[:max_sources]
            for di, n in zip(uniq[order].tolist(), counts[order].tolist()):
                starts_of.setdefault(di, []).append(a.win_start[rows[docs_of == di]].astype(np.int64))
                score[di] = max(score.get(di, 0), int(n))
        chosen_docs = sorted(score, key=lambda d: -score[d])[:max_sources]
        found: list[tuple[float, Match]] = []
        for di in chosen_docs:
            starts = np.unique(np.concatenate(starts_of[di]))
            found.extend(self._verify(di, starts, toks, qsh, min_words, max_gap))
        found.sort(key=lambda t: t[0], reverse=True)
        chosen: list[Match] = []
        for _, m in found:
            s, e = m.span
            if any(min(e, c.span[1]) - max(s, c.span[0]) > (e - s) / 2 for c in chosen):
                continue
            chosen.append(m)
        return chosen, docs_out

    def _verify(self, di: int, win_starts: np.ndarray, toks: Tokens, qsh: np.ndarray,
                min_words: int, max_gap: int) -> list[tuple[float, Match]]:
        a, p = self._a, self.params
        s0, s1 = int(a.sh_off[di]), int(a.sh_off[di + 1])
        n_src = s1 - s0
        # the source region: candidate windows widened by one window on each side
        lo = np.clip(win_starts - p.window, 0, n_src)
        hi = np.clip(win_starts + 2 * p.window, 0, n_src)
        idx = np.unique(_ranges(lo, hi - lo))
        region = a.shingles[s0 + idx]
        order = np.argsort(region, kind="stable")
        sorted_region = region[order]
        pos = np.searchsorted(sorted_region, qsh)
        pos_c = np.minimum(pos, len(sorted_region) - 1)
        matched = sorted_region[pos_c] == qsh
        src_pos = idx[order[pos_c]]  # source shingle index of each matched query shingle
        n_words = len(toks)
        cov = covered_words(matched, p.shingle, n_words)
        out: list[tuple[float, Match]] = []
        w0 = int(a.word_off[di])
        src = self.docs[di]
        for ws, we in runs(cov, max_gap):
            if we - ws < min_words:
                continue
            nmatch = int(cov[ws:we].sum())
            sim = nmatch / (we - ws)
            js = np.flatnonzero(matched[ws:max(ws, we - p.shingle + 1)]) + ws
            sp = src_pos[js] if len(js) else src_pos[matched][:1]
            med = float(np.median(sp))
            near = sp[np.abs(sp - med) <= (we - ws) + p.window]
            sp = near if len(near) else sp
            src_w0, src_w1 = int(sp.min()), int(sp.max()) + p.shingle - 1
            m = Match(src.id, src.title, src.licence,
                      (int(toks.starts[ws]), int(toks.ends[we - 1])),
                      (int(a.word_start[w0 + src_w0]), int(a.word_end[w0 + src_w1])),
                      we - ws, nmatch, sim)
            out.append((nmatch * sim, m))
        return out

    # ---------------------------------------------------------------------------- persistence

    def manifest(self) -> dict[str, Any]:
        return {"format": FORMAT, "version": VERSION, "params": asdict(self.params), "next_key": self._next_key,
                "docs": [asdict(d) for d in self.docs]}

    def save(self, path: str | Path) -> Path:
        """Write the index atomically (temp file in the same directory, fsync, rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = np.frombuffer(json.dumps(self.manifest(), ensure_ascii=False).encode("utf-8"), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(prefix=".index-", suffix=".npz.tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, meta=meta, **{n: getattr(self._a, n) for n in _ARRAYS})
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, *, missing_ok: bool = True, params: IndexParams | None = None) -> CorpusIndex:
        """Load an index file. A missing file is an empty corpus (unless missing_ok=False)."""
        path = Path(path)
        if not path.exists():
            if missing_ok:
                return cls(params)
            raise CorpusError(f"{path}: no corpus index")
        try:
            with open(path, "rb") as fh:
                magic = fh.read(4)
        except OSError as exc:
            raise CorpusError(f"{path}: cannot read ({exc.strerror or exc})") from None
        if magic != b"PK\x03\x04":
            raise CorpusError(f"{path}: not a corpus index (expected a .npz archive written by `trustwall corpus`)")
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(bytes(z["meta"]).decode("utf-8"))
                if meta.get("format") != FORMAT:
                    raise CorpusError(f"{path}: not a trustwall copyright index")
                version = meta.get("version")
                if version not in READABLE_VERSIONS:
                    raise CorpusError(f"{path}: index version {version!r} is not supported (this trustwall reads "
                                      f"versions {', '.join(map(str, READABLE_VERSIONS))}); rebuild it: move the file "
                                      "away and run `trustwall corpus add` on the source texts again")
                loaded = {n: z[n] for n in (_ARRAYS if version == VERSION else _ARRAYS_V1)}
                if version == 1:  # no inverted index yet: derive it (written as version 2 on the next save)
                    loaded["inv"] = inverted_keys(np.asarray(loaded["shingles"], dtype=np.uint32))
                arrays = _Arrays(**loaded)
        except CorpusError:
            raise
        except (OSError, ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CorpusError(f"{path}: unreadable corpus index ({type(exc).__name__}: {exc})") from None
        idx = cls(IndexParams(**meta["params"]))
        idx.docs = [SourceDoc(**d) for d in meta["docs"]]
        idx._pos = {d.id: i for i, d in enumerate(idx.docs)}
        idx._next_key = int(meta["next_key"])
        idx._a = arrays
        idx._check(path)
        return idx

    def _check(self, path: Path) -> None:
        a, n = self._a, len(self.docs)
        ok = (len(a.word_off) == n + 1 and len(a.sh_off) == n + 1 and a.word_off[-1] == len(a.word_start) == len(a.word_end)
              and a.sh_off[-1] == len(a.shingles) and len(a.win_doc) == len(a.win_start) == len(a.win_key) == len(a.sigs)
              and a.sigs.ndim == 2 and a.sigs.shape[1] == self.params.num_perm
              and (len(a.win_doc) == 0 or (int(a.win_doc.max()) < n and int(a.win_doc.min()) >= 0))
              and a.inv.dtype == np.uint64 and a.shingles.dtype == np.uint32 and len(a.inv) == len(a.shingles)
              and (len(a.inv) == 0 or (bool(np.all(a.inv[1:] >= a.inv[:-1]))
                                        and int((a.inv & _LOW).max()) < len(a.shingles))))
        if ok and len(a.inv):  # a strided sample of inverted entries must point at shingles with their hash
            sample = a.inv[:: max(1, len(a.inv) // 4096)]
            ok = bool(np.array_equal((sample >> _S32).astype(np.uint32), a.shingles[(sample & _LOW).astype(np.int64)]))
        if not ok:
            raise CorpusError(f"{path}: corpus index is inconsistent (arrays do not match the manifest)")


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


__all__ = ["Candidate", "CorpusError", "CorpusIndex", "DocMatch", "Document", "IndexParams", "Match", "SourceDoc", "allow_filter",
           "default_index_path"]
