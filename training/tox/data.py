"""Training rows for the shared MiniLM toxicity + injection model, from ../shared/train-data.

Every source's ``eval_overlap_exclude.tsv`` is applied (a row is dropped when its normalised text starts
with an excluded row's normalised prefix), jailbreaks come only from the no-eval-overlap file, and NotInject
is never read (it is a held-out over-defence check). Labels a source does not annotate are masked (NaN), so
the loss ignores them.
"""

from __future__ import annotations

import csv
import json
import math
import random
import re
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

LABELS: tuple[str, ...] = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack",
                           "sexual_explicit", "self_harm", "prompt_injection", "jailbreak")
TOX = LABELS[:8]
NAN = math.nan

SOURCES: dict[str, str] = {
    "civil_comments": "toxic-spans-civil-comments (CC0-1.0)",
    "davidson": "davidson-hate-offensive (MIT)",
    "hatemoji": "hatemoji-build (CC-BY-4.0)",
    "xstest": "xstest safe prompts (CC-BY-4.0)",
    "pyrit": "pyrit-harm-scored sexual / self_harm (MIT)",
    "deepset": "deepset-prompt-injections (Apache-2.0)",
    "jailbreak": "jailbreak-llms-inthewild no_eval_overlap (MIT)",
    "awesome": "awesome-chatgpt-prompts (CC0-1.0)",
    "self_instruct": "self-instruct-seeds (Apache-2.0)",
    "gsm8k": "gsm8k train (MIT)",
    "contrast": "training/tox/contrast.tsv (written here)",
}


@dataclass(frozen=True)
class Row:
    text: str
    labels: tuple[float, ...]  # len(LABELS); NaN = not annotated
    source: str


