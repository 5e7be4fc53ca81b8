"""Copyright post-check: verbatim and near-verbatim reuse of a registered corpus, with span evidence.

The corpus is managed with `trustwall corpus add|remove|list|stats` and persisted in
`<data_dir>/copyright/index.npz` (see detectors/copyright_index.py). The detector loads it once, at
start-up, and builds the datasketch MinHashLSH there. An empty or absent corpus finds nothing and costs
nothing (no tokenising, no hashing).

Each finding: category `copyright` (or `copyright_cite` for works the policy lets through with a
citation), score = similarity (share of the span's words covered by word 3-grams shared with the
source, after normalisation), span = the output span, evidence = {source_id, title, licence,
source_start, source_end, similarity, words, matched_words[, citation]}. No raw text.

Citation contract (for adapters): a judgement whose finding has category `copyright_cite` and
`evidence["citation"]` is a match the policy lets through with a citation (give that category the
rule `{action: flag}`); the core pipeline (guardrails.pipeline.citations) appends the sources block to
the passed-on output, plain and streamed alike, so every adapter returns it.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.types import CallContext, Finding, Judgement

if TYPE_CHECKING:  # pragma: no cover
    from detectors.copyright_index import CorpusIndex, Match

CATEGORY = "copyright"
CITE_CATEGORY = "copyright_cite"


class CopyrightOptions(Options):
    corpus: str | None = Field(None, description="index file (or its directory); default <data_dir>/copyright/index.npz")
    min_words: int = Field(20, ge=4, le=10_000, description="shortest reported span, in words")
    max_gap: int = Field(3, ge=0, le=50, description="unmatched words bridged inside one span")
    allow_sources: list[str] = Field(default_factory=list, description="source id globs never reported (licensed)")
    allow_licences: list[str] = Field(default_factory=list, description="licence names never reported")
    cite_sources: list[str] = Field(default_factory=list, description="source id globs reported as copyright_cite")
    cite_licences: list[str] = Field(default_factory=list, description="licences reported as copyright_cite")
    query_stride: int = Field(4, ge=1, le=32, description="words between query windows slid over the output")
    max_findings: int = Field(16, ge=1, le=1000)


def citation_for(m: Match) -> str:
    return f"{m.title} ({m.source_id})" if m.title and m.title != m.source_id else m.source_id


class CopyrightDetector:
    """One per runtime. The index is read-only here; searches run in a worker thread."""

    def __init__(self, name: str, index: CorpusIndex, options: CopyrightOptions, source: str = ""):
        from detectors.copyright_index import allow_filter

        self.name = name
        self.index = index
        self.options = options
        self.source = source
        self._exclude = allow_filter(options.allow_sources, options.allow_licences)
        if len(index):
            index.build_lsh()

    def info(self) -> dict[str, Any]:
        return {"corpus": self.source, "documents": len(self.index), "device": "cpu"}

    def _cite(self, m: Match) -> bool:
        o = self.options
        if m.licence is not None and m.licence.casefold() in {x.casefold() for x in o.cite_licences}:
            return True
        return any(fnmatch.fnmatchcase(m.source_id, pat) for pat in o.cite_sources)

    def finding(self, m: Match) -> Finding:
        ev: dict[str, Any] = {
            "source_id": m.source_id, "title": m.title, "licence": m.licence,
            "source_start": m.source_span[0], "source_end": m.source_span[1],
            "similarity": round(m.similarity, 4), "words": m.words, "matched_words": m.matched_words,
        }
        cat = CATEGORY
        if self._cite(m):
            cat = CITE_CATEGORY
            ev["citation"] = citation_for(m)
        return Finding(self.name, cat, m.similarity, m.span, ev)

    def check(self, text: str) -> list[Finding]:
        o = self.options
        matches = self.index.search(text, min_words=o.min_words, max_gap=o.max_gap, query_stride=o.query_stride,
                                    exclude=self._exclude)
        return [self.finding(m) for m in matches[:o.max_findings]]

    async def detect(self, texts: Sequence[str], ctx: CallContext) -> list[list[Finding]]:
        if not len(self.index):
            return [[] for _ in texts]
        return await asyncio.to_thread(lambda: [self.check(t) for t in texts])


def citation_block(judgements: Sequence[Judgement]) -> str:
    """The sources block for this detector's matches passed with a citation ('' when there are none);
    the pipeline appends the same block (guardrails.pipeline.citations) to every passed-on answer."""
    from guardrails.pipeline import citations

    return citations([j for j in judgements if j.finding.category == CITE_CATEGORY])


def resolve_corpus(options: CopyrightOptions, build: BuildContext) -> Path:
    from detectors.copyright_index import INDEX_FILE, default_index_path

    if options.corpus is None:
        return default_index_path(build.settings.data_dir)
    p = Path(options.corpus).expanduser()
    if not p.is_absolute() and build.policy_dir is not None and (build.policy_dir / p).exists():
        p = build.policy_dir / p
    return p / INDEX_FILE if p.is_dir() or p.suffix != ".npz" else p


def _build(spec, options: CopyrightOptions, build: BuildContext) -> CopyrightDetector:  # noqa: ANN001
    from detectors.copyright_index import CorpusIndex

    path = resolve_corpus(options, build)
    index = build.resources.get_or_create(f"copyright-index:{path.resolve()}",
                                          lambda: CorpusIndex.load(path, missing_ok=options.corpus is None))
    return CopyrightDetector(spec.name, index, options, str(path))


TYPE = DetectorType(
    "copyright", CopyrightOptions, _build, categories=(CATEGORY, CITE_CATEGORY), stages=("output",),
    description="verbatim and near-verbatim reuse of the registered corpus (MinHash LSH, exact verification)",
)
