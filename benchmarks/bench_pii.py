"""PII quality and speed: trustwall's pii detector before (stock spaCy NER, `model: sm`) and after (the
fine-tuned NER, `model: embedded`, the default) vs plain Presidio AnalyzerEngine on the stock spaCy model.

    .venv/bin/python -m benchmarks.bench_pii [--quick] [--split report|dev] [--speed-n N]

Quality: presidio-synth-pii (develop on the first half by index: --split dev; the second half is the
reported one: --split report, the default) and WNUT-17 test (report only). Per entity: precision,
recall, F1 with exact spans and with overlapping spans (same type, one-to-one), and redaction recall
(share of gold PII characters covered by any finding at or above its policy threshold).
Findings count when their score reaches the threshold of the category's input rule in
rules/default.yaml (the thresholds a user gets); the baseline is shown out of the box (every result) and
with the same thresholds.
Precision on benign general-knowledge prompts: openai-moderation prompts with every label 0 and GSM8K test
questions; the share of prompts the default policy would change (a finding at or above its category's input
threshold whose action redacts, masks, hashes, pseudonymises or blocks).
Speed: one PII pass (trustwall: parse + analyse through detect(); Presidio: analyze()) on 1,000-character
texts, interleaved, p50/p99 and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SYNTH_MAP = {  # presidio-synth label -> our entity type (None: not scored)
    "PERSON": "PERSON", "GPE": "LOCATION", "STREET_ADDRESS": "LOCATION", "CREDIT_CARD": "CREDIT_CARD",
    "PHONE_NUMBER": "PHONE_NUMBER", "EMAIL_ADDRESS": "EMAIL_ADDRESS", "IBAN_CODE": "IBAN_CODE",
    "US_SSN": "US_SSN", "IP_ADDRESS": "IP_ADDRESS", "DATE_TIME": "DATE_TIME", "DOMAIN_NAME": "URL",
    "ORGANIZATION": None, "TITLE": None, "NRP": None, "AGE": None, "ZIP_CODE": None, "US_DRIVER_LICENSE": None,
}
WNUT_MAP = {"person": "PERSON", "location": "LOCATION", "group": None, "creative-work": None, "product": None,
            "corporation": None}

Span = tuple[int, int, str]


def eval_dir() -> Path:
    env = os.environ.get("TRUSTWALL_EVAL_DATA")
    return Path(env) if env else (ROOT / ".." / "shared" / "eval-data").resolve()


def load_synth(split: str) -> list[tuple[str, list[Span]]]:
    data = json.loads((eval_dir() / "presidio-synth-pii" / "synth_dataset_v2.json").read_text(encoding="utf-8"))
    half = len(data) // 2
    rows = data[:half] if split == "dev" else data[half:]
    out = []
    for ex in rows:
        spans = [(s["start_position"], s["end_position"], s["entity_type"]) for s in ex["spans"]]
        out.append((ex["full_text"], spans))
    return out


def load_wnut() -> list[tuple[str, list[Span]]]:
    out = []
    with open(eval_dir() / "wnut17-ner" / "wnut17_test_spans.jsonl", encoding="utf-8") as fh:
        for line in fh:
            ex = json.loads(line)
            out.append((ex["text"], [(s["start"], s["end"], s["label"]) for s in ex["spans"]]))
    return out


# ------------------------------------------------------------------------------------------ scoring


def _match(gold: list[Span], pred: list[Span], exact: bool) -> int:
    used: set[int] = set()
    tp = 0
    for gs, ge, gt in gold:
        for i, (ps, pe, pt) in enumerate(pred):
            if i in used or pt != gt:
                continue
            if (ps, pe) == (gs, ge) if exact else (ps < ge and gs < pe):
                used.add(i)
                tp += 1
                break
    return tp


def score(rows: Sequence[tuple[str, list[Span]]], preds: Sequence[list[Span]], label_map: dict[str, str | None],
          types: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per type and 'ALL' (micro): p/r/f1 exact and overlap, counts, and redaction recall."""
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    red_total = red_hit = 0
    for (text, gold_raw), pred_all in zip(rows, preds):
        gold = [(s, e, label_map[t]) for s, e, t in gold_raw if label_map.get(t)]
        pred = [p for p in pred_all if p[2] in types]
        for t in types:
            g = [x for x in gold if x[2] == t]
            p = [x for x in pred if x[2] == t]
            c = counts[t]
            c["gold"] += len(g)
            c["pred"] += len(p)
            c["tp_exact"] += _match(g, p, True)
            c["tp_overlap"] += _match(g, p, False)
        covered = set()
        for s, e, _ in pred_all:
            covered.update(range(s, e))
        for s, e, _ in gold:
            chars = [i for i in range(s, e) if not text[i].isspace()]
            red_total += len(chars)
            red_hit += sum(1 for i in chars if i in covered)
    out: dict[str, dict[str, float]] = {}
    tot: dict[str, int] = defaultdict(int)
    for t in types:
        c = counts[t]
        for k, v in c.items():
            tot[k] += v
        out[t] = _prf(c)
    out["ALL"] = _prf(tot)
    out["ALL"]["redaction_recall"] = red_hit / red_total if red_total else float("nan")
    return out