def _norm(s: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", s.lower()))


def _excluded(folder: Path) -> list[str]:
    path = folder / "eval_overlap_exclude.tsv"
    if not path.exists():
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for rec in csv.DictReader(fh, delimiter="\t"):
            p = _norm(rec.get("text_prefix") or "")
            if len(p) >= 8:
                out.append(p)
    return out


def _keep(texts: Iterable[tuple[str, tuple[float, ...]]], folder: Path, source: str) -> Iterator[Row]:
    ex = _excluded(folder)
    for text, labels in texts:
        text = text.strip()
        if not text:
            continue
        n = _norm(text)
        if any(n.startswith(p) for p in ex):
            continue
        yield Row(text, labels, source)


def lab(**kw: float) -> tuple[float, ...]:
    """Labels with the given values, every other label masked."""
    return tuple(float(kw[k]) if k in kw else NAN for k in LABELS)


def benign() -> tuple[float, ...]:
    return tuple(0.0 for _ in LABELS)


def civil_comments(root: Path) -> Iterator[Row]:
    folder = root / "toxic-spans-civil-comments"
    d = folder / "data"
    csv.field_size_limit(sys.maxsize)
    texts = {r["comment_id"]: r["comment_text"] for r in csv.DictReader(open(d / "comments.csv", encoding="utf-8"))}
    ann_of: dict[str, list[str]] = {}
    whole: dict[str, int] = Counter()
    clean: dict[str, int] = Counter()
    for r in csv.DictReader(open(d / "annotations.csv", encoding="utf-8")):
        ann_of.setdefault(r["comment_id"], []).append(r["annotation"])
        whole[r["comment_id"]] += r["all toxic"] == "True"
        clean[r["comment_id"]] += r["not toxic"] == "True"
    types: dict[str, set[str]] = {}
    for r in csv.DictReader(open(d / "spans.csv", encoding="utf-8")):
        types.setdefault(r["annotation"], set()).add(r["type"].lower())
    kinds = {"insult": "insult", "profane/obscene": "obscene", "obscene": "obscene", "profane": "obscene",
             "identity based attack": "identity_attack", "identity-based attack": "identity_attack",
             "identity_attack": "identity_attack", "threat": "threat"}

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for cid, anns in ann_of.items():
            if cid not in texts:
                continue
            n = len(anns)
            toxic_votes = sum(1 for a in anns if types.get(a)) + whole[cid]
            votes: Counter[str] = Counter()
            for a in anns:
                for t in types.get(a, ()):
                    for key, name in kinds.items():
                        if key in t:
                            votes[name] += 1
                            break
            toxic = 1.0 if (n - clean[cid]) * 2 > n and toxic_votes * 2 >= n else 0.0
            kw = {"toxicity": toxic, "prompt_injection": 0.0, "jailbreak": 0.0,
                  "severe_toxicity": NAN if toxic else 0.0}  # not annotated here: positives come from Davidson
            for name in ("insult", "obscene", "identity_attack", "threat"):
                kw[name] = 1.0 if votes[name] * 3 >= n else 0.0  # a third of the annotators
            if not toxic:
                kw.update(sexual_explicit=0.0, self_harm=0.0)
            yield texts[cid], lab(**kw)

    yield from _keep(rows(), folder, "civil_comments")


def davidson(root: Path) -> Iterator[Row]:
    folder = root / "davidson-hate-offensive"

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for r in csv.DictReader(open(folder / "labeled_data.csv", encoding="utf-8")):
            cls = int(r["class"])
            if cls == 0:
                sev = 1.0 if int(r["hate_speech"]) * 3 >= int(r["count"]) * 2 else NAN
                yield r["tweet"], lab(toxicity=1, identity_attack=1, severe_toxicity=sev, prompt_injection=0,
                                      jailbreak=0)
            elif cls == 1:
                yield r["tweet"], lab(toxicity=1, severe_toxicity=0, prompt_injection=0, jailbreak=0)
            else:
                yield r["tweet"], lab(toxicity=0, severe_toxicity=0, obscene=0, threat=0, insult=0,
                                      identity_attack=0, sexual_explicit=0, self_harm=0, prompt_injection=0,
                                      jailbreak=0)

    yield from _keep(rows(), folder, "davidson")


def hatemoji(root: Path) -> Iterator[Row]:
    folder = root / "hatemoji-build"

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for split in ("train", "validation"):  # the set's own test split is left alone
            for r in csv.DictReader(open(folder / f"{split}.csv", encoding="utf-8")):
                y = int(r["label_gold"])
                if y:
                    yield r["text"], lab(toxicity=1, identity_attack=1, prompt_injection=0, jailbreak=0,
                                         threat=1 if "threat" in r["type"] else NAN)
                else:
                    yield r["text"], lab(toxicity=0, identity_attack=0, threat=0, severe_toxicity=0,
                                         prompt_injection=0, jailbreak=0)

    yield from _keep(rows(), folder, "hatemoji")


def xstest(root: Path) -> Iterator[Row]:
    folder = root / "xstest"

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for r in csv.DictReader(open(folder / "xstest_prompts.csv", encoding="utf-8")):
            if r["label"] == "safe":
                yield r["prompt"], benign()

    yield from _keep(rows(), folder, "xstest")


def pyrit(root: Path) -> Iterator[Row]:
    folder = root / "pyrit-harm-scored"

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for name, label in (("sexual.csv", "sexual_explicit"), ("self_harm.csv", "self_harm")):
            with open(folder / name, encoding="utf-8") as fh:
                lines = [ln for ln in fh if not ln.startswith("#")]
            for r in csv.DictReader(lines):
                try:
                    score = float(r["human_score_1"])
                except (TypeError, ValueError):
                    continue
                text = r.get("assistant_response") or ""
                yield text, lab(**{label: 1.0 if score >= 0.5 else 0.0, "prompt_injection": 0.0, "jailbreak": 0.0})

    yield from _keep(rows(), folder, "pyrit")


def deepset(root: Path) -> Iterator[Row]:
    folder = root / "deepset-prompt-injections"

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for line in open(folder / "train.jsonl", encoding="utf-8"):  # the set's own test split is left alone
            r = json.loads(line)
            if int(r["label"]):
                yield r["text"], lab(prompt_injection=1)
            else:
                yield r["text"], benign()

    yield from _keep(rows(), folder, "deepset")


def jailbreaks(root: Path) -> Iterator[Row]:
    folder = root / "jailbreak-llms-inthewild"
    data = json.load(open(folder / "inthewild_jailbreak_llms.no_eval_overlap.json", encoding="utf-8"))
    texts = (x if isinstance(x, str) else x.get("prompt") or x.get("text") or "" for x in data)
    yield from _keep(((t, lab(jailbreak=1, prompt_injection=1)) for t in texts), folder, "jailbreak")


def awesome(root: Path) -> Iterator[Row]:
    folder = root / "awesome-chatgpt-prompts"
    csv.field_size_limit(sys.maxsize)
    rows = csv.DictReader(open(folder / "prompts.csv", encoding="utf-8"))
    yield from _keep(((r["prompt"], benign()) for r in rows), folder, "awesome")


def self_instruct(root: Path) -> Iterator[Row]:
    folder = root / "self-instruct-seeds"

    def rows() -> Iterator[tuple[str, tuple[float, ...]]]:
        for name in ("seed_tasks.jsonl", "user_oriented_instructions.jsonl"):
            for line in open(folder / name, encoding="utf-8"):
                r = json.loads(line)
                yield r.get("instruction", ""), benign()

    yield from _keep(rows(), folder, "self_instruct")


def gsm8k(root: Path) -> Iterator[Row]:
    folder = root / "gsm8k"
    rows = (json.loads(line)["question"] for line in open(folder / "train.jsonl", encoding="utf-8"))
    yield from _keep(((q, benign()) for q in rows), folder, "gsm8k")


def contrast(path: Path) -> Iterator[Row]:
    """Our own sentences: ``label<TAB>text`` where label is ``benign`` or a comma list of LABELS."""
    if not path.exists():
        return
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if not line or line.startswith("#") or "\t" not in line:
            continue
        tag, text = line.split("\t", 1)
        if tag == "benign":
            yield Row(text, benign(), "contrast")
        else:
            on = set(tag.split(","))
            unknown = on - set(LABELS)
            if unknown:
                raise ValueError(f"{path}: unknown label(s) {sorted(unknown)}")
            tox = bool(on & set(TOX))
            yield Row(text, tuple(1.0 if k in on else (NAN if (tox and k in TOX) else 0.0) for k in LABELS),
                      "contrast")


LOADERS = {"civil_comments": civil_comments, "davidson": davidson, "hatemoji": hatemoji, "xstest": xstest,
           "pyrit": pyrit, "deepset": deepset, "jailbreak": jailbreaks, "awesome": awesome,
           "self_instruct": self_instruct, "gsm8k": gsm8k}


def load(root: Path, *, limit: int | None = None, contrast_file: Path | None = None, seed: int = 0) -> list[Row]:
    out: list[Row] = []
    rng = random.Random(seed)
    for name, fn in LOADERS.items():
        rows = list(fn(root))
        if limit is not None and len(rows) > limit:
            rows = rng.sample(rows, limit)
        out.extend(rows)
    if contrast_file is not None:
        out.extend(contrast(contrast_file))
    return out


def split(rows: list[Row], frac: float = 0.1, seed: int = 0) -> tuple[list[Row], list[Row]]:
    """A validation split stratified by source (and by injection positives), fixed seed."""
    rng = random.Random(seed)
    groups: dict[tuple[str, bool], list[Row]] = {}
    for r in rows:
        groups.setdefault((r.source, r.labels[-1] == 1 or r.labels[-2] == 1), []).append(r)
    train: list[Row] = []
    val: list[Row] = []
    for key in sorted(groups):
        g = groups[key][:]
        rng.shuffle(g)
        k = max(1, int(round(len(g) * frac))) if len(g) >= 5 else 0
        val.extend(g[:k])
        train.extend(g[k:])
    rng.shuffle(train)
    return train, val


def summary(rows: list[Row]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        s = out.setdefault(r.source, {"rows": 0, **{k: 0 for k in LABELS}})
        s["rows"] += 1
        for k, v in zip(LABELS, r.labels):
            if v == 1:
                s[k] += 1
    return out
