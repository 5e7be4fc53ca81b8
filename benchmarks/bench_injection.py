"""Prompt-injection / jailbreak check: recall on real attacks, false positives on benign prompts.

    .venv/bin/python -m benchmarks.bench_injection [--quick] [--json OUT] [--model DIR ...]

Systems, in one run: the old default policy (no injection check: nothing is caught, nothing is
refused), a phrase-list heuristic of the kind a user would otherwise write (the regexes below: "ignore
previous instructions", "system prompt", DAN / developer mode ...), and the new default: the `injection`
detector on minilm-tw int8 with the threshold of rules/default.yaml (chosen on the training-validation
split at <= 1 % FPR, before any suite here was scored). Every text is checked as a user message, through
the detector (folded variants included), exactly as the proxy checks it.

Attacks (eval-data/prompt-injection, MANIFEST.md): Tensor Trust hijacking (776) and extraction (570)
attack strings; SHIELD's 78 jailbreak templates. Benign: openai-moderation rows with no category set,
HolisticBias generated sentences (a sample), and NotInject (113 x 3 benign prompts full of trigger words,
an over-defence check held out of training). Reported: recall per attack set, FPR per benign set, and
ROC-AUC of attacks vs benign.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import random
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench_toxicity import eval_dir, holistic_sentences, machine, roc_auc  # noqa: E402

HEURISTIC = [re.compile(p, re.I) for p in (
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(previous|prior|above|earlier|all|your)\b.{0,20}"
    r"\b(instructions?|prompts?|rules|directions|guidelines)\b",
    r"\bsystem prompt\b", r"\b(reveal|print|repeat|show)\b.{0,30}\b(instructions|prompt|password|secret)\b",
    r"\bDAN\b", r"\bdo anything now\b", r"\bdeveloper mode\b", r"\bjailbr(eak|oken)\b",
    r"\bno (restrictions|rules|filters|limitations)\b", r"\bpretend (you are|to be)\b", r"\bact as\b",
    r"\baccess granted\b",
)]


def heuristic(text: str) -> float:
    return 1.0 if any(p.search(text) for p in HEURISTIC) else 0.0


def injection_threshold() -> dict[str, float]:
    from guardrails.policy import load_policy

    pol = load_policy(ROOT / "rules" / "default.yaml")
    spec = next(d for d in pol.detectors if d.type == "injection")
    return {c: float(spec.rule_for("input", c).threshold) for c in ("prompt_injection", "jailbreak")}


def load_sets(data: Path, quick: bool, rng: random.Random) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    pi = data / "prompt-injection"

    def jl(name: str, field: str) -> list[str]:
        return [json.loads(line)[field] for line in (pi / name).open(encoding="utf-8") if line.strip()]

    with (pi / "shield_jailbreak_templates.csv").open(encoding="utf-8") as fh:
        templates = [r["text"] for r in csv.DictReader(fh)]
    attacks = {"Tensor Trust hijacking": jl("tensortrust_hijacking_robustness_v1.jsonl", "attack"),
               "Tensor Trust extraction": jl("tensortrust_extraction_robustness_v1.jsonl", "attack"),
               "SHIELD jailbreak templates": templates}
    mod = [json.loads(line) for line in (data / "openai-moderation" / "samples-1680.jsonl").open(encoding="utf-8")]
    zero = [r["prompt"] for r in mod if not any(int(r.get(k, 0)) for k in ("S", "H", "V", "HR", "SH", "S3", "H2", "V2"))]
    hb = [t for t, _, _ in rng.sample(holistic_sentences(data), 600 if quick else 5000)]
    ni_dir = data.parent / "train-data" / "notinject"
    notinject: list[str] = []
    for f in sorted(ni_dir.glob("NotInject_*.json")):
        notinject += [r["prompt"] for r in json.loads(f.read_text(encoding="utf-8"))]
    benign = {"openai-moderation all-zero rows": zero, "HolisticBias sentences": hb, "NotInject": notinject}
    if quick:
        attacks = {k: rng.sample(v, min(len(v), 200)) for k, v in attacks.items()}
        benign = {k: rng.sample(v, min(len(v), 300)) for k, v in benign.items()}
    return attacks, benign


class DetectorScores:
    """Texts -> the injection detector's top score per text (as a user message); one model load per system."""

    def __init__(self, model: str):
        from detectors.injection import InjectionDetector, InjectionOptions
        from detectors.toxicity import load_scorer

        self.scorer = load_scorer(None, model, device="cpu", max_batch=32)
        self.det = InjectionDetector("injection", self.scorer, InjectionOptions(min_score=0.0))

    def __call__(self, texts: Sequence[str]) -> list[float]:
        from guardrails.types import CallContext

        async def run() -> list[float]:
            out: list[float] = []
            for k in range(0, len(texts), 256):
                chunk = list(texts[k:k + 256])
                found = await self.det.detect(chunk, CallContext(roles=tuple("user" for _ in chunk)), "input")
                out += [max((f.score for f in fl), default=0.0) for fl in found]
            return out

        return asyncio.run(run())

    def close(self) -> None:
        self.scorer.close()  # type: ignore[attr-defined]


