"""Toxicity post-check (type `toxicity`): per-label scores per sentence, on the shared ONNX runtime.

Each text is split into sentences; every sentence is scored by the model (long sentences over
overlapping windows, max over windows) and each label at or above `min_score` becomes a Finding whose
span is that sentence, so a policy can block the answer or redact just the offending sentence. The
thresholds and actions per label live in the policy's rules, e.g.

    - name: toxicity
      type: toxicity
      stages: [output]
      options: {model: embedded}        # or a model directory: converted Detoxify, HF ONNX export
      rules:
        "*": {action: block, threshold: 0.8}
        identity_attack: {action: block, threshold: 0.7}

Categories are Detoxify's (toxicity, severe_toxicity, obscene, threat, insult, identity_attack,
sexual_explicit) plus self_harm, those the model has. The embedded default (`model: embedded`, no
download) is `minilm-tw` in detectors/models/ (see its MODEL_CARD.md): all-MiniLM-L6-v2 fine-tuned here
(`python -m training.tox`) with one multi-label head for the toxicity labels and the injection
detector's prompt_injection / jailbreak, shipped as a ~23 MB int8 ONNX file (CPU; CUDA takes an fp16
variant when one is built with `--fp16`). Both detectors share one scorer (one session, one batcher and a
small result cache) per runtime. The earlier lexical default (a Keras BiLSTM + TF-IDF profanity
ensemble, ~5.5 MB) stays loadable as `model: lexical`; a converted Detoxify model also works
(`trustwall models convert detoxify`).

Reusing the scores (e.g. the bias detector wants an identity_attack signal):

    from detectors.toxicity import load_embedded, load_scorer
    scorer = load_embedded(build.resources)               # minilm-tw, shared per runtime via BuildContext.resources
    scorer.score(["some text"])  -> [{"toxicity": 0.01, "identity_attack": 0.0, ...}]   # sync, thread-safe
    await scorer.ascore([...])   -> same, through the MicroBatcher (coalesces concurrent callers)
    scorer.categories, scorer.info()
    load_scorer(build.resources, "path/to/model-dir", device="auto")                # any model directory
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import Field

from guardrails.detector import BuildContext, DetectorType, Options, Resources
from guardrails.normalize import fold_for_toxicity
from guardrails.errors import ConfigError, PolicyError
from guardrails.inference.remote_config import RemoteBackendOptions, RemoteOptions
from guardrails.types import CallContext, Finding, Stage

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.inference.classifier import OnnxTextClassifier

DETOXIFY_LABELS: tuple[str, ...] = ("toxicity", "severe_toxicity", "obscene", "threat", "insult",
                                    "identity_attack", "sexual_explicit")
TOXICITY_LABELS: tuple[str, ...] = (*DETOXIFY_LABELS, "self_harm")
EMBEDDED = "embedded"  # the trained transformer (detectors/models/minilm-tw)
EMBEDDED_DIR = "minilm-tw"
LEXICAL = "lexical"  # the earlier default: BiLSTM + TF-IDF profanity ensemble
Ensemble = Literal["mean", "max", "bilstm", "profanity"]


def models_root() -> Path:
    """detectors/models inside the installed package (package data, next to this module)."""
    return Path(__file__).resolve().parent / "models"


# ------------------------------------------------------------------------------------------ sentences

_SENTENCE = re.compile(r"\S.*?(?:[.!?\u2026\u3002]+[\"'\u201d\u2019)\]]*(?=\s|$)|(?=\n)|$)", re.S)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Code-point spans of the sentences of `text` (terminal punctuation or newline), whitespace trimmed."""
    out = []
    for m in _SENTENCE.finditer(text):
        start, end = m.start(), m.end()
        while end > start and text[end - 1].isspace():
            end -= 1
        if end > start:
            out.append((start, end))
    return out


# ------------------------------------------------------------------------------------------ scorers


class ToxicityScorer(Protocol):
    """What other detectors may call. `score` is synchronous; `ascore` goes through the batcher."""

    categories: list[str]

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]: ...

    async def ascore(self, texts: Sequence[str]) -> list[dict[str, float]]: ...

    def info(self) -> dict[str, Any]: ...


