"""MODEL_CARD.md for a trained NER overlay, written from its meta.json (so card and artefact agree)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LICENCES = {
    "wnut17-train-dev": "WNUT-17 emerging entities, train + dev (CC-BY-4.0)",
    "broad-twitter-corpus": "Broad Twitter Corpus, sections a b e f g h (CC-BY-4.0)",
    "wikigold": "wikigold (CC-BY-4.0)",
    "sec-filings-ner": "SEC-filings NER, FIN5 + FIN3 (CC-BY-3.0)",
}


def _row(name: str, r: dict[str, Any]) -> str:
    return (f"| {name} | {r['gold']:.0f} | {r['p_overlap']:.3f} / {r['r_overlap']:.3f} / {r['f1_overlap']:.3f} | "
            f"{r['p_exact']:.3f} / {r['r_exact']:.3f} / {r['f1_exact']:.3f} |")


def _ran(meta: dict[str, Any]) -> str:
    if "epochs_run" not in meta:
        return ""
    budget = meta["config"].get("max_minutes")
    why = f", stopped by the {budget}-minute budget" if meta.get("stopped_by_time_budget") else ""
    return f" ({meta['epochs_run']} run{why})"


def render(meta: dict[str, Any]) -> str:
    cfg, rows = meta["config"], meta["rows"]
    lines = [
        "# ner-tw: the embedded NER, fine-tuned by trustwall",
        "",
        f"The `ner` component of `{meta['base']}` 3.8.0 (spaCy's en_core_web_sm, MIT), fine-tuned with spaCy's own "
        "training (`nlp.update`, initialised from the stock weights; the component has its own tok2vec, so "
        "tok2vec, tagger, parser and lemmatizer are the stock ones). Same architecture and the same 18 OntoNotes "
        "labels; only the weights change. detectors/nlp.py loads it over the stock pipeline (`model: embedded`, "
        "the default; `model: sm` is the stock NER). Only `ner/` (cfg, moves, model) is shipped; the base's vocab "
        "is used.",
        "",
        f"Reproduce: `python -m training.ner` (its defaults are this model's settings: up to {cfg['epochs']} epochs, "
        "the best kept by validation F1; `--epochs`, `--limit`, `--out`, `--max-minutes`; see training/ner/). "
        "spaCy's CPU training is not bit-for-bit repeatable, so a rebuild gives figures close to these (two runs "
        "of the same schedule here were a few thousandths of F1 apart epoch by epoch), not the checksums below.",
        "",
        "## Data",
        "",
        "| source | train | validation |",
        "|---|---|---|",
    ]
    for src, c in sorted(meta["rows_by_source"].items()):
        lines.append(f"| {LICENCES.get(src, src)} | {c['train']} | {c['validation']} |")
    lines += [
        "",
        f"Plus {rows['rehearsal']} pseudo-rehearsal prompts (GSM8K train, self-instruct seeds, awesome-chatgpt-prompts; "
        "MIT / Apache-2.0 / CC0) annotated by the stock model, and in every training sentence the stock model's "
        "entities of labels the sets do not annotate (DATE, MONEY, NORP, ...) kept as silver annotations, so the "
        "other labels are not forgotten. Rows in each folder's eval_overlap_exclude.tsv are dropped. Gold labels: "
        "person -> PERSON; location -> GPE (LOC/FAC where the stock model calls that exact span so); "
        "organisation, corporation, group -> ORG; MISC, product, creative-work -> missing (no loss). Sentences "
        "with empty tokens are skipped. WNUT-17 *test* and presidio-synth were not used (evaluation only).",
        "",
        "Validation split: crc32(`source:id`) % 10 == 0 (about 10% of every source), never trained on.",
        "",
        "## Validation (PERSON + LOCATION micro; LOCATION = GPE/LOC/FAC)",
        "",
        "| system | gold | P / R / F1 overlap | P / R / F1 exact |",
        "|---|---|---|---|",
    ]
    for name, res in meta["validation"].items():
        lines.append(_row(name, res["PER+LOC"]))
    lines += ["", "Per type, fine-tuned:", "", "| type | gold | P / R / F1 overlap | P / R / F1 exact |", "|---|---|---|---|"]
    for t in ("PERSON", "LOCATION", "ORG"):
        lines.append(_row(t, meta["validation"]["fine-tuned"][t]))
    lines += [
        "",
        f"Training: {cfg['epochs']} epoch(s) max{_ran(meta)}, best epoch {meta['best_epoch']} by validation F1 "
        "overlap, "
        f"dropout {cfg['dropout']}, Adam lr {cfg['learn_rate']}, seed {cfg['seed']}, batch 8 -> 32; "
        f"{meta['train_seconds'] / 60:.1f} min on 2 shared CPU cores.",
        "",
        "## Files (sha256)",
        "",
    ]
    lines += [f"- `{rel}` {digest}" for rel, digest in sorted(meta["sha256"].items())]
    lines += ["", "Licence: the weights derive from en_core_web_sm (MIT) and the CC-BY data above (attribution "
              "here); distributed with trustwall (Apache-2.0).", ""]
    return "\n".join(lines)


def write_card(out: Path) -> Path:
    meta = json.loads((out / "meta.json").read_text(encoding="utf-8"))
    path = out / "MODEL_CARD.md"
    path.write_text(render(meta), encoding="utf-8")
    return path
