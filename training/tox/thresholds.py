"""The default policy's thresholds, chosen on the training data's own validation split with the shipped
int8 model (never on an evaluation suite).

Rule (fixed before any evaluation suite was scored): for each label, the lowest threshold on a 0.05 grid
whose false-positive rate on that label's validation negatives is at most 5% for the toxicity labels
(not below 0.3) and at most 1% for prompt_injection / jailbreak (not below 0.5: refusing a user's
prompt is costly, and 0.5 is "more likely an attack than not" on calibrated scores).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from training.tox import data

GRID = [round(x, 2) for x in np.arange(0.05, 1.0, 0.05)]
INJECTION = ("prompt_injection", "jailbreak")


def rule(label: str) -> tuple[float, float]:
    """(max false-positive rate, floor) of `label`."""
    return (0.01, 0.5) if label in INJECTION else (0.05, 0.3)


def choose(labels: list[str], probs: np.ndarray, y: np.ndarray) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for j, label in enumerate(labels):
        m = ~np.isnan(y[:, j])
        yy, pp = y[m, j], probs[m, j]
        budget, floor = rule(label)
        neg, pos = pp[yy == 0], pp[yy == 1]
        t = next((t for t in GRID if neg.size == 0 or float((neg >= t).mean()) <= budget), GRID[-1])
        t = max(t, floor)
        out[label] = {"threshold": t, "recall": round(float((pos >= t).mean()), 4) if pos.size else None,
                      "fpr": round(float((neg >= t).mean()), 4) if neg.size else None,
                      "positives": int(pos.size), "negatives": int(neg.size)}
    return out


def from_model(model_dir: Path, data_root: Path, *, contrast: bool = True, limit: int | None = None,
               seed: int = 0) -> dict[str, dict[str, Any]]:
    """Score the validation split (the same split training used) with the int8 model in `model_dir`."""
    from guardrails.inference.classifier import OnnxTextClassifier

    cfile = Path(__file__).with_name("contrast.tsv") if contrast else None
    rows = data.load(data_root, limit=limit, contrast_file=cfile, seed=seed)
    _, val = data.split(rows, seed=seed)
    clf = OnnxTextClassifier(model_dir, device="cpu", precision="int8", max_batch=64, check=False)
    probs = clf.predict([r.text for r in val])
    y = np.array([r.labels for r in val], dtype=float)
    return choose(list(clf.labels), probs, y)
