"""Searching the protected-corpus index (the methods of `CorpusIndex` that only read it).

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

Each candidate is verified exactly on its shingles, and the hits are merged into spans.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from detectors.copyright.schema import (
    HASH_SHIFT,
    LOW_BITS,
    Candidate,
    DocMatch,
    IndexArrays,
    IndexParams,
    Match,
    SourceDoc,
)
from detectors.copyright.text import Tokens, covered_words, runs, shingle_hashes, tokenize, word_hashes

if TYPE_CHECKING:  # pragma: no cover
    from detectors.copyright.text import MinHasher


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offs = np.cumsum(lengths) - lengths
    return np.repeat(starts.astype(np.int64) - offs, lengths) + np.arange(total, dtype=np.int64)


class IndexSearch:
    """Read-only search over the arrays of a `CorpusIndex` (its base class; the index supplies the state)."""

    params: IndexParams
    docs: list[SourceDoc]
    _a: IndexArrays

    if TYPE_CHECKING:  # pragma: no cover - provided by CorpusIndex
        @property
        def hasher(self) -> MinHasher: ...

        def build_lsh(self) -> Any: ...

    # ---------------------------------------------------------------------------- LSH stage

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
        uq = np.unique(qsh).astype(np.uint64) << HASH_SHIFT
        lo = np.searchsorted(inv, uq, side="left")
        hi = np.searchsorted(inv, uq | LOW_BITS, side="right")
        df = hi - lo
        use = np.flatnonzero((df > 0) & (df <= max_postings))
        if len(use) == 0:
            return []
        entries = _ranges(lo[use], df[use])
        doc = np.searchsorted(self._a.sh_off, (inv[entries] & LOW_BITS).astype(np.int64), side="right") - 1
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
        keys = uq.astype(np.uint64) << HASH_SHIFT
        lo = np.searchsorted(a.inv, keys | np.uint64(s0), side="left")
        hi = np.searchsorted(a.inv, keys | np.uint64(s1), side="left")
        n = np.minimum(hi - lo, max_per_shingle)
        entries = _ranges(lo, n)
        pos = (a.inv[entries] & LOW_BITS).astype(np.int64) - s0
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
