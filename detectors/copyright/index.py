"""The protected-corpus index: per-document word offsets and shingle hashes, an exact inverted index of
those shingles, MinHash signatures of overlapping windows with a datasketch MinHashLSH over them, and
the search that verifies candidates exactly on their shingles and merges hits into spans.

Searching lives in detectors/copyright/search.py (`IndexSearch`, the base class of `CorpusIndex`: exact
candidates from the inverted index by default, MinHash LSH windows, or both; document-level containment
for heavy paraphrase); the index's data types and array layout in detectors/copyright/schema.py.

Persistence: ONE file, `index.npz` (numpy arrays, loaded with allow_pickle=False) holding a JSON
manifest (`meta`, utf-8 bytes as a uint8 array: format name, version, parameters, documents) next to
the arrays. It is written to a temporary file in the same directory, fsynced and renamed over the old
one, so a crash or a rejected input never leaves a half-written index. No raw text is stored: only
hashes, offsets and metadata (id, title, licence, sha256 of the text).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from detectors.copyright.schema import (
    FORMAT,
    HASH_SHIFT,
    LOW_BITS,
    MAX_SHINGLES,
    READABLE_VERSIONS,
    VERSION,
    CorpusError,
    Document,
    IndexArrays,
    IndexParams,
    SourceDoc,
    inverted_keys,
)
from detectors.copyright.search import IndexSearch
from detectors.copyright.text import MinHasher, Tokens, shingle_hashes, tokenize, word_hashes

_ARRAYS_V1 = ("word_off", "word_start", "word_end", "sh_off", "shingles", "win_doc", "win_start", "win_key", "sigs")
_ARRAYS = _ARRAYS_V1 + ("inv",)


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
    pos = (inv & LOW_BITS).astype(np.int64)
    keep = keep_shingle[pos]
    new_index = (np.cumsum(keep_shingle) - 1).astype(np.uint64)
    kept = inv[keep]
    return (kept & ~LOW_BITS) | new_index[pos[keep]]


# one document ready to append: metadata, (word starts, word ends), shingle hashes, window starts, signatures
_Part = tuple[SourceDoc, tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class CorpusIndex(IndexSearch):
    """A protected corpus. Not thread-safe for writes; searches may run concurrently once built."""

    def __init__(self, params: IndexParams | None = None):
        self.params = (params or IndexParams()).validate()
        self.docs: list[SourceDoc] = []
        self._a = IndexArrays.empty(self.params.num_perm)
        self._next_key = 0
        self._lsh: Any = None
        self._hasher: MinHasher | None = None
        self._pos: dict[str, int] = {}

    # ---------------------------------------------------------------------------- properties

    def __len__(self) -> int:
        return len(self.docs)

    @property
    def arrays(self) -> IndexArrays:
        """The index's arrays (read-only use: benchmarks and diagnostics)."""
        return self._a

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
        new = IndexArrays(
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
        self._a = IndexArrays(
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
                arrays = IndexArrays(**loaded)
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
                                        and int((a.inv & LOW_BITS).max()) < len(a.shingles))))
        if ok and len(a.inv):  # a strided sample of inverted entries must point at shingles with their hash
            sample = a.inv[:: max(1, len(a.inv) // 4096)]
            ok = bool(np.array_equal((sample >> HASH_SHIFT).astype(np.uint32), a.shingles[(sample & LOW_BITS).astype(np.int64)]))
        if not ok:
            raise CorpusError(f"{path}: corpus index is inconsistent (arrays do not match the manifest)")