def _prf(c: dict[str, int]) -> dict[str, float]:
    r: dict[str, float] = {"gold": c.get("gold", 0), "pred": c.get("pred", 0)}
    for kind in ("exact", "overlap"):
        tp = c.get(f"tp_{kind}", 0)
        p = tp / c["pred"] if c.get("pred") else 0.0
        rec = tp / c["gold"] if c.get("gold") else 0.0
        r[f"p_{kind}"], r[f"r_{kind}"] = p, rec
        r[f"f1_{kind}"] = 2 * p * rec / (p + rec) if p + rec else 0.0
    return r


# ------------------------------------------------------------------------------------------ systems


def _pii_spec():  # noqa: ANN202
    from guardrails.policy import load_policy

    pol = load_policy(ROOT / "rules" / "default.yaml")
    return next(d for d in pol.detectors if d.type == "pii")


def policy_thresholds() -> Callable[[str], float]:
    spec = _pii_spec()
    return lambda cat: spec.rule_for("input", cat).threshold


def policy_changes() -> Callable[[str, float], bool]:
    """Whether a finding of (category, score) makes the default input policy change the prompt."""
    spec = _pii_spec()

    def changes(cat: str, sc: float) -> bool:
        rule = spec.rule_for("input", cat)
        return str(rule.action) in ("redact", "mask", "hash", "pseudonymise", "block") and sc >= rule.threshold

    return changes


