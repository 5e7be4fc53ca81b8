"""Tokenisers for model directories, without `transformers`: the `tokenizers` library (tokenizer.json
or a WordPiece vocab.txt) or a Keras-style word index (vocab.json)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from guardrails.errors import ConfigError
from guardrails.inference.manifest import ModelDir


@dataclass(frozen=True)
class Window:
    """One model input of one text: token ids (special tokens included) and token type ids."""

    text_index: int
    ids: np.ndarray  # int64
    type_ids: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.ids.shape[0])


class SubwordTokenizer:
    """tokenizer.json or vocab.txt via `tokenizers`; long texts become overlapping windows."""

    def __init__(self, model: ModelDir):
        from tokenizers import Tokenizer

        spec = model.manifest.tokenizer
        files = spec.files or (["tokenizer.json"] if spec.kind == "tokenizers" else ["vocab.txt"])
        path = model.file(files[0])
        if not path.is_file():
            raise ConfigError(f"tokenizer file missing: {path}")
        if spec.kind == "tokenizers":
            tok = Tokenizer.from_file(str(path))
        else:
            from tokenizers.implementations import BertWordPieceTokenizer

            tok = BertWordPieceTokenizer(str(path), lowercase=spec.lowercase)._tokenizer
        tok.no_padding()
        max_len = model.manifest.max_length or 512
        stride = min(model.manifest.stride, max(0, max_len // 2 - 2))
        tok.enable_truncation(max_len, stride=stride)
        self._tok = tok
        self.pad_id = int(tok.token_to_id("[PAD]") if tok.token_to_id("[PAD]") is not None else
                          (tok.token_to_id("<pad>") if tok.token_to_id("<pad>") is not None else 0))

    def windows(self, texts: Sequence[str]) -> list[Window]:
        out: list[Window] = []
        for i, enc in enumerate(self._tok.encode_batch([_valid_utf8(t) for t in texts])):
            for e in [enc, *enc.overflowing]:
                out.append(Window(i, np.asarray(e.ids, dtype=np.int64), np.asarray(e.type_ids, dtype=np.int64)))
        return out


def _valid_utf8(text: str) -> str:
    """Lone surrogates (which Rust strings cannot hold) become U+FFFD, so such text gets a score."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class WordIndexTokenizer:
    """Keras `Tokenizer.texts_to_sequences` semantics over a saved word index (vocab.json)."""

    def __init__(self, model: ModelDir):
        spec = model.manifest.tokenizer
        path = model.file((spec.files or ["vocab.json"])[0])
        self._index: dict[str, int] = json.loads(path.read_text(encoding="utf-8"))
        self._lower = spec.lowercase
        self._table = str.maketrans({c: " " for c in spec.filters})
        self._num_words = spec.num_words
        self._oov = spec.oov_id
        m = model.manifest
        self._max = m.pad_to or m.max_length or 100
        self._stride = min(m.stride, self._max // 2)
        self.pad_id = 0

    def ids(self, text: str) -> list[int]:
        if self._lower:
            text = text.lower()
        out: list[int] = []
        for w in text.translate(self._table).split(" "):
            if not w:
                continue
            i = self._index.get(w)
            if i is not None and (self._num_words is None or i < self._num_words):
                out.append(i)
            elif self._oov is not None:
                out.append(self._oov)
        return out

    def windows(self, texts: Sequence[str]) -> list[Window]:
        out: list[Window] = []
        step = self._max - self._stride
        for i, t in enumerate(texts):
            ids = self.ids(t)
            starts = [0] if len(ids) <= self._max else list(range(0, len(ids) - self._max + step, step))
            for s in starts:
                out.append(Window(i, np.asarray(ids[s:s + self._max], dtype=np.int64)))
        return out


def make_tokenizer(model: ModelDir) -> Any:
    kind = model.manifest.tokenizer.kind
    if kind in ("tokenizers", "wordpiece"):
        return SubwordTokenizer(model)
    if kind == "word_index":
        return WordIndexTokenizer(model)
    return None
