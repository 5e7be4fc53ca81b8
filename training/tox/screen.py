"""Choose the toxicity detector's `screen` (score a multi-sentence text whole first; its sentences only when
some label reaches the screen) on the training data's own validation split, never on an evaluation suite.

For every validation text of two or more sentences, the detector's answer without the screen is the max
over its sentences; with the screen, a text whose whole-text score stays under the screen on every label
gets no finding. A screen *misses* a text when some label's sentence max reaches that label's policy
threshold (detectors/models/minilm-tw/thresholds.json) while the whole text stays under the screen.

Rule (fixed before measuring): the highest screen on the grid with no miss; report the share of texts
that skip the sentence pass at that screen.

    python -m training.tox.screen [--model detectors/models/minilm-tw] [--limit N]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from training.tox import data

ROOT = Path(__file__).resolve().parents[2]
GRID = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3)


def measure(model_dir: Path, data_root: Path, *, limit: int | None = None, seed: int = 0,
            threads: int = 2) -> dict[str, Any]:
    from detectors.toxicity import TOXICITY_LABELS, sentence_spans
    from guardrails.inference.classifier import OnnxTextClassifier
    from guardrails.normalize import fold_for_toxicity

    rows = data.load(data_root, contrast_file=Path(__file__).with_name("contrast.tsv"), seed=seed)
    _, val = data.split(rows, seed=seed)
    multi = [r for r in val if len(sentence_spans(r.text)) > 1]
    if limit is not None:
        multi = multi[:limit]
    texts = [r.text for r in multi]
    tox_col = data.LABELS.index("toxicity")
    gold = np.array([r.labels[tox_col] == 1 for r in multi])
    clf = OnnxTextClassifier(model_dir, device="cpu", precision="int8", max_batch=32, check=False,
                             threads=threads or None)
    labels = [c for c in clf.categories if c in TOXICITY_LABELS]
    cols = [clf.categories.index(c) for c in labels]
    thresholds = json.loads((model_dir / "thresholds.json").read_text())
    limit_of = np.array([float(thresholds.get(c, 0.5)) for c in labels])
    whole = clf.predict([fold_for_toxicity(t) for t in texts])[:, cols]
    pieces: list[str] = []
    owner: list[int] = []
    for i, t in enumerate(texts):
        for a, b in sentence_spans(t):
            pieces.append(fold_for_toxicity(t[a:b]))
            owner.append(i)
    sent = clf.predict(pieces)[:, cols]
    best = np.zeros((len(texts), len(labels)), dtype=np.float32)
    np.maximum.at(best, np.array(owner), sent)
    flagged = (best >= limit_of).any(axis=1)
    top = whole.max(axis=1)
    grid = []
    for g in GRID:
        skip = top < g
        grid.append({"screen": g, "missed": int((flagged & skip).sum()),
                     "missed_gold_toxic": int((flagged & skip & gold).sum()),
                     "gold_toxic_skipped": int((gold & skip).sum()), "skipped_share": round(float(skip.mean()), 4)})
    ok = [x for x in grid if x["missed"] == 0]
    return {"texts": len(texts), "sentences": len(pieces), "flagged_by_sentences": int(flagged.sum()),
            "gold_toxic": int(gold.sum()), "flagged_gold_toxic": int((flagged & gold).sum()),
            "grid": grid, "chosen": ok[-1]["screen"] if ok else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.tox.screen", description=__doc__)
    ap.add_argument("--model", type=Path, default=ROOT / "detectors" / "models" / "minilm-tw")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "train-data")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime threads (0: its default)")
    a = ap.parse_args(argv)
    print(json.dumps(measure(a.model, a.data_root, limit=a.limit, threads=a.threads), indent=2), file=sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