def load_benign(limit: int | None = None) -> dict[str, list[str]]:
    """openai-moderation prompts with all labels 0, and GSM8K test questions (train-data's held-out part)."""
    mod: list[str] = []
    with open(eval_dir() / "openai-moderation" / "samples-1680.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            labels = [v for k, v in row.items() if k != "prompt"]
            if labels and all(v == 0 for v in labels):
                mod.append(row["prompt"])
    gsm: list[str] = []
    path = ROOT / ".." / "shared" / "train-data" / "gsm8k" / "test.jsonl"
    if path.exists():
        with open(path, encoding="utf-8") as fh:
            gsm = [json.loads(line)["question"] for line in fh]
    return {"openai-moderation all-zero": mod[:limit], "GSM8K test questions": gsm[:limit]}


def make_trustwall(model: str | None = None, extra: dict[str, str] | None = None):
    from detectors.nlp import get_nlp
    from detectors.pii import PiiDetector, PiiOptions
    from guardrails.detector import Resources
    from guardrails.types import CallContext

    kw: dict[str, object] = dict(extra or {})
    if model is not None:
        kw["model"] = model
    opts = PiiOptions(**kw)
    det = PiiDetector("pii", opts, get_nlp(Resources(), opts.model, ("ner",)))
    loop = asyncio.new_event_loop()

    def run(texts: Sequence[str]) -> list[list[tuple[int, int, str, float]]]:
        # one request per text (names propagate and lone names are judged within a request), run
        # concurrently so that spaCy still parses them as one batch
        async def each() -> list[list]:
            return await asyncio.gather(*(det.detect([t], CallContext()) for t in texts))

        res = [r[0] for r in loop.run_until_complete(each())]
        return [[(f.span[0], f.span[1], f.category, f.score) for f in fl if f.span] for fl in res]

    return det, run


def make_presidio():
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpEngineProvider

    from detectors.nlp import STOCK_MODEL

    engine = NlpEngineProvider(nlp_configuration={
        "nlp_engine_name": "spacy", "models": [{"lang_code": "en", "model_name": STOCK_MODEL}]}).create_engine()
    analyzer = AnalyzerEngine(nlp_engine=engine, supported_languages=["en"])

    def run(texts: Sequence[str]) -> list[list[tuple[int, int, str, float]]]:
        return [[(r.start, r.end, r.entity_type, r.score) for r in analyzer.analyze(t, "en")] for t in texts]

    return analyzer, run


def predict(run: Callable, rows: Sequence[tuple[str, list[Span]]], batch: int = 16) -> list[list[tuple]]:
    out: list[list[tuple]] = []
    texts = [t for t, _ in rows]
    for i in range(0, len(texts), batch):
        out.extend(run(texts[i:i + batch]))
    return out


def thresholded(preds: list[list[tuple]], thr: Callable[[str], float] | None) -> list[list[Span]]:
    return [[(s, e, c) for s, e, c, sc in fl if thr is None or sc >= thr(c)] for fl in preds]


# ------------------------------------------------------------------------------------------ output


def print_table(title: str, results: dict[str, dict[str, dict[str, float]]], types: Sequence[str]) -> None:
    print(f"\n{title}")
    systems = list(results)
    head = f"{'entity':<14}{'gold':>6}  " + "  ".join(f"{s:^34}" for s in systems)
    print(head)
    print(f"{'':<14}{'':>6}  " + "  ".join(f"{'P/R/F1 exact':^17}{'P/R/F1 overlap':^17}" for _ in systems))
    for t in [*types, "ALL"]:
        g = int(results[systems[0]][t]["gold"])
        cells = []
        for s in systems:
            r = results[s][t]
            cells.append(f"{r['p_exact']:.2f}/{r['r_exact']:.2f}/{r['f1_exact']:.2f}    "
                         f"{r['p_overlap']:.2f}/{r['r_overlap']:.2f}/{r['f1_overlap']:.2f}   ")
        print(f"{t:<14}{g:>6}  " + "  ".join(f"{c:^34}" for c in cells))
    print(f"{'redaction rec.':<14}{'':>6}  " + "  ".join(
        f"{results[s]['ALL']['redaction_recall']:^34.3f}" for s in systems))


def speed_texts(n: int) -> list[str]:
    rows = load_synth("report")
    texts, cur = [], ""
    for t, _ in rows * 20:
        cur = (cur + " " + t).strip()
        if len(cur) >= 1000:
            cut = cur[:1000]
            texts.append(cut)
            cur = ""
            if len(texts) >= n:
                break
    return texts


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, int(round(q * (len(v) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small samples (< 2 min)")
    ap.add_argument("--split", choices=("report", "dev"), default="report",
                    help="presidio-synth half: dev = first half (tuning), report = second half")
    ap.add_argument("--speed-n", type=int, default=0, help="number of 1,000-char texts to time")
    ap.add_argument("--no-wnut", action="store_true")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                    help="pii detector option for both trustwall columns, e.g. lone_names=redact")
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="cap numpy's BLAS threads first, as `trustwall serve` does (0: leave as is)")
    args = ap.parse_args(argv)
    if args.blas_threads:
        from guardrails.runtime import limit_blas_threads

        limit_blas_threads(args.blas_threads)
    if not (eval_dir() / "presidio-synth-pii").exists():
        print(f"eval data not found at {eval_dir()} (set TRUSTWALL_EVAL_DATA)", file=sys.stderr)
        return 2

    import logging

    # Plain Presidio's email recogniser makes tldextract fetch the public suffix list on first use; with
    # no network it logs a traceback and falls back to its snapshot. Keep the table readable.
    logging.getLogger("tldextract").setLevel(logging.CRITICAL)
    logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)
    print("loading trustwall pii detector (after: embedded fine-tuned NER; before: stock sm) and plain Presidio "
          "(stock sm) ...", flush=True)
    t0 = time.perf_counter()
    extra = dict(o.split("=", 1) for o in args.option)
    det, ours = make_trustwall(None, extra)
    _, before = make_trustwall("sm", extra)
    t1 = time.perf_counter()
    _, base = make_presidio()
    t2 = time.perf_counter()
    gemm = {str(getattr(n.ops, "use_blis", "?")) for _c, comp in det.shared.nlp.pipeline
            if hasattr(getattr(comp, "model", None), "walk") for n in comp.model.walk()}
    print(f"  trustwall load (both) {t1 - t0:.1f} s (spaCy components run: {sorted(det.shared.required)}; matrix "
          f"products: {'blis' if gemm == {'True'} else 'numpy BLAS'}, BLAS threads capped at "
          f"{args.blas_threads or 'no cap'}); presidio load {t2 - t1:.1f} s (full pipeline, thinc's default blis)")
    thr = policy_thresholds()

    print("\nlabel mapping presidio-synth -> scored type (None: not scored):")
    print("  " + ", ".join(f"{k}->{v}" for k, v in SYNTH_MAP.items()))
    print("label mapping WNUT-17 -> scored type:")
    print("  " + ", ".join(f"{k}->{v}" for k, v in WNUT_MAP.items()))
    print("thresholds (rules/default.yaml, input): " + ", ".join(
        f"{t}>={thr(t):g}" for t in ("PERSON", "LOCATION", "EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "DATE_TIME")))

    def systems(rows: Sequence[tuple[str, list[Span]]], label_map: dict[str, str | None],
                types: Sequence[str]) -> dict[str, dict[str, dict[str, float]]]:
        p_after, p_before, p_base = predict(ours, rows), predict(before, rows), predict(base, rows)
        return {
            "after: trustwall (policy thr.)": score(rows, thresholded(p_after, thr), label_map, types),
            "before: stock sm (policy thr.)": score(rows, thresholded(p_before, thr), label_map, types),
            "presidio (default)": score(rows, thresholded(p_base, None), label_map, types),
            "presidio (policy thr.)": score(rows, thresholded(p_base, thr), label_map, types),
        }

    synth = load_synth(args.split)
    if args.quick:
        synth = synth[:200]
    types = sorted({v for v in SYNTH_MAP.values() if v})
    half = "second half (reported)" if args.split == "report" else "first half (dev)"
    print_table(f"presidio-synth-pii, {half}, {len(synth)} texts", systems(synth, SYNTH_MAP, types), types)

    if not args.no_wnut:
        wnut = load_wnut()
        if args.quick:
            wnut = wnut[:300]
        wtypes = ["PERSON", "LOCATION"]
        print_table(f"WNUT-17 test, {len(wnut)} sentences (report only)", systems(wnut, WNUT_MAP, wtypes), wtypes)

    changes = policy_changes()
    print("\nbenign general-knowledge prompts changed by the default policy (lower is better; categories hit)")
    print(f"{'set':<28}{'n':>6}  {'after':>8}{'before':>8}{'presidio':>10}  after: categories")
    for name, prompts in load_benign(100 if args.quick else None).items():
        if not prompts:
            print(f"{name:<28}{'(not found)':>6}")
            continue
        rows_b = [(p, []) for p in prompts]
        cells = []
        cats: dict[str, int] = defaultdict(int)
        for i, run in enumerate((ours, before, base)):
            preds = predict(run, rows_b)
            hit = [any(changes(c, sc) for _s, _e, c, sc in fl) for fl in preds]
            cells.append(sum(hit) / len(hit))
            if i == 0:
                for fl in preds:
                    for c in {c for _s, _e, c, sc in fl if changes(c, sc)}:
                        cats[c] += 1
        top = ", ".join(f"{c} {n}" for c, n in sorted(cats.items(), key=lambda kv: -kv[1])[:4])
        print(f"{name:<28}{len(prompts):>6}  {cells[0]:>8.1%}{cells[1]:>8.1%}{cells[2]:>10.1%}  {top}")

    n = args.speed_n or (30 if args.quick else 200)
    texts = speed_texts(n)
    for t in texts[:3]:
        ours([t])
        before([t])
        base([t])
    timings: dict[str, list[float]] = {"after: trustwall": [], "before: stock sm": [], "presidio AnalyzerEngine": []}
    runs = dict(zip(timings, (ours, before, base)))
    for t in texts:
        for name, run in runs.items():
            a = time.perf_counter()
            run([t])
            timings[name].append((time.perf_counter() - a) * 1000)
    print(f"\nspeed: one PII pass over a 1,000-character text, {len(texts)} texts, interleaved, ms")
    print(f"{'system':<26}{'p50':>8}{'p99':>8}{'mean':>8}")
    for name, v in timings.items():
        print(f"{name:<26}{pct(v, .5):>8.1f}{pct(v, .99):>8.1f}{statistics.fmean(v):>8.1f}")
    t_base = timings["presidio AnalyzerEngine"]
    for name in ("after: trustwall", "before: stock sm"):
        v = timings[name]
        print(f"ratio {name}/presidio: p50 {pct(v, .5) / pct(t_base, .5):.2f}, "
              f"p99 {pct(v, .99) / pct(t_base, .99):.2f} (< 1 is faster)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
