"""OnnxTextClassifier: one InferenceSession per model per process, texts in, label scores out.

Texts are tokenised (`tokenizers` or the model's own vocabulary), long texts split into overlapping
windows, windows sorted by length and run in chunks of at most `max_batch`, each chunk padded to its own
longest window (never to a fixed 512; on CPU the cuts minimise padding plus a per-run cost, see `chunks`).
A text's score per label is the max over its windows.
`predict` is synchronous and thread-safe; use it from a worker thread or through a MicroBatcher.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.errors import ConfigError
from guardrails.inference.manifest import ModelDir, load_model_dir
from guardrails.inference.session import Device, LoadedSession, open_session
from guardrails.inference.tokenize import Window, make_tokenizer


RUNNERS = 2  # single-window runs side by side
CPU_RUN_COST_TOKENS = 24.0  # one ONNX Runtime run of a small encoder costs about as much as 24 more tokens


def chunks(lengths: Sequence[int], max_batch: int, run_cost: float) -> list[tuple[int, int]]:
    """Cut ascending `lengths` into consecutive chunks [a, b) of at most `max_batch`, minimising
    sum(run_cost + (b - a) * lengths[b - 1]): padded tokens plus a fixed cost per run (dynamic programming,
    O(n * max_batch)). run_cost = inf gives plain chunks of max_batch."""
    n = len(lengths)
    if n == 0:
        return []
    if run_cost == float("inf"):
        return [(s, min(n, s + max_batch)) for s in range(0, n, max_batch)]
    best = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for b in range(1, n + 1):
        for a in range(max(0, b - max_batch), b):
            c = best[a] + run_cost + (b - a) * lengths[b - 1]
            if c < best[b]:
                best[b], cut[b] = c, a
    out: list[tuple[int, int]] = []
    b = n
    while b > 0:
        out.append((cut[b], b))
        b = cut[b]
    return out[::-1]


def _activate(x: np.ndarray, kind: str) -> np.ndarray:
    x = x.astype(np.float32, copy=False)
    if kind == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return x


class OnnxTextClassifier:
    """A text classifier from a model directory (see guardrails.inference.manifest)."""

    def __init__(self, model: ModelDir | str | Path, *, device: Device = "auto", max_batch: int = 32,
                 threads: int | None = None, check: bool = True, precision: str = "auto"):
        """`precision`: "auto" (fp16 on CUDA when the model has it, fp32 on CPU, int8 on CPU when the
        model ships no fp32) or "int8" (CPU: the dynamically quantised variant; faster, slightly different)."""
        self.model = model if isinstance(model, ModelDir) else load_model_dir(model, check=check)
        m = self.model.manifest
        fp32, fp16, int8v = (self.model.variant(k) for k in ("fp32", "fp16", "int8"))
        if fp32 is None and fp16 is None and int8v is None:
            raise ConfigError(f"{self.model.path}: manifest has no fp32, fp16 or int8 variant")
        if precision not in ("auto", "int8"):
            raise ConfigError(f"precision must be auto or int8, not {precision!r}")
        if precision == "int8" and int8v is None:
            raise ConfigError(f"{self.model.path}: no int8 variant (convert with --int8)")
        # int8 on CPU when asked for, or when the model ships no fp32 (it is then the CPU variant)
        int8 = int8v if precision == "int8" or fp32 is None else None
        self._loaded: LoadedSession = open_session(fp32, fp16, device=device, threads=threads, int8=int8)
        self.session = self._loaded.session
        self.max_batch = max(1, int(max_batch))
        self.labels: list[str] = list(m.labels)
        self.categories: list[str] = m.categories()
        self._inputs = [i.name for i in self.session.get_inputs()]
        outs = [o.name for o in self.session.get_outputs()]
        self._output = m.output or outs[0]
        if self._output not in outs:
            raise ConfigError(f"{self.model.path}: output {self._output!r} not in model outputs {outs}")
        self._tok = make_tokenizer(self.model) if m.kind != "text" else None
        # int8 variants are dynamically quantised (one activation scale per run): scores must not depend
        # on batch companions, so each window is its own run, RUNNERS of them side by side
        self.run_alone: bool = self._loaded.variant == "int8"
        self._runners: Any = None
        self._runners_lock = threading.Lock()
        if m.kind != "text" and self._tok is None:
            raise ConfigError(f"{self.model.path}: kind {m.kind} needs a tokenizer")
        if m.kind == "sequence" and not m.pad_to:
            raise ConfigError(f"{self.model.path}: kind sequence needs pad_to")

    # ------------------------------------------------------------------ public

    @property
    def name(self) -> str:
        return self.model.manifest.name

    @property
    def device(self) -> str:
        return self._loaded.device

    def info(self) -> dict[str, Any]:
        m = self.model.manifest
        return {"model": m.name, "kind": m.kind, **self._loaded.info(), "labels": self.categories,
                "max_length": m.max_length, "max_batch": self.max_batch}

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        """Scores, shape (len(texts), len(labels)), float32 in [0, 1] for sigmoid/softmax models."""
        n = len(texts)
        if n == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        if self.model.manifest.kind == "text":
            return self._run_text(list(texts))
        windows = self.windows(texts)
        return self.reduce(n, windows, self.run_windows(windows))

    @property
    def windowed(self) -> bool:
        """Whether texts are scored as token windows (transformers, sequence models), not whole texts."""
        return self._tok is not None

    def windows(self, texts: Sequence[str]) -> list[Window]:
        """The token windows of `texts` (a long text gives several, with the tokenizer's overlap)."""
        if self._tok is None:
            raise ConfigError(f"{self.model.path}: a text model has no windows")
        return self._tok.windows(texts)

    def reduce(self, n: int, windows: Sequence[Window], scores: np.ndarray) -> np.ndarray:
        """Per text, the max over its windows' scores (0 for a text with no window)."""
        out = np.full((n, len(self.labels)), -np.inf, dtype=np.float32)
        if len(windows):
            idx = np.fromiter((w.text_index for w in windows), dtype=np.int64, count=len(windows))
            np.maximum.at(out, idx, np.asarray(scores, dtype=np.float32).reshape(len(windows), -1))
        out[np.isinf(out)] = 0.0
        return out

    def as_dicts(self, arr: np.ndarray) -> list[dict[str, float]]:
        return [dict(zip(self.categories, map(float, row))) for row in arr]

    def predict_dicts(self, texts: Sequence[str]) -> list[dict[str, float]]:
        """Like predict, keyed by category (label_map applied)."""
        return self.as_dicts(self.predict(texts))

    def run_windows(self, windows: Sequence[Window]) -> np.ndarray:
        """Score windows: sorted by length, cut into chunks (at most max_batch each), each padded to its
        longest window. On CPU the cuts minimise padded tokens plus a fixed cost per run (see `chunks`),
        so ten sentences of 8 to 60 tokens do not all pay for 60; on CUDA padding is cheap and the chunks
        are plain runs of max_batch. A dynamically quantised int8 model runs each window alone
        (`run_alone`, RUNNERS runs side by side): it computes one activation scale per run, so in a shared
        run a window's score would depend on the other windows, i.e. on who else was calling at the time."""
        order = sorted(range(len(windows)), key=lambda i: len(windows[i]))
        out = np.zeros((len(windows), len(self.labels)), dtype=np.float32)
        lengths = [len(windows[i]) for i in order]
        if self.run_alone and len(order) > 1:
            rows = list(self._runner().map(lambda i: self._run_chunk([windows[i]]), order))
            out[order] = np.concatenate(rows)
            return out
        for a, b in chunks(lengths, self.max_batch, self.run_cost_tokens):
            chunk = order[a:b]
            out[chunk] = self._run_chunk([windows[i] for i in chunk])
        return out

    def _runner(self) -> Any:
        """Threads that run single windows side by side (ONNX Runtime sessions are thread-safe)."""
        if self._runners is None:
            from concurrent.futures import ThreadPoolExecutor

            with self._runners_lock:
                if self._runners is None:
                    self._runners = ThreadPoolExecutor(max_workers=RUNNERS, thread_name_prefix="tw-onnx-run")
        return self._runners

    def close(self) -> None:
        """Stop the single-window runner threads (the session itself needs no closing)."""
        if self._runners is not None:
            self._runners.shutdown(wait=False)
            self._runners = None

    @property
    def run_cost_tokens(self) -> float:
        """The fixed cost of one session run, in padded-token units: small on CPU (cost grows with tokens),
        effectively infinite on CUDA (one big batch beats several small ones)."""
        return CPU_RUN_COST_TOKENS if self._loaded.device == "cpu" else float("inf")

    # ------------------------------------------------------------------ internals

    def _feed(self, chunk: Sequence[Window]) -> dict[str, np.ndarray]:
        m = self.model.manifest
        pad = self._tok.pad_id  # type: ignore[union-attr]
        if m.kind == "sequence":
            length = int(m.pad_to or 0)
            ids = np.full((len(chunk), length), pad, dtype=np.int64)
            for r, w in enumerate(chunk):  # Keras pad_sequences(padding="pre")
                if len(w):
                    ids[r, length - len(w):] = w.ids[-length:]
            return {self._inputs[0]: ids}
        length = max(1, max(len(w) for w in chunk))
        ids = np.full((len(chunk), length), pad, dtype=np.int64)
        mask = np.zeros((len(chunk), length), dtype=np.int64)
        types = np.zeros((len(chunk), length), dtype=np.int64)
        for r, w in enumerate(chunk):
            ids[r, :len(w)] = w.ids
            mask[r, :len(w)] = 1
            if w.type_ids is not None:
                types[r, :len(w)] = w.type_ids
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return {k: v for k, v in feed.items() if k in self._inputs}

    def _run_chunk(self, chunk: Sequence[Window]) -> np.ndarray:
        feed = self._feed(chunk)
        if self._loaded.device == "cuda":
            binding = self.session.io_binding()
            for k, v in feed.items():
                binding.bind_cpu_input(k, np.ascontiguousarray(v))
            binding.bind_output(self._output)
            self.session.run_with_iobinding(binding)
            raw = binding.copy_outputs_to_cpu()[0]
        else:
            raw = self.session.run([self._output], feed)[0]
        return self._post(raw)

    def _post(self, raw: np.ndarray) -> np.ndarray:
        m = self.model.manifest
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim == 1:
            raw = raw[:, None]
        probs = _activate(raw, m.activation)
        if m.output_index is not None:
            probs = probs[:, m.output_index:m.output_index + 1]
        return probs

    def _run_text(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for s in range(0, len(texts), max(self.max_batch, 256)):  # bag-of-words: no padding, big chunks
            arr = np.array(texts[s:s + max(self.max_batch, 256)], dtype=object).reshape(-1, 1)
            raw = self.session.run([self._output], {self._inputs[0]: arr})[0]
            out[s:s + len(arr)] = self._post(raw)
        return out