class _BatchedScorer:
    """score() runs the model; ascore() coalesces concurrent callers through one MicroBatcher."""

    categories: list[str]

    def __init__(self, max_batch: int, max_wait_ms: float, workers: int = 2, fn: Any = None):
        from guardrails.inference.batcher import MicroBatcher

        self._batcher: MicroBatcher[Any, Any] = MicroBatcher(
            fn or self.score, max_batch=max_batch, max_wait_ms=max_wait_ms, name="trustwall-toxicity", workers=workers)

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:  # pragma: no cover - abstract
        raise NotImplementedError

    async def ascore(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return await self._batcher.run(list(texts))

    def batch_stats(self) -> dict[str, Any]:
        return self._batcher.stats.as_dict()

    def close(self) -> None:
        self._batcher.close()


class ModelScorer(_BatchedScorer):
    """One model directory (the embedded transformer, a converted Detoxify model, an HF ONNX export).

    Every detector built on the same model directory gets this same object (see `load_scorer`), so the
    toxicity and injection checks of a call coalesce into one batcher and one forward pass per text, and
    a small LRU cache (keyed by a hash of the text, never the text) answers texts already scored: a
    stage that runs both detectors over a one-sentence message, or a stream re-checking its sentences.
    """

    def __init__(self, clf: OnnxTextClassifier, *, max_batch: int = 32, max_wait_ms: float = 2.0, workers: int = 2,
                 cache_size: int = 4096):
        import threading
        from collections import OrderedDict

        # Token-window models batch windows, not texts: a long text is submitted a slice of windows at a
        # time, so other callers' windows run between its slices, and when its check times out the slices
        # not yet submitted are never run (a running batch cannot be interrupted; one slice is the bound).
        self._windowed = bool(getattr(clf, "windowed", False))
        super().__init__(max_batch, max_wait_ms, workers, fn=self._run_windows if self._windowed else None)
        self.clf = clf
        self._slice = max(1, int(max_batch))
        self.categories = list(clf.categories)
        self._cache: OrderedDict[bytes, dict[str, float]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self.cache_hits = 0

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        return self.clf.predict_dicts(texts)

    @staticmethod
    def _key(text: str) -> bytes:
        import hashlib

        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    async def ascore(self, texts: Sequence[str]) -> list[dict[str, float]]:
        keys = [self._key(t) for t in texts]
        out: list[dict[str, float] | None] = [None] * len(keys)
        with self._lock:
            for i, k in enumerate(keys):
                hit = self._cache.get(k)
                if hit is not None:
                    self._cache.move_to_end(k)
                    out[i] = hit
                    self.cache_hits += 1
        todo = [i for i, v in enumerate(out) if v is None]
        if todo:
            got = await self._score_uncached([texts[i] for i in todo])
            with self._lock:
                for i, v in zip(todo, got):
                    out[i] = v
                    if self._cache_size:
                        self._cache[keys[i]] = v
                        if len(self._cache) > self._cache_size:
                            self._cache.popitem(last=False)
        return [dict(v) for v in out]  # type: ignore[arg-type]

    def _run_windows(self, windows: Sequence[Any]) -> list[Any]:
        return list(self.clf.run_windows(windows))

    async def _score_uncached(self, texts: list[str]) -> list[dict[str, float]]:
        if not self._windowed:
            return await self._batcher.run(texts)
        import asyncio

        import numpy as np

        if sum(len(t) for t in texts) > 2_000:  # tokenising a long text is work too: off the event loop
            windows = await asyncio.to_thread(self.clf.windows, texts)
        else:
            windows = self.clf.windows(texts)
        rows: list[Any] = []
        for s in range(0, len(windows), self._slice):  # a cancelled caller stops between slices
            rows.extend(await self._batcher.run(windows[s:s + self._slice]))
        scores = np.stack(rows) if rows else np.zeros((0, len(self.clf.labels)), dtype=np.float32)
        return self.clf.as_dicts(self.clf.reduce(len(texts), windows, scores))

    def info(self) -> dict[str, Any]:
        return {**self.clf.info(), "batcher": self.batch_stats(), "cache_hits": self.cache_hits}

    def close(self) -> None:
        super().close()
        closer = getattr(self.clf, "close", None)  # the remote backend's connection pool
        if closer is not None:
            closer()


class LexicalScorer(_BatchedScorer):
    """The earlier default (`model: lexical`): BiLSTM (six Jigsaw labels) + TF-IDF profanity model.

    `ensemble="mean"` (the default, chosen before measuring): toxicity and obscene are the mean of the
    BiLSTM's score and the profanity probability; other labels are the BiLSTM's. "max" takes the max
    instead; "bilstm" and "profanity" use one model alone (for comparisons). Every score dict also
    holds the raw "profanity" probability.
    """

    def __init__(self, bilstm: OnnxTextClassifier, profanity: OnnxTextClassifier, *, ensemble: Ensemble = "mean",
                 max_batch: int = 32, max_wait_ms: float = 2.0, workers: int = 2):
        super().__init__(max_batch, max_wait_ms, workers)
        self.bilstm, self.profanity, self.ensemble = bilstm, profanity, ensemble
        self.categories = list(bilstm.categories)

    def score(self, texts: Sequence[str]) -> list[dict[str, float]]:
        import numpy as np

        texts = list(texts)
        b = self.bilstm.predict(texts)
        p = self.profanity.predict(texts)[:, 0]
        cats = self.bilstm.categories
        out = b.copy()
        for lbl in ("toxicity", "obscene"):
            j = cats.index(lbl)
            if self.ensemble == "mean":
                out[:, j] = (b[:, j] + p) / 2.0
            elif self.ensemble == "max":
                out[:, j] = np.maximum(b[:, j], p)
            elif self.ensemble == "profanity":
                out[:, j] = p
        if self.ensemble == "profanity":
            out[:, [cats.index(c) for c in cats if c not in ("toxicity", "obscene")]] = 0.0
        return [{**dict(zip(cats, map(float, row))), "profanity": float(pv)} for row, pv in zip(out, p)]

    def info(self) -> dict[str, Any]:
        return {"model": LEXICAL, "ensemble": self.ensemble, "device": self.bilstm.device,
                "models": [self.bilstm.info(), self.profanity.info()], "batcher": self.batch_stats()}


def load_lexical(resources: Resources | None = None, *, device: str = "auto", ensemble: Ensemble = "mean",
                 max_batch: int = 32, max_wait_ms: float = 2.0, workers: int = 2) -> LexicalScorer:
    """The earlier lexical default (BiLSTM + profanity ensemble), created once per Resources."""
    def make() -> LexicalScorer:
        from guardrails.inference.classifier import OnnxTextClassifier

        root = models_root()
        return LexicalScorer(OnnxTextClassifier(root / "toxic-bilstm", device=device, max_batch=max_batch),  # type: ignore[arg-type]
                             OnnxTextClassifier(root / "profanity-check", device="cpu"),
                             ensemble=ensemble, max_batch=max_batch, max_wait_ms=max_wait_ms, workers=workers)

    if resources is None:
        return make()
    return resources.get_or_create(f"toxicity:{LEXICAL}:{ensemble}:{device}:{max_batch}:{max_wait_ms}:{workers}", make)


def load_embedded(resources: Resources | None = None, *, device: str = "auto", max_batch: int = 32,
                  max_wait_ms: float = 2.0, workers: int = 2, precision: str = "auto") -> ModelScorer:
    """The embedded default (minilm-tw), created once per Resources and shared by toxicity and injection."""
    return load_scorer(resources, EMBEDDED, device=device, max_batch=max_batch, max_wait_ms=max_wait_ms,
                       workers=workers, precision=precision)  # type: ignore[return-value]


def resolve_model(model: str, *, models_dir: Path | None = None, policy_dir: Path | None = None) -> Path:
    """A model option -> a directory: as given, under settings.models_dir, next to the policy, or a
    name under detectors/models/."""
    p = Path(model).expanduser()
    candidates = [p]
    if not p.is_absolute():
        candidates += [d / p for d in (models_dir, policy_dir) if d is not None]
        candidates.append(models_root() / p)
    for c in candidates:
        if c.is_dir():
            return c
    raise ConfigError(f"toxicity model {model!r} not found (looked in: {', '.join(str(c) for c in candidates)})")


def load_scorer(resources: Resources | None, model: str = EMBEDDED, *, device: str = "auto",
                models_dir: Path | None = None, policy_dir: Path | None = None, max_batch: int = 32,
                max_wait_ms: float = 2.0, ensemble: Ensemble = "mean", precision: str = "auto",
                workers: int = 2, remote: RemoteOptions | None = None) -> ToxicityScorer:
    """`embedded` (minilm-tw), `lexical` or a model directory -> a scorer, shared per Resources (the same
    directory, device and batching options give the same object, whichever detector asks). With `remote`
    the forward pass runs on an Open Inference Protocol server (guardrails.inference.remote); the model
    directory still supplies the manifest and the tokenizer."""
    if model == LEXICAL and remote is not None:
        raise ConfigError("options.backend: the lexical model (two models) cannot run remote; use embedded or a "
                          "model directory")
    if model == LEXICAL:
        return load_lexical(resources, device=device, ensemble=ensemble, max_batch=max_batch,
                            max_wait_ms=max_wait_ms, workers=workers)
    path = (models_root() / EMBEDDED_DIR if model == EMBEDDED
            else resolve_model(model, models_dir=models_dir, policy_dir=policy_dir)).resolve()

    def make() -> ModelScorer:
        from guardrails.inference.classifier import OnnxTextClassifier

        if remote is not None:
            from guardrails.inference.remote import RemoteTextClassifier

            clf: OnnxTextClassifier = RemoteTextClassifier(path, remote, max_batch=max_batch)
        else:
            clf = OnnxTextClassifier(path, device=device, max_batch=max_batch, precision=precision)  # type: ignore[arg-type]
        return ModelScorer(clf, max_batch=max_batch, max_wait_ms=max_wait_ms, workers=workers)

    if resources is None:
        return make()
    where = f"remote:{remote.key()}" if remote is not None else f"{device}:{precision}"
    return resources.get_or_create(f"toxicity:{path}:{where}:{max_batch}:{max_wait_ms}:{workers}", make)


# ------------------------------------------------------------------------------------------ detector


class ToxicityOptions(Options, RemoteBackendOptions):
    model: str = Field(EMBEDDED, description="'embedded' (minilm-tw), 'lexical' (the earlier BiLSTM + profanity "
                                             "ensemble) or a model directory (manifest.json or HF ONNX export)")
    device: Literal["auto", "cpu", "cuda"] | None = Field(None, description="default: settings.device")
    labels: list[str] | None = Field(None, description="categories to report; default: Detoxify's + self_harm that "
                                                       "the model has")
    min_score: float = Field(0.1, ge=0.0, le=1.0, description="scores below this are not reported at all")
    per_sentence: bool = Field(True, description="score each sentence (span = sentence); else the whole text")
    max_batch: int = Field(32, ge=1, le=1024)
    max_wait_ms: float = Field(2.0, ge=0.0, le=1000.0)
    workers: int = Field(2, ge=1, le=8, description="batcher threads: one gathers the next batch while one runs")
    precision: Literal["auto", "int8"] = Field("auto", description="int8: the model's quantised CPU variant")
    ensemble: Ensemble = Field("mean", description="lexical model only: how the two models combine")
    normalize: bool = Field(True, description="score text with styled letters, homoglyphs and leetspeak folded")


class ToxicityDetector:
    def __init__(self, name: str, scorer: ToxicityScorer, options: ToxicityOptions):
        self.name = name
        self.scorer = scorer
        self._min = options.min_score
        self._per_sentence = options.per_sentence
        self._fold = options.normalize
        wanted = options.labels or [c for c in scorer.categories if c in TOXICITY_LABELS] or list(scorer.categories)
        unknown = [c for c in wanted if c not in scorer.categories]
        if unknown:
            raise PolicyError(f"toxicity labels {unknown} not provided by the model (it has {scorer.categories})")
        self.labels = wanted

    def spans(self, text: str) -> list[tuple[int, int]]:
        if not self._per_sentence:
            return [(0, len(text))] if text.strip() else []
        return sentence_spans(text)

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        units: list[tuple[int, int, tuple[int, int]]] = []  # (text index, sentence index, span)
        pieces: list[str] = []
        for ti, text in enumerate(texts):
            for si, (s, e) in enumerate(self.spans(text)):
                units.append((ti, si, (s, e)))
                pieces.append(fold_for_toxicity(text[s:e]) if self._fold else text[s:e])  # spans stay original
        out: list[list[Finding]] = [[] for _ in texts]
        if not pieces:
            return out
        scores = await self.scorer.ascore(pieces)
        for (ti, si, span), sc in zip(units, scores):
            for label in self.labels:
                v = float(sc.get(label, 0.0))
                if v >= self._min:
                    out[ti].append(Finding(self.name, label, v, span, {"sentence": si, "label": label}))
        return out

    def info(self) -> dict[str, Any]:
        return {"type": "toxicity", "labels": self.labels, **self.scorer.info()}


def _build(spec, options: ToxicityOptions, build: BuildContext) -> ToxicityDetector:  # noqa: ANN001
    device = options.device or getattr(build.settings, "device", "auto")
    scorer = load_scorer(build.resources, options.model, device=device, models_dir=build.settings.models_dir,
                         policy_dir=build.policy_dir, max_batch=options.max_batch, max_wait_ms=options.max_wait_ms,
                         ensemble=options.ensemble, precision=options.precision, workers=options.workers,
                         remote=options.remote)
    return ToxicityDetector(spec.name, scorer, options)


TYPE = DetectorType(
    "toxicity", ToxicityOptions, _build, categories=TOXICITY_LABELS, stages=("output", "input"),
    description="toxicity per sentence (embedded MiniLM ONNX default, lexical, or a converted Detoxify / HF ONNX model)",
)
