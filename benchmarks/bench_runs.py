"""How the embedded model's windows are cut into ONNX Runtime runs, and what that costs and changes.

Baseline (what the classifier did before): a batch's windows sorted by length and run in chunks of
max_batch, each padded to its longest window. "padding + run cost": the cuts minimise padded tokens plus a
fixed cost per run (`guardrails.inference.classifier.chunks`; what fp32 on CPU now does). "each window
alone": what the int8 variant now does (`OnnxTextClassifier.run_alone`), so a score never depends on the
other windows of a run. Measured on the toxicity detector's real job, the
sentences of one 1,000-character text at a time (jigsaw sample comments joined, as bench_toxicity):

* latency p50 / p99 per text, the two cut rules interleaved text by text (same machine state);
* padded tokens actually run per text;
* how far int8 scores move with the company a window is run in: each cut rule vs every window run alone
  (batch of one). ONNX Runtime's dynamic int8 quantisation computes one activation scale per run, so the
  other windows of a run change a window's score a little; fp32 does not (shown for contrast when a
  model folder with an fp32 variant is given).

    python -m benchmarks.bench_runs [--quick] [--threads 2] [--fp32-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_toxicity import eval_dir, machine, texts_1000

RULES = {"max_batch chunks (before)": float("inf"), "padding + run cost": None, "each window alone": "alone"}


def run(quick: bool, threads: int, fp32_dir: Path | None) -> dict[str, Any]:
    import guardrails.inference.classifier as clf_mod
    from detectors.toxicity import models_root, sentence_spans
    from guardrails.inference.classifier import OnnxTextClassifier

    texts = texts_1000(eval_dir(), 60 if quick else 300)
    sents = [[t[a:b] for a, b in sentence_spans(t)] for t in texts]
    now_cost = clf_mod.CPU_RUN_COST_TOKENS
    rules: dict[str, Any] = {k: (now_cost if v is None else v) for k, v in RULES.items()}
    out: dict[str, Any] = {"machine": machine(), "threads": threads, "texts": len(texts),
                           "sentences_per_text": round(sum(map(len, sents)) / len(sents), 1),
                           "run_cost_tokens": now_cost}
    models = {"int8": OnnxTextClassifier(models_root() / "minilm-tw", device="cpu", precision="int8",
                                         threads=threads, check=False)}
    if fp32_dir is not None:
        models["fp32"] = OnnxTextClassifier(fp32_dir, device="cpu", threads=threads, check=False)
    for name, clf in models.items():
        clf.run_alone = False
        alone = np.concatenate([np.concatenate([clf.predict([s]) for s in ss]) for ss in sents])
        lat: dict[str, list[float]] = {k: [] for k in rules}
        scores: dict[str, list[np.ndarray]] = {k: [] for k in rules}
        padded: dict[str, int] = {k: 0 for k in rules}
        for ss in sents[:5]:
            clf.predict(ss)  # warm
        for ss in sents:
            lengths = sorted(len(w) for w in clf.windows(ss))
            for rule, cost in rules.items():
                alone_rule = cost == "alone"
                clf.run_alone = alone_rule
                clf_mod.CPU_RUN_COST_TOKENS = now_cost if alone_rule else cost
                t0 = time.perf_counter()
                scores[rule].append(clf.predict(ss))
                lat[rule].append((time.perf_counter() - t0) * 1e3)
                padded[rule] += sum(lengths) if alone_rule else sum(
                    (b - a) * lengths[b - 1] for a, b in clf_mod.chunks(lengths, clf.max_batch, cost))
        clf_mod.CPU_RUN_COST_TOKENS = now_cost
        clf.run_alone = name == "int8"
        real = sum(len(w) for ss in sents for w in clf.windows(ss))
        rows = {}
        for rule in rules:
            d = np.abs(np.concatenate(scores[rule]) - alone)
            rows[rule] = {"p50_ms": float(np.percentile(lat[rule], 50)), "p99_ms": float(np.percentile(lat[rule], 99)),
                          "padded_tokens_per_text": padded[rule] / len(sents), "real_tokens_per_text": real / len(sents),
                          "vs_alone_max": float(d.max()), "vs_alone_p99": float(np.percentile(d, 99)),
                          "vs_alone_mean": float(d.mean()),
                          "flips_at_0_5": int(((np.concatenate(scores[rule]) >= 0.5) != (alone >= 0.5)).sum()),
                          "label_scores": int(d.size)}
        out[name] = rows
    return out


def table(res: dict[str, Any]) -> str:
    lines = [f"Machine: {res['machine']}; {res['threads']} threads; {res['texts']} texts of 1,000 characters, "
             f"{res['sentences_per_text']} sentences each; run cost {res['run_cost_tokens']} tokens.", "",
             "| model | cut rule | p50 ms | p99 ms | padded / real tokens per text | score vs run alone: max / p99 / mean | label scores crossing 0.5 |",
             "|---|---|---:|---:|---|---|---|"]
    for model in ("int8", "fp32"):
        for rule, r in res.get(model, {}).items():
            lines.append(f"| {model} | {rule} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | "
                         f"{r['padded_tokens_per_text']:.0f} / {r['real_tokens_per_text']:.0f} | "
                         f"{r['vs_alone_max']:.3f} / {r['vs_alone_p99']:.3f} / {r['vs_alone_mean']:.4f} | "
                         f"{r['flips_at_0_5']} of {r['label_scores']} |")
    base, packed, alone = (res["int8"][k]["p50_ms"] for k in RULES)
    lines += ["", f"int8 p50 ratio to before: padding + run cost {packed / base:.2f}, each window alone (shipped) "
                  f"{alone / base:.2f}"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.bench_runs", description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--fp32-dir", type=Path, default=None, help="a minilm-tw folder with an fp32 variant")
    ap.add_argument("--json", type=Path, default=None)
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))
    res = run(a.quick, a.threads, a.fp32_dir)
    print(table(res))
    if a.json:
        a.json.write_text(json.dumps(res, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
