"""Copyright post-check: verbatim and near-verbatim reuse of a registered corpus, with span evidence.

The corpus is managed with `trustwall corpus add|remove|list|stats` and persisted in
`<data_dir>/copyright/index.npz` (see detectors/copyright/index.py). The detector loads it once, at
start-up. Candidate sources come from the exact inverted index of the corpus's shingles (default) or the
datasketch MinHashLSH (`candidates: lsh|both`, built at start-up only then). An empty or absent corpus
finds nothing and costs nothing (no tokenising, no hashing).

Heavy paraphrase (document level): when at least `doc_min_containment` of the output's distinct word
3-grams occur inside one region of one source (about twice the output's length) and that is at least
`doc_min_shingles` 3-grams, the finding has category
`copyright_paraphrase`, score = that local containment, span = first to last covered output word, and
evidence {source_id, title, licence, containment, local_containment, shingles, output_shingles, spans,
source_start, source_end} (spans: the merged output spans the shared 3-grams cover). It is left out when
span findings of the same source with similarity >= `doc_skip_similarity` (0.8, the default policy's
copyright threshold) already cover 80% of those spans (a verbatim copy is reported once).

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
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field

from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.types import CallContext, Finding, Judgement, Stage

if TYPE_CHECKING:  # pragma: no cover
    from detectors.copyright.index import CorpusIndex
    from detectors.copyright.schema import DocMatch, Match

CATEGORY = "copyright"
CITE_CATEGORY = "copyright_cite"
PARAPHRASE_CATEGORY = "copyright_paraphrase"


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
    candidates: Literal["exact", "lsh", "both"] = Field(
        "exact", description="candidate sources: exact inverted index of shingles, MinHash LSH, or both")
    doc_min_containment: float = Field(0.25, gt=0, le=1, description="document level: share of the output's "
                                       "3-grams inside one source region (heavy paraphrase)")
    doc_min_shingles: int = Field(20, ge=1, le=100_000, description="document level: fewest shared 3-grams")
    document_findings: bool = Field(True, description="report heavy paraphrase at document level")
    doc_skip_similarity: float = Field(0.8, ge=0, le=1, description="no document-level finding where spans of this "
                                       "similarity (the policy's copyright threshold) from the same source cover it")


def spans_cover(d: DocMatch, matches: Sequence[Match], share: float = 0.8) -> bool:
    """The span findings of the same source already cover `share` of the document-level spans (so the
    document-level finding would add nothing)."""
    total = sum(e - s for s, e in d.spans)
    covered = sum(max(0, min(e, me) - max(s, ms)) for s, e in d.spans
                  for m in matches if m.source_id == d.source_id for ms, me in (m.span,))
    return covered >= share * total


def citation_for(m: Match | DocMatch) -> str:
    return f"{m.title} ({m.source_id})" if m.title and m.title != m.source_id else m.source_id


class CopyrightDetector:
    """One per runtime. The index is read-only here; searches run in a worker thread."""

    def __init__(self, name: str, index: CorpusIndex, options: CopyrightOptions, source: str = ""):
        from detectors.copyright.schema import allow_filter

        self.name = name
        self.index = index
        self.options = options
        self.source = source
        self._exclude = allow_filter(options.allow_sources, options.allow_licences)
        if len(index) and options.candidates != "exact":
            index.build_lsh()

    def info(self) -> dict[str, Any]:
        return {"corpus": self.source, "documents": len(self.index), "device": "cpu"}

    def _cite(self, m: Match | DocMatch) -> bool:
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

    def doc_finding(self, d: DocMatch) -> Finding:
        ev: dict[str, Any] = {
            "source_id": d.source_id, "title": d.title, "licence": d.licence,
            "containment": round(d.containment, 4), "local_containment": round(d.local_containment, 4),
            "shingles": d.shingles, "output_shingles": d.output_shingles, "spans": [list(s) for s in d.spans],
            "source_start": d.source_span[0], "source_end": d.source_span[1],
        }
        cat = PARAPHRASE_CATEGORY
        if self._cite(d):
            cat = CITE_CATEGORY
            ev["citation"] = citation_for(d)
        return Finding(self.name, cat, d.local_containment, (d.spans[0][0], d.spans[-1][1]), ev)

    def check(self, text: str) -> list[Finding]:
        o = self.options
        matches, docs = self.index.search_all(text, min_words=o.min_words, max_gap=o.max_gap,
                                              query_stride=o.query_stride, exclude=self._exclude,
                                              candidates=o.candidates, doc_sources=4 if o.document_findings else 0)
        out = [self.finding(m) for m in matches]
        out += [self.doc_finding(d) for d in docs
                if d.spans and d.local_containment >= o.doc_min_containment and d.shingles >= o.doc_min_shingles
                and not spans_cover(d, [m for m in matches if m.similarity >= o.doc_skip_similarity])]
        return out[:o.max_findings]

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        if not len(self.index):
            return [[] for _ in texts]
        return await asyncio.to_thread(lambda: [self.check(t) for t in texts])


def citation_block(judgements: Sequence[Judgement]) -> str:
    """The sources block for this detector's matches passed with a citation ('' when there are none);
    the pipeline appends the same block (guardrails.pipeline.citations) to every passed-on answer."""
    from guardrails.pipeline import citations

    return citations([j for j in judgements if j.finding.category == CITE_CATEGORY])


def resolve_corpus(options: CopyrightOptions, build: BuildContext) -> Path:
    from detectors.copyright.schema import INDEX_FILE, default_index_path

    if options.corpus is None:
        return default_index_path(build.settings.data_dir)
    p = Path(options.corpus).expanduser()
    if not p.is_absolute() and build.policy_dir is not None and (build.policy_dir / p).exists():
        p = build.policy_dir / p
    return p / INDEX_FILE if p.is_dir() or p.suffix != ".npz" else p


def build_detector(spec, options: CopyrightOptions, build: BuildContext) -> CopyrightDetector:  # noqa: ANN001
    from detectors.copyright.index import CorpusIndex

    path = resolve_corpus(options, build)
    index = build.resources.get_or_create(f"copyright-index:{path.resolve()}",
                                          lambda: CorpusIndex.load(path, missing_ok=options.corpus is None))
    return CopyrightDetector(spec.name, index, options, str(path))


TYPE = DetectorType(
    "copyright", CopyrightOptions, build_detector, categories=(CATEGORY, CITE_CATEGORY, PARAPHRASE_CATEGORY),
    stages=("output",),
    description="verbatim and near-verbatim reuse of the registered corpus (exact shingle index or MinHash LSH, "
                "exact verification) and document-level heavy paraphrase",
)
