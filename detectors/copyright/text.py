"""Text side of the copyright check: normalisation with an offset map, word shingles, and vectorised
MinHash signatures that are bit-for-bit what datasketch computes.

Everything here is pure and numpy-vectorised: no per-shingle Python loop. The only per-word Python work
is the regex tokeniser (one C-level `finditer`) and, for texts that change under NFKC, per-token
normalisation.

Normalisation: NFKC, case fold, and every run of punctuation, symbols and whitespace is a word
separator. So "Marley was DEAD: to begin with" and "marley was dead -- to begin with." give the same
words. Each word keeps the code-point offsets of its span in the original text (`starts`, `ends`), so a
match in normalised space maps back to the exact original span.

Hashing: words hash to 64 bits with a vectorised FNV-1a over code points (stable across processes and
machines, unlike `hash()`), shingles of k consecutive words hash to 32 bits, and the MinHash of a set
of shingle hashes uses datasketch's `affine32` scheme (MurmurHash3 fmix32 pre-mix, then a*h+b mod 2^32
per permutation) with datasketch's own permutation parameters, so `LeanMinHash(seed, hashvalues,
scheme="affine32")` built from our arrays is interchangeable with `MinHash(...).update_batch(...)`.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import regex

# A word is a run of letters, digits and combining marks. '_' and all punctuation/symbols/spaces separate.
_WORD = regex.compile(r"[\p{L}\p{N}\p{M}]+")
_NON_WORD = regex.compile(r"[^\p{L}\p{N}\p{M}]")
_NOT_WORD_OR_SPACE = regex.compile(r"[^\p{L}\p{N}\p{M} ]")
_ASCII_RE = re.compile(r"[a-z0-9]+")
_ASCII_WORD = np.zeros(128, dtype=bool)
_ASCII_WORD[[ord(c) for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"]] = True
_ASCII_WORD.flags.writeable = False
_MAX_WORD_CHARS = 48  # longer tokens (base64 blobs...) are hashed on their first 48 code points + length

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_MIX1 = np.uint64(0xFF51AFD7ED558CCD)
_MIX2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)
_S32 = np.uint64(32)
# Per-position multipliers that combine k word hashes into one shingle hash (odd 64-bit constants).
_SHINGLE_MULT = np.array(
    [0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB, 0xD6E8FEB86659FD93,
     0xA0761D6478BD642F, 0xE7037ED1A0B428DB, 0x8EBC6AF09C88C6E3, 0x589965CC75374CC3],
    dtype=np.uint64,
)
MAX_SHINGLE = len(_SHINGLE_MULT)


@dataclass(frozen=True, slots=True)
class Tokens:
    """Normalised words of a text and where each came from in the original (code-point offsets)."""

    words: list[str]
    starts: np.ndarray  # int64, original start offset of each word
    ends: np.ndarray  # int64, original end offset (exclusive)

    def __len__(self) -> int:
        return len(self.words)


def _norm_token(tok: str) -> str:
    out = unicodedata.normalize("NFKC", tok).casefold()
    return "".join(_WORD.findall(out))  # NFKC may introduce separators (e.g. '¼' -> '1⁄4'): drop them


def _word_mask(text: str) -> np.ndarray:
    """Per code point: is it part of a word? (vectorised; each distinct character classified once)"""
    cps = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    if text.isascii():
        return _ASCII_WORD[cps]
    uniq, inv = np.unique(cps, return_inverse=True)
    chars = uniq.tobytes().decode("utf-32-le", "surrogatepass")  # each distinct character once
    cls = np.ones(len(uniq), dtype=bool)
    cls[[m.start() for m in _NON_WORD.finditer(chars)]] = False
    return cls[inv.reshape(-1)]


def tokenize(text: str) -> Tokens:
    """Split `text` into normalised words with their original offsets."""
    mask = _word_mask(text) if text else np.zeros(0, dtype=bool)
    edges = np.diff(np.concatenate(([0], mask.view(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    if len(starts) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Tokens([], empty, empty)
    if text.isascii():
        return Tokens(_ASCII_RE.findall(text.lower()), starts, ends)
    raw = [text[a:b] for a, b in zip(starts.tolist(), ends.tolist())]
    joined = " ".join(raw)
    norm = unicodedata.normalize("NFKC", joined).casefold()
    words = norm.split(" ")
    if len(words) != len(raw) or not all(words) or _NOT_WORD_OR_SPACE.search(norm):
        words = [_norm_token(t) for t in raw]  # NFKC added separators (e.g. '½' -> '1⁄2'): per token
    if not all(words):  # a token that normalised to nothing (rare): drop it
        keep = [i for i, w in enumerate(words) if w]
        return Tokens([words[i] for i in keep], starts[keep], ends[keep])
    return Tokens(words, starts, ends)


def normalise(text: str) -> str:
    """The normalised form of a text: its words joined by single spaces."""
    return " ".join(tokenize(text).words)


def _mix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> _S33)
    h = h * _MIX1
    h = h ^ (h >> _S33)
    h = h * _MIX2
    return h ^ (h >> _S33)


def word_hashes(words: list[str]) -> np.ndarray:
    """Stable 64-bit hashes of words, vectorised (FNV-1a over code points, then a 64-bit finaliser)."""
    n = len(words)
    if n == 0:
        return np.zeros(0, dtype=np.uint64)
    clipped = [w[:_MAX_WORD_CHARS] for w in words] if max(map(len, words)) > _MAX_WORD_CHARS else words
    width = max(map(len, clipped))
    cps = np.array(clipped, dtype=f"<U{width}").view(np.uint32).reshape(n, width).astype(np.uint64)
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(width):
            c = cps[:, j]
            h = np.where(c != 0, (h ^ c) * _FNV_PRIME, h)
        lengths = np.fromiter(map(len, words), dtype=np.uint64, count=n)
        return _mix64(h ^ (lengths * _MIX2))


def shingle_hashes(whash: np.ndarray, k: int) -> np.ndarray:
    """32-bit hashes of the k-word shingles (one per start position; empty if fewer than k words)."""
    if not 1 <= k <= MAX_SHINGLE:
        raise ValueError(f"shingle size must be 1..{MAX_SHINGLE}")
    n = len(whash) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.uint32)
    acc = np.zeros(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(k):
            acc = acc + whash[j:j + n] * _SHINGLE_MULT[j]
        return (_mix64(acc) >> _S32).astype(np.uint32)


def _fmix32(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint32(16))
    h = h * np.uint32(0x85EBCA6B)
    h = h ^ (h >> np.uint32(13))
    h = h * np.uint32(0xC2B2AE35)
    return h ^ (h >> np.uint32(16))


class MinHasher:
    """datasketch-compatible (scheme affine32) MinHash over uint32 shingle hashes, vectorised."""

    scheme = "affine32"

    def __init__(self, num_perm: int = 64, seed: int = 1):
        from datasketch import MinHash  # the permutation parameters are datasketch's own

        ref = MinHash(num_perm=num_perm, seed=seed, scheme=self.scheme)
        a, b = ref.permutations
        self.num_perm = num_perm
        self.seed = seed
        self._a = np.asarray(a, dtype=np.uint32)
        self._b = np.asarray(b, dtype=np.uint32)

    def permuted(self, shingles: np.ndarray) -> np.ndarray:
        """(n, num_perm) permuted hash values of n shingle hashes."""
        with np.errstate(over="ignore"):
            h = _fmix32(np.asarray(shingles, dtype=np.uint32))
            return h[:, None] * self._a[None, :] + self._b[None, :]

    def signature(self, shingles: np.ndarray) -> np.ndarray:
        """MinHash of one set of shingle hashes (uint32, num_perm)."""
        if len(shingles) == 0:
            return np.full(self.num_perm, np.uint32(0xFFFFFFFF), dtype=np.uint32)
        return self.permuted(shingles).min(axis=0)

    def window_signatures(self, shingles: np.ndarray, window: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
        """MinHash of each window of `window` shingles, windows starting every `stride` shingles.

        `window` must be a multiple of `stride`. The last window always reaches the end (a text shorter
        than one window is one window). Returns (starts, signatures) with signatures (n_win, num_perm).
        """
        n = len(shingles)
        if n == 0:
            return np.zeros(0, dtype=np.int64), np.zeros((0, self.num_perm), dtype=np.uint32)
        if window % stride:
            raise ValueError("window must be a multiple of stride")
        per = window // stride
        perm = self.permuted(shingles)
        block_starts = np.arange(0, n, stride)
        blocks = np.minimum.reduceat(perm, block_starts, axis=0)  # (nb, P)
        nb = len(blocks)
        if nb <= per:
            return np.zeros(1, dtype=np.int64), blocks.min(axis=0, keepdims=True)
        nw = nb - per + 1
        sig = blocks[:nw].copy()
        for j in range(1, per):
            np.minimum(sig, blocks[j:j + nw], out=sig)
        return block_starts[:nw].astype(np.int64), sig

    def lean(self, hashvalues: np.ndarray):  # noqa: ANN201 - datasketch type, imported lazily
        from datasketch import LeanMinHash

        return LeanMinHash(seed=self.seed, hashvalues=hashvalues, scheme=self.scheme)


def covered_words(matched: np.ndarray, k: int, n_words: int) -> np.ndarray:
    """Boolean per word: covered by at least one matched shingle (shingle i spans words i..i+k-1)."""
    cov = np.zeros(n_words + 1, dtype=np.int32)
    idx = np.flatnonzero(matched)
    np.add.at(cov, idx, 1)
    np.add.at(cov, idx + k, -1)
    return np.cumsum(cov[:n_words]) > 0


def runs(covered: np.ndarray, max_gap: int) -> list[tuple[int, int]]:
    """Half-open word ranges of covered words, bridging gaps of at most `max_gap` uncovered words."""
    idx = np.flatnonzero(covered)
    if len(idx) == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) > max_gap + 1)
    starts = np.concatenate(([idx[0]], idx[cut + 1]))
    ends = np.concatenate((idx[cut], [idx[-1]])) + 1
    return list(zip(starts.tolist(), ends.tolist()))
