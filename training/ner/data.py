"""Training data for the NER fine-tune: the staged CC-BY NER sets, mapped to the pipeline's labels.

Sources (``../shared/train-data``, each folder's README has licence and sha256): WNUT-17 train+dev,
Broad Twitter Corpus, wikigold, SEC-filings NER. Rows listed in a folder's ``eval_overlap_exclude.tsv``
are dropped. Labels map to the embedded pipeline's OntoNotes scheme: person -> PERSON, location -> GPE
(LOC/FAC when the stock model calls that exact span so), organisation/corporation/group -> ORG; MISC,
product and creative-work spans are *missing* (no loss either way), not "outside".

Pseudo-rehearsal (limits forgetting of what the sets do not annotate): in each training sentence the stock
model's entities of the other labels (DATE, MONEY, NORP, ...) that do not overlap a gold span are kept as
annotations, and benign prompts (GSM8K train, self-instruct seeds, awesome-chatgpt-prompts) are added
with the stock model's full annotation.

Validation split: a sentence is validation when crc32(source:id) % 10 == 0 (10%, every source), train
otherwise. Pure functions over token lists; no spaCy here except in `silver` callers.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

TARGET = ("PERSON", "GPE", "LOC", "FAC", "ORG")  # labels the gold sets decide
# source folder -> (jsonl files, tag scheme); IOB1 files use I- for every token and B- only between neighbours
SOURCES: dict[str, tuple[tuple[str, ...], str]] = {
    "wnut17-train-dev": (("wnut17train.jsonl", "emerging.dev.jsonl"), "iob2"),
    "broad-twitter-corpus": (("a.jsonl", "b.jsonl", "e.jsonl", "f.jsonl", "g.jsonl", "h.jsonl"), "iob2"),
    "wikigold": (("wikigold.jsonl",), "iob1"),
    "sec-filings-ner": (("FIN5.jsonl", "FIN3.jsonl"), "iob1"),
}
LABEL_MAP: dict[str, str | None] = {  # gold label -> pipeline label; None: missing (neither entity nor O)
    "person": "PERSON", "PER": "PERSON",
    "location": "GPE", "LOC": "GPE",
    "corporation": "ORG", "group": "ORG", "ORG": "ORG",
    "product": None, "creative-work": None, "MISC": None,
}


@dataclass
class Sentence:
    source: str
    id: str
    tokens: list[str]
    spans: list[tuple[int, int, str | None]]  # token start, end (exclusive), pipeline label (None = missing)
    extra: list[tuple[int, int, str]] = field(default_factory=list)  # silver spans of other labels

    @property
    def validation(self) -> bool:
        return is_validation(self.source, self.id)


def is_validation(source: str, row_id: str) -> bool:
    return zlib.crc32(f"{source}:{row_id}".encode()) % 10 == 0


def tags_to_spans(tags: list[str], scheme: str) -> list[tuple[int, int, str]]:
    """BIO (iob2) or IOB1 tags -> (start, end, label) token spans."""
    spans: list[tuple[int, int, str]] = []
    start, label = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, lab = tag.partition("-")
        begins = prefix == "B" or (prefix == "I" and (label != lab or (scheme == "iob2" and start < 0)))
        if prefix == "O" or begins:
            if start >= 0:
                spans.append((start, i, label))
            start, label = (i, lab) if prefix != "O" else (-1, "")
    return spans


def excluded_ids(folder: Path) -> set[str]:
    path = folder / "eval_overlap_exclude.tsv"
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as fh:
        return {row["row_id"] for row in csv.DictReader(fh, delimiter="\t")}


def load_sources(root: Path, sources: Iterable[str] = tuple(SOURCES), limit: int | None = None) -> list[Sentence]:
    """All usable sentences (excluded rows dropped, empty ones skipped); `limit` per source for tests."""
    out: list[Sentence] = []
    for name in sources:
        files, scheme = SOURCES[name]
        folder = root / name
        skip = excluded_ids(folder)
        n = 0
        for fname in files:
            path = folder / fname
            if not path.exists():
                continue
            with path.open(encoding="utf-8") as fh:
                for line in fh:
                    row = json.loads(line)
                    if row["id"] in skip or not row["tokens"] or any(not t.strip() for t in row["tokens"]):
                        continue
                    spans = [(s, e, LABEL_MAP.get(lab)) for s, e, lab in tags_to_spans(row["tags"], scheme)]
                    out.append(Sentence(name, row["id"], list(row["tokens"]), spans))
                    n += 1
                    if limit is not None and n >= limit:
                        break
            if limit is not None and n >= limit:
                break
    return out


def rehearsal_texts(root: Path, limit: int = 1500) -> list[str]:
    """Benign prompts for pseudo-rehearsal (train splits only; GSM8K *test* is a benchmark set)."""
    texts: list[str] = []
    gsm = root / "gsm8k" / "train.jsonl"
    if gsm.exists():
        with gsm.open(encoding="utf-8") as fh:
            texts.extend(json.loads(line)["question"] for line in fh)
    seeds = root / "self-instruct-seeds" / "seed_tasks.jsonl"
    if seeds.exists():
        with seeds.open(encoding="utf-8") as fh:
            for line in fh:
                row = json.loads(line)
                texts.append(row["instruction"])
                texts.extend(i["input"] for i in row.get("instances", []) if i.get("input"))
    prompts = root / "awesome-chatgpt-prompts" / "prompts.csv"
    if prompts.exists():
        skip = excluded_ids(root / "awesome-chatgpt-prompts")
        csv.field_size_limit(1 << 24)
        with prompts.open(encoding="utf-8") as fh:
            texts.extend(r["prompt"] for r in csv.DictReader(fh) if r.get("act") not in skip and r.get("prompt"))
    texts = [t.strip()[:1500] for t in texts if t and t.strip()]
    # deterministic spread over the three sources
    step = max(1, len(texts) // limit) if limit else 1
    return texts[::step][:limit]


def biluo(n: int, spans: list[tuple[int, int, str | None]], extra: list[tuple[int, int, str]]) -> list[str]:
    """Token tags for spaCy's Example: gold spans, silver extras where free, '-' (missing) for None spans."""
    tags = ["O"] * n
    taken = [False] * n

    def put(s: int, e: int, lab: str | None) -> None:
        for i in range(s, e):
            taken[i] = True
        if lab is None:
            for i in range(s, e):
                tags[i] = "-"
        elif e - s == 1:
            tags[s] = f"U-{lab}"
        else:
            tags[s], tags[e - 1] = f"B-{lab}", f"L-{lab}"
            for i in range(s + 1, e - 1):
                tags[i] = f"I-{lab}"

    for s, e, lab in spans:
        put(s, e, lab)
    for s, e, lab in extra:
        if not any(taken[s:e]):
            put(s, e, lab)
    return tags


def split(sentences: list[Sentence]) -> tuple[list[Sentence], list[Sentence]]:
    train = [s for s in sentences if not s.validation]
    dev = [s for s in sentences if s.validation]
    return train, dev


def iter_counts(sentences: Iterable[Sentence]) -> Iterator[tuple[str, int]]:
    by: dict[str, int] = {}
    for s in sentences:
        by[s.source] = by.get(s.source, 0) + 1
    yield from sorted(by.items())