def evaluate(name: str, score: Any, attacks: dict[str, list[str]], benign: dict[str, list[str]],
             threshold: float) -> dict[str, Any]:
    res: dict[str, Any] = {"threshold": threshold, "recall": {}, "fpr": {}}
    pos: list[float] = []
    neg: list[float] = []
    for k, texts in attacks.items():
        s = score(texts)
        pos += s
        res["recall"][k] = sum(v >= threshold for v in s) / len(s)
    for k, texts in benign.items():
        s = score(texts)
        neg += s
        res["fpr"][k] = sum(v >= threshold for v in s) / len(s)
    tt = [attacks["Tensor Trust hijacking"], attacks["Tensor Trust extraction"]]
    n_tt = sum(len(t) for t in tt)
    res["recall"]["Tensor Trust (both)"] = (res["recall"]["Tensor Trust hijacking"] * len(tt[0]) +
                                            res["recall"]["Tensor Trust extraction"] * len(tt[1])) / n_tt
    res["roc_auc"] = roc_auc([1] * len(pos) + [0] * len(neg), pos + neg)
    return res


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--model", type=Path, action="append", default=[], help="also evaluate this model directory")
    a = ap.parse_args(argv)
    data = eval_dir()
    if not data.is_dir():
        print(f"eval data not found at {data} (set TRUSTWALL_EVAL_DATA)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    rng = random.Random(1234)
    attacks, benign = load_sets(data, a.quick, rng)
    thr = injection_threshold()
    t = min(thr.values())
    systems: dict[str, tuple[Any, float]] = {
        "no injection check (old default)": (lambda texts: [0.0] * len(texts), 0.5),
        "phrase-list heuristic": (lambda texts: [heuristic(x) for x in texts], 0.5),
        "minilm-tw int8 (new default)": (DetectorScores("embedded"), t),
    }
    for m in a.model:
        systems[f"model {m.name}"] = (DetectorScores(str(m)), t)
    res: dict[str, Any] = {"machine": machine(), "quick": a.quick, "thresholds": thr,
                           "n": {**{k: len(v) for k, v in attacks.items()}, **{k: len(v) for k, v in benign.items()}},
                           "systems": {}}
    for name, (fn, th) in systems.items():
        res["systems"][name] = evaluate(name, fn, attacks, benign, th)
        if isinstance(fn, DetectorScores):
            fn.close()
    atk = [*attacks, "Tensor Trust (both)"]
    print(f"\n## Prompt injection (threshold {thr}; n {res['n']})\n")
    print("| system | " + " | ".join(f"recall: {k}" for k in atk) + " | " +
          " | ".join(f"FPR: {k}" for k in benign) + " | ROC-AUC |")
    print("|---|" + "---|" * (len(atk) + len(benign) + 1))
    for name, r in res["systems"].items():
        print(f"| {name} | " + " | ".join(f"{r['recall'][k]:.3f}" for k in atk) + " | " +
              " | ".join(f"{r['fpr'][k]:.4f}" for k in benign) + f" | {r['roc_auc']:.3f} |")
    res["seconds"] = time.perf_counter() - t0
    print(f"\n({res['seconds']:.0f} s on {res['machine']})")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
