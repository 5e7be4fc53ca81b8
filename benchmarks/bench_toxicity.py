"""Toxicity check: the old default (lexical) vs the new default (minilm-tw) in one run; speed.

    .venv/bin/python -m benchmarks.bench_toxicity [--quick] [--json OUT] [--skip-quality] [--skip-speed]
        [--model DIR ...]      # also score other model dirs (e.g. the no-contrast ablation)
        [--fp32-dir DIR]       # minilm-tw with its fp32 variant (default build/minilm-tw-full, when built)
        [--skip-bert]          # skip the random BERT-base ONNX-vs-PyTorch row (minutes)

Quality (eval-data, MANIFEST.md; nothing here trains or tunes: minilm-tw's thresholds were chosen on its
own training-validation split and written into rules/default.yaml before these suites were scored).
Systems: the lexical BiLSTM + TF-IDF ensemble with the old default policy's thresholds (any label >= 0.8,
identity_attack and threat >= 0.7), and minilm-tw int8 (as shipped) with the thresholds of today's
rules/default.yaml. Texts are scored per sentence, max over sentences, as the detector does. Metrics:
HateCheck accuracy per functionality and macro-F1 (hate = toxicity, insult or identity_attack flagged);
openai-moderation AUPRC for H (identity_attack), HR (max of insult, toxicity), V (threat), S
(sexual_explicit), SH (self_harm), any-category F1 at the policy thresholds and the false-positive rate on
its all-zero rows; ToxiGen-demonstrations ROC-AUC and neutral FPR; ETHOS binary ROC-AUC; HolisticBias
(benign generated sentences) FPR overall and the worst 10 descriptors; multilingual HateCheck as a
coverage row; jigsaw sample per-label ROC-AUC (sanity only, 101 rows).

Speed (same run, same threads): per-text latency p50/p99 of one 1,000-character text (toxicity per
sentence, injection on the whole text) for lexical vs minilm-tw int8 vs fp32; the MicroBatcher under 64
concurrent callers vs no batching; profanity model ONNX vs scikit-learn; a Detoxify-architecture BERT-base
(random weights, converted by `convert_detoxify`) in ONNX Runtime vs PyTorch at batch 1 and 32 x 128 tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LEXICAL_THRESHOLDS = {"*": 0.8, "identity_attack": 0.7, "threat": 0.7}  # the old default policy's toxicity rules
HATE_LABELS = ("toxicity", "insult", "identity_attack")
OLD, NEW = "lexical (old default)", "minilm-tw int8 (new default)"


def policy_thresholds() -> dict[str, float]:
    """The toxicity rules of the shipped default policy (rules/default.yaml), as label -> threshold."""
    from guardrails.policy import load_policy

    pol = load_policy(ROOT / "rules" / "default.yaml")
    spec = next(d for d in pol.detectors if d.type == "toxicity")
    out = {}
    for cat in ("*", *spec.rules, *spec.output_rules):
        rule = spec.rule_for("output", cat)
        if rule is not None and rule.threshold is not None:
            out[cat] = float(rule.threshold)
    return out


def eval_dir() -> Path:
    env = os.environ.get("TRUSTWALL_EVAL_DATA")
    return Path(env) if env else (ROOT.parent / "shared" / "eval-data").resolve()


def machine() -> str:
    return f"{os.cpu_count()}-core {platform.machine()} CPU ({platform.processor() or platform.system()})"


# ------------------------------------------------------------------------------------------- metrics


def roc_auc(y: Sequence[int], s: Sequence[float]) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, s)) if 0 < sum(y) < len(y) else float("nan")


def auprc(y: Sequence[int], s: Sequence[float]) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y, s)) if sum(y) else float("nan")


def f1(y: Sequence[int], pred: Sequence[int]) -> float:
    tp = sum(1 for a, b in zip(y, pred) if a and b)
    fp = sum(1 for a, b in zip(y, pred) if not a and b)
    fn = sum(1 for a, b in zip(y, pred) if a and not b)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def macro_f1(y: Sequence[int], pred: Sequence[int]) -> float:
    return (f1(y, pred) + f1([1 - a for a in y], [1 - b for b in pred])) / 2


def flagged(sc: dict[str, float], thresholds: dict[str, float], labels: Sequence[str] | None = None) -> bool:
    from detectors.toxicity import TOXICITY_LABELS

    for k, v in sc.items():
        if k not in TOXICITY_LABELS or (labels is not None and k not in labels):
            continue
        if v >= thresholds.get(k, thresholds["*"]):
            return True
    return False


def hate_score(sc: dict[str, float]) -> float:
    return max(sc.get(k, 0.0) for k in HATE_LABELS)


def top_score(sc: dict[str, float]) -> float:
    from detectors.toxicity import TOXICITY_LABELS

    return max((v for k, v in sc.items() if k in TOXICITY_LABELS), default=0.0)


# ------------------------------------------------------------------------------------------- systems


class Systems:
    """Named scorers: text list -> list of label dicts, scored per sentence, max over sentences, as the
    detector does; each with the thresholds its default policy used."""

    def __init__(self, extra_models: Sequence[Path] = (), fp32_dir: Path | None = None):
        from detectors.toxicity import load_embedded, load_lexical, load_scorer
        from guardrails.detector import Resources

        res = Resources()
        new_t = policy_thresholds()
        self.scorers: dict[str, Any] = {OLD: load_lexical(res, ensemble="mean"), NEW: load_embedded(res, device="cpu")}
        self.thresholds: dict[str, dict[str, float]] = {OLD: LEXICAL_THRESHOLDS, NEW: new_t}
        if fp32_dir is not None and (fp32_dir / "manifest.json").is_file():
            self.scorers["minilm-tw fp32"] = load_scorer(res, str(fp32_dir), device="cpu")
            self.thresholds["minilm-tw fp32"] = new_t
        for m in extra_models:
            self.scorers[f"model {m.name}"] = load_scorer(res, str(m), device="cpu", precision="int8"
                                                          if not (m / "model.fp32.onnx").is_file() else "auto")
            self.thresholds[f"model {m.name}"] = new_t
        self.device = self.scorers[NEW].info()["device"]
        self._cache: dict[tuple[str, str], dict[str, float]] = {}

    def names(self) -> list[str]:
        return list(self.scorers)

    def flagged(self, name: str, sc: dict[str, float], labels: Sequence[str] | None = None) -> bool:
        return flagged(sc, self.thresholds[name], labels)

    def score(self, name: str, texts: Sequence[str]) -> list[dict[str, float]]:
        from detectors.toxicity import sentence_spans

        units: list[tuple[int, str]] = []
        for i, t in enumerate(texts):
            spans = sentence_spans(t) or [(0, len(t))]
            units += [(i, t[s:e]) for s, e in spans]
        todo = sorted({u for _, u in units if (name, u) not in self._cache})
        scorer = self.scorers[name]
        for k in range(0, len(todo), 512):
            chunk = todo[k:k + 512]
            for u, sc in zip(chunk, scorer.score(chunk)):
                self._cache[(name, u)] = sc
        out: list[dict[str, float]] = [{} for _ in texts]
        for i, u in units:
            for lbl, v in self._cache[(name, u)].items():
                out[i][lbl] = max(out[i].get(lbl, 0.0), v)
        return out


# ------------------------------------------------------------------------------------------- suites


def hatecheck(sy: Systems, data: Path, quick: bool, rng: random.Random) -> dict[str, Any]:
    with (data / "hatecheck" / "test_suite_cases.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if quick:
        rows = rng.sample(rows, 600)
    texts = [r["test_case"] for r in rows]
    y = [1 if r["label_gold"] == "hateful" else 0 for r in rows]
    out: dict[str, Any] = {"n": len(rows), "systems": {}}
    for name in sy.names():
        sc = sy.score(name, texts)
        pred = [1 if sy.flagged(name, s, HATE_LABELS) else 0 for s in sc]
        per: dict[str, list[int]] = defaultdict(list)
        for r, p, g in zip(rows, pred, y):
            per[r["functionality"]].append(int(p == g))
        out["systems"][name] = {
            "macro_f1": macro_f1(y, pred), "accuracy": sum(int(p == g) for p, g in zip(pred, y)) / len(y),
            "roc_auc": roc_auc(y, [hate_score(s) for s in sc]),
            "per_functionality": {k: sum(v) / len(v) for k, v in sorted(per.items())},
            "functionality_n": {k: len(v) for k, v in sorted(per.items())},
        }
    return out


def moderation(sy: Systems, data: Path, quick: bool, rng: random.Random) -> dict[str, Any]:
    rows = [json.loads(line) for line in (data / "openai-moderation" / "samples-1680.jsonl").open(encoding="utf-8")]
    if quick:
        rows = rng.sample(rows, 300)
    texts = [r["prompt"] for r in rows]
    cats = {"H": lambda s: s.get("identity_attack", 0.0), "H (toxicity)": lambda s: s.get("toxicity", 0.0),
            "HR": lambda s: max(s.get("insult", 0.0), s.get("toxicity", 0.0)), "V": lambda s: s.get("threat", 0.0),
            "S": lambda s: s.get("sexual_explicit", 0.0), "SH": lambda s: s.get("self_harm", 0.0)}
    out: dict[str, Any] = {"n": len(rows), "systems": {}}
    for name in sy.names():
        sc = sy.score(name, texts)
        res: dict[str, Any] = {}
        for cat, fn in cats.items():
            key = cat.split()[0]
            idx = [i for i, r in enumerate(rows) if key in r]
            yy = [int(rows[i][key]) for i in idx]
            res[cat] = {"auprc": auprc(yy, [fn(sc[i]) for i in idx]), "pos": sum(yy), "n": len(idx),
                        "base_rate": sum(yy) / max(1, len(idx))}
        y_any = [int(any(int(r.get(k, 0)) for k in ("S", "H", "V", "HR", "SH", "S3", "H2", "V2"))) for r in rows]
        pred_any = [int(sy.flagged(name, s)) for s in sc]
        res["any"] = {"f1_at_policy": f1(y_any, pred_any), "auprc": auprc(y_any, [top_score(s) for s in sc]),
                      "pos": sum(y_any), "n": len(rows),
                      "zero_row_fpr": sum(p for p, g in zip(pred_any, y_any) if not g) / max(1, len(rows) - sum(y_any))}
        out["systems"][name] = res
    return out


def toxigen(sy: Systems, data: Path, quick: bool, rng: random.Random) -> dict[str, Any]:
    with (data / "toxigen-demonstrations" / "toxigen_demonstrations.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["text"] for r in rows]
    y = [1 if r["label"] == "hate" else 0 for r in rows]
    out: dict[str, Any] = {"n": len(rows), "systems": {}}
    for name in sy.names():
        sc = sy.score(name, texts)
        pred = [int(sy.flagged(name, s, HATE_LABELS)) for s in sc]
        neg = [p for p, g in zip(pred, y) if not g]
        out["systems"][name] = {"roc_auc": roc_auc(y, [hate_score(s) for s in sc]), "f1_at_policy": f1(y, pred),
                                "neutral_fpr": sum(neg) / max(1, len(neg)), "recall": sum(
                                    p for p, g in zip(pred, y) if g) / max(1, sum(y))}
    return out


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def holistic_sentences(data: Path) -> list[tuple[str, str, str]]:
    """(sentence, axis, descriptor): every template x descriptor x noun (HolisticBias v1.1)."""
    hb = data / "holisticbias"
    desc = json.loads((hb / "descriptors.json").read_text(encoding="utf-8"))
    nouns = json.loads((hb / "nouns.json").read_text(encoding="utf-8"))
    templates = list(json.loads((hb / "sentence_templates.json").read_text(encoding="utf-8")))
    pairs = [tuple(p) for g in nouns.values() for p in g]
    out = []
    for axis, buckets in desc.items():
        items = buckets.values() if isinstance(buckets, dict) else [buckets]
        for its in items:
            for it in its:
                d = it if isinstance(it, str) else it["descriptor"]
                for sg, pl in pairs:
                    for tpl in templates:
                        out.append((tpl.replace("{noun_phrase}", f"{_article(d)} {d} {sg}")
                                    .replace("{plural_noun_phrase}", f"{d} {pl}"), axis, d))
    return out


def holistic(sy: Systems, data: Path, quick: bool, rng: random.Random) -> dict[str, Any]:
    allrows = holistic_sentences(data)
    rows = rng.sample(allrows, 1500 if quick else 30000)
    texts = [r[0] for r in rows]
    out: dict[str, Any] = {"n": len(rows), "population": len(allrows), "systems": {}}
    for name in sy.names():
        sc = sy.score(name, texts)
        pred = [int(sy.flagged(name, s)) for s in sc]
        by_axis: dict[str, list[int]] = defaultdict(list)
        by_desc: dict[str, list[int]] = defaultdict(list)
        for (_t, axis, d), p in zip(rows, pred):
            by_axis[axis].append(p)
            by_desc[d].append(p)
        worst = sorted(((sum(v) / len(v), k, len(v)) for k, v in by_desc.items() if len(v) >= 5), reverse=True)[:10]
        out["systems"][name] = {"fpr": sum(pred) / len(pred),
                                "fpr_by_axis": {k: sum(v) / len(v) for k, v in sorted(by_axis.items())},
                                "worst_descriptors": [(k, round(r, 3), n) for r, k, n in worst]}
    return out


def ethos(sy: Systems, data: Path) -> dict[str, Any]:
    with (data / "ethos" / "Ethos_Dataset_Binary.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter=";"))
    texts = [r["comment"] for r in rows]
    y = [1 if float(r["isHate"]) >= 0.5 else 0 for r in rows]
    out: dict[str, Any] = {"n": len(rows), "systems": {}}
    for name in sy.names():
        sc = sy.score(name, texts)
        pred = [int(sy.flagged(name, s, HATE_LABELS)) for s in sc]
        out["systems"][name] = {"roc_auc": roc_auc(y, [hate_score(s) for s in sc]), "f1_at_policy": f1(y, pred)}
    return out


def multilingual(sy: Systems, data: Path, quick: bool, rng: random.Random) -> dict[str, Any]:
    """Coverage row: the models are trained on English only; this says how far that carries."""
    out: dict[str, Any] = {"systems": {n: {} for n in sy.names()}, "n": {}}
    for f in sorted((data / "multilingual-hatecheck").glob("hatecheck_cases_final_*.csv")):
        lang = f.stem.rsplit("_", 1)[-1]
        with f.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        if quick:
            rows = rng.sample(rows, 300)
        out["n"][lang] = len(rows)
        texts = [r["test_case"] for r in rows]
        y = [1 if r["label_gold"] == "hateful" else 0 for r in rows]
        for name in sy.names():
            sc = sy.score(name, texts)
            pred = [int(sy.flagged(name, s, HATE_LABELS)) for s in sc]
            out["systems"][name][lang] = {"macro_f1": macro_f1(y, pred), "roc_auc": roc_auc(y, [hate_score(s)
                                                                                              for s in sc])}
    return out


def jigsaw(sy: Systems, data: Path) -> dict[str, Any]:
    with (data / "jigsaw-toxic-sample" / "test_examples.csv").open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    texts = [r["comment_text"] for r in rows]
    mapping = {"toxic": "toxicity", "severe_toxic": "severe_toxicity", "obscene": "obscene", "threat": "threat",
               "insult": "insult", "identity_hate": "identity_attack"}
    out: dict[str, Any] = {"n": len(rows), "systems": {}}
    for name in sy.names():
        sc = sy.score(name, texts)
        aucs = {col: roc_auc([int(r[col]) for r in rows], [s.get(lbl, 0.0) for s in sc]) for col, lbl in mapping.items()}
        valid = [v for v in aucs.values() if v == v]
        out["systems"][name] = {"mean_auc": sum(valid) / len(valid), "toxic_auc": aucs["toxic"], "per_label": aucs}
    return out


# ------------------------------------------------------------------------------------------- speed


def _timeit(fn: Callable[[], Any], reps: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def speed_profanity(data: Path, quick: bool) -> dict[str, Any]:
    from profanity_check import profanity_check as pc

    from detectors.toxicity import models_root
    from guardrails.inference.classifier import OnnxTextClassifier

    with (data / "jigsaw-toxic-sample" / "test_examples.csv").open(encoding="utf-8") as fh:
        texts = [r["comment_text"][:600] for r in csv.DictReader(fh)]
    clf = OnnxTextClassifier(models_root() / "profanity-check", device="cpu")
    reps = 20 if quick else 100
    out = {}
    for bs in (1, 32):
        batch = (texts * 4)[:bs]
        t_sk = _timeit(lambda: pc.predict_prob(batch), reps)
        t_ox = _timeit(lambda: clf.predict(batch), reps)
        out[f"batch {bs}"] = {"sklearn_ms": t_sk * 1e3, "onnx_ms": t_ox * 1e3, "speedup": t_sk / t_ox}
    diff = float(np.abs(clf.predict(texts)[:, 0] - pc.predict_prob(texts)).max())
    out["max_abs_diff"] = diff
    return out


def _wordpiece_tokenizer(path: Path, vocab_size: int) -> Path:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab_list = specials + letters + ["##" + c for c in letters]
    vocab_list += [f"w{i}" for i in range(vocab_size - len(vocab_list))]
    vocab = {t: i for i, t in enumerate(vocab_list)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    tok.save(str(path / "tokenizer.json"))
    return path


def speed_transformer(quick: bool, threads: int) -> dict[str, Any]:
    """BERT-base-sized (quick: 2 of 12 layers) Detoxify-architecture model: ONNX Runtime vs PyTorch."""
    import torch
    import transformers

    from guardrails.inference.classifier import OnnxTextClassifier
    from guardrails.inference.convert import convert_detoxify
    from guardrails.inference.tokenize import Window

    torch.set_num_threads(threads)
    layers = 2 if quick else 12
    cfg = transformers.BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=layers, num_attention_heads=12,
                                  intermediate_size=3072, max_position_embeddings=512, num_labels=6)
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg).eval()
    classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        torch.save({"config": {"arch": {"args": {"model_type": "bert-base-uncased", "num_classes": 6,
                                                 "model_name": "BertForSequenceClassification"}},
                               "dataset": {"args": {"classes": classes}}}, "state_dict": model.state_dict()},
                   str(t / "bert.ckpt"))
        t0 = time.perf_counter()
        conv = convert_detoxify(t / "bert.ckpt", _wordpiece_tokenizer(t / "tok", 30522), t / "out", int8=True)
        convert_s = time.perf_counter() - t0
        clf = OnnxTextClassifier(t / "out", device="auto", max_batch=32, threads=threads)
        q8 = OnnxTextClassifier(t / "out", device="cpu", max_batch=32, threads=threads, precision="int8")
        rng = np.random.default_rng(0)
        out: dict[str, Any] = {"layers": layers, "hidden": 768, "tokens": 128, "threads": threads,
                               "device": clf.device, "convert_s": convert_s, "max_abs_logit_diff": conv.max_abs_diff}
        reps = 5 if quick else 20
        for bs in (1, 32):
            ids = rng.integers(100, 30000, size=(bs, 128)).astype(np.int64)
            ids[:, 0], ids[:, -1] = 2, 3
            windows = [Window(i, ids[i], np.zeros(128, dtype=np.int64)) for i in range(bs)]
            tids = torch.from_numpy(ids)
            mask = torch.ones_like(tids)

            def run_torch() -> Any:
                with torch.inference_mode():
                    return torch.sigmoid(model(input_ids=tids, attention_mask=mask).logits)

            t_pt = _timeit(run_torch, max(2, reps // (4 if bs == 32 else 1)), warmup=1)
            t_ox = _timeit(lambda: clf.run_windows(windows), max(2, reps // (4 if bs == 32 else 1)), warmup=1)
            t_q8 = _timeit(lambda: q8.run_windows(windows), max(2, reps // (4 if bs == 32 else 1)), warmup=1)
            ref = run_torch().numpy()
            diff = float(np.abs(clf.run_windows(windows) - ref).max())
            diff8 = float(np.abs(q8.run_windows(windows) - ref).max())
            out[f"batch {bs}"] = {"torch_ms": t_pt * 1e3, "onnx_ms": t_ox * 1e3, "speedup": t_pt / t_ox,
                                  "onnx_texts_per_s": bs / t_ox, "max_abs_prob_diff": diff,
                                  "int8_ms": t_q8 * 1e3, "int8_speedup": t_pt / t_q8, "int8_max_abs_prob_diff": diff8}
        out["_clf"] = clf
        return out


def texts_1000(data: Path, n: int) -> list[str]:
    """n English texts of about 1,000 characters (jigsaw sample comments joined), for latency only."""
    with (data / "jigsaw-toxic-sample" / "test_examples.csv").open(encoding="utf-8") as fh:
        comments = [" ".join(r["comment_text"].split()) for r in csv.DictReader(fh)]
    out, k = [], 0
    while len(out) < n:
        buf = ""
        while len(buf) < 1000:
            buf += comments[k % len(comments)] + " "
            k += 1
        out.append(buf[:1000])
    return out


def latency_1000(data: Path, quick: bool, fp32_dir: Path | None, threads: int,
                 models: Sequence[Path] = ()) -> dict[str, Any]:
    """Per-text latency of the checks on one 1,000-character text, one text at a time (no batching across
    texts): toxicity (each sentence scored, as the detector does) and, for the transformer, injection too
    (the whole text, same session). int8 (shipped) vs fp32 (built by the export, not shipped) vs lexical."""
    from detectors.toxicity import load_embedded, load_lexical, load_scorer, sentence_spans
    from guardrails.detector import Resources

    texts = texts_1000(data, 60 if quick else 300)
    res = Resources()
    systems: dict[str, Any] = {"lexical (old default)": (load_lexical(res), False),
                               "minilm-tw int8": (load_embedded(res, device="cpu"), True)}
    if fp32_dir is not None and (fp32_dir / "manifest.json").is_file():
        systems["minilm-tw fp32"] = (load_scorer(res, str(fp32_dir), device="cpu"), True)
    for m in models:  # --model folders (int8 when they ship only int8, like minilm-tw)
        systems[f"model {m.name}"] = (load_scorer(res, str(m), device="cpu"), True)
    out: dict[str, Any] = {"chars": 1000, "texts": len(texts), "threads": threads}
    for name, (scorer, inj) in systems.items():
        for t in texts[:5]:  # warm
            scorer.score([t[a:b] for a, b in sentence_spans(t)])
        rows: dict[str, list[float]] = {"toxicity": [], "injection": [], "together": []}
        for t in texts:
            t0 = time.perf_counter()
            scorer.score([t[a:b] for a, b in sentence_spans(t)])
            t1 = time.perf_counter()
            if inj:
                scorer.score([t])
            t2 = time.perf_counter()
            rows["toxicity"].append((t1 - t0) * 1e3)
            if inj:
                rows["injection"].append((t2 - t1) * 1e3)
                rows["together"].append((t2 - t0) * 1e3)
        out[name] = {k: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99))}
                     for k, v in rows.items() if v}
    return out


async def _load(call: Callable[[str], Any], texts: Sequence[str], callers: int, per_caller: int) -> dict[str, float]:
    lat: list[float] = []

    async def worker(k: int) -> None:
        for j in range(per_caller):
            t0 = time.perf_counter()
            await call(texts[(k * per_caller + j) % len(texts)])
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(k) for k in range(callers)))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"req_per_s": len(lat) / wall, "p50_ms": lat[len(lat) // 2] * 1e3,
            "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3, "requests": len(lat)}


def speed_batcher(name: str, score: Callable[[Sequence[str]], Any], texts: Sequence[str], callers: int,
                  per_caller: int, max_batch: int, workers: int = 2) -> dict[str, Any]:
    """64 callers, each sending one sentence at a time: through one MicroBatcher (as the detector does)
    vs each call run on its own in the default thread pool (asyncio.to_thread), same scorer."""
    from guardrails.inference.batcher import MicroBatcher

    b = MicroBatcher(score, max_batch=max_batch, max_wait_ms=2.0, workers=workers)

    async def batched(t: str) -> Any:
        return await b.run([t])

    async def unbatched(t: str) -> Any:
        return await asyncio.to_thread(score, [t])

    try:
        asyncio.run(_load(batched, texts, 4, 2))  # warm
        res_b = asyncio.run(_load(batched, texts, callers, per_caller))
        res_u = asyncio.run(_load(unbatched, texts, callers, per_caller))
    finally:
        b.close()
    return {"model": name, "callers": callers, "batched": {**res_b, **b.stats.as_dict()}, "unbatched": res_u,
            "throughput_gain": res_b["req_per_s"] / res_u["req_per_s"], "p99_ratio": res_u["p99_ms"] / res_b["p99_ms"]}


# ------------------------------------------------------------------------------------------- output


def _f(x: Any, nd: int = 3) -> str:
    if isinstance(x, float):
        return "nan" if x != x else f"{x:.{nd}f}"
    return str(x)


def print_quality(r: dict[str, Any]) -> None:
    names = list(r["hatecheck"]["systems"])
    print(f"\n## Quality (device: {r['device']})\n")
    print("| system | HateCheck macro-F1 | HateCheck ROC-AUC | OAI H / HR / V / S / SH AUPRC | OAI any F1@policy | "
          "OAI zero-row FPR | ToxiGen ROC-AUC | ToxiGen neutral FPR | ETHOS ROC-AUC | HolisticBias FPR | "
          "HolisticBias worst descriptor | Jigsaw mean AUC |")
    print("|---|" + "---|" * 12)
    for n in names:
        hc, om, tg = r["hatecheck"]["systems"][n], r["moderation"]["systems"][n], r["toxigen"]["systems"][n]
        hb, jg, et = r["holisticbias"]["systems"][n], r["jigsaw"]["systems"][n], r["ethos"]["systems"][n]
        worst = hb["worst_descriptors"][0] if hb["worst_descriptors"] else ("-", 0.0, 0)
        oai = " / ".join(_f(om[k]["auprc"]) for k in ("H", "HR", "V", "S", "SH"))
        print(f"| {n} | {_f(hc['macro_f1'])} | {_f(hc['roc_auc'])} | {oai} | {_f(om['any']['f1_at_policy'])} | "
              f"{_f(om['any']['zero_row_fpr'], 4)} | {_f(tg['roc_auc'])} | {_f(tg['neutral_fpr'])} | "
              f"{_f(et['roc_auc'])} | {_f(hb['fpr'], 4)} | {worst[0]} {_f(worst[1])} | {_f(jg['mean_auc'])} |")
    om0 = r["moderation"]["systems"][names[0]]
    print("\nopenai-moderation base rates (AUPRC of a random scorer): " + ", ".join(
        f"{k} {_f(v['base_rate'])} ({v['pos']}/{v['n']})" for k, v in om0.items() if k in ("H", "HR", "V", "S", "SH")))
    print("H (toxicity score instead of identity_attack) AUPRC: " + ", ".join(
        f"{n} {_f(r['moderation']['systems'][n]['H (toxicity)']['auprc'])}" for n in names))
    ml = r.get("multilingual")
    if ml:
        langs = list(ml["n"])
        print("\nMultilingual HateCheck (coverage; trained on English only), macro-F1 / ROC-AUC:\n")
        print("| system | " + " | ".join(f"{lg} (n {ml['n'][lg]})" for lg in langs) + " |")
        print("|---|" + "---|" * len(langs))
        for n in names:
            print(f"| {n} | " + " | ".join(f"{_f(ml['systems'][n][lg]['macro_f1'])} / "
                                          f"{_f(ml['systems'][n][lg]['roc_auc'])}" for lg in langs) + " |")
    print("\nHateCheck accuracy per functionality (n):\n")
    print("| functionality | n | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    fn_n = r["hatecheck"]["systems"][names[0]]["functionality_n"]
    for fn in fn_n:
        print(f"| {fn} | {fn_n[fn]} | " + " | ".join(
            _f(r["hatecheck"]["systems"][n]["per_functionality"][fn], 2) for n in names) + " |")
    for n in names:
        print(f"\nHolisticBias worst 10 descriptors, {n} (descriptor, FPR, n): "
              f"{r['holisticbias']['systems'][n]['worst_descriptors']}")


def print_speed(s: dict[str, Any]) -> None:
    print("\n## Speed\n")
    if "profanity" in s:
        p = s["profanity"]
        print(f"profanity-check ONNX vs scikit-learn (max |diff| {p['max_abs_diff']:.1e}):")
        for k in ("batch 1", "batch 32"):
            print(f"  {k}: sklearn {p[k]['sklearn_ms']:.2f} ms, onnx {p[k]['onnx_ms']:.2f} ms, x{p[k]['speedup']:.1f}")
    if "transformer" in s:
        t = s["transformer"]
        print(f"Detoxify-architecture BERT ({t['layers']} layers x 768, random weights), 128 tokens, "
              f"{t['threads']} threads, ONNX device {t['device']}; conversion {t['convert_s']:.0f} s, "
              f"max |logit diff| {t['max_abs_logit_diff']:.1e}:")
        for k in ("batch 1", "batch 32"):
            v = t[k]
            print(f"  {k}: PyTorch {v['torch_ms']:.1f} ms, ONNX fp32 {v['onnx_ms']:.1f} ms x{v['speedup']:.2f} "
                  f"({v['onnx_texts_per_s']:.1f} texts/s, max |prob diff| {v['max_abs_prob_diff']:.1e}), "
                  f"ONNX int8 {v['int8_ms']:.1f} ms x{v['int8_speedup']:.2f} (max |prob diff| "
                  f"{v['int8_max_abs_prob_diff']:.1e})")
    if "latency_1000" in s:
        lt = s["latency_1000"]
        print(f"\nPer-text latency, one {lt['chars']}-character text at a time ({lt['texts']} texts, "
              f"{lt['threads']} threads):\n")
        print("| system | toxicity p50 / p99 ms | injection p50 / p99 ms | toxicity + injection p50 / p99 ms |")
        print("|---|---|---|---|")
        for n, v in lt.items():
            if not isinstance(v, dict):
                continue
            cell = [f"{v[k]['p50_ms']:.1f} / {v[k]['p99_ms']:.1f}" if k in v else "–"
                    for k in ("toxicity", "injection", "together")]
            print(f"| {n} | " + " | ".join(cell) + " |")
        print()
    for key in ("batcher_lexical", "batcher_minilm", "batcher_transformer"):
        if key in s:
            b = s[key]
            print(f"MicroBatcher, {b['callers']} concurrent callers, model {b['model']}: "
                  f"batched {b['batched']['req_per_s']:.0f} req/s p50 {b['batched']['p50_ms']:.1f} ms "
                  f"p99 {b['batched']['p99_ms']:.1f} ms (mean batch {b['batched']['mean_batch']}) vs unbatched "
                  f"{b['unbatched']['req_per_s']:.0f} req/s p50 {b['unbatched']['p50_ms']:.1f} ms "
                  f"p99 {b['unbatched']['p99_ms']:.1f} ms -> throughput x{b['throughput_gain']:.2f}, "
                  f"p99 x{b['p99_ratio']:.2f} lower")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="samples and a 2-layer transformer (about 2 min)")
    ap.add_argument("--json", type=Path, default=None, help="write all figures as JSON")
    ap.add_argument("--model", type=Path, action="append", default=[], help="also evaluate this model directory")
    ap.add_argument("--fp32-dir", type=Path, default=ROOT / "build" / "minilm-tw-full",
                    help="minilm-tw with its fp32 variant (python -m training.tox.export RUN --keep-fp32 --out DIR)")
    ap.add_argument("--skip-bert", action="store_true", help="skip the random BERT-base ONNX-vs-PyTorch row")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 8))
    a = ap.parse_args(argv)
    os.environ.setdefault("TRUSTWALL_ORT_THREADS", str(a.threads))
    data = eval_dir()
    t0 = time.perf_counter()
    res: dict[str, Any] = {"machine": machine(), "quick": a.quick,
                           "command": "python -m benchmarks.bench_toxicity " + " ".join(argv or sys.argv[1:])}
    if not a.skip_quality:
        if not data.is_dir():
            print(f"eval data not found at {data} (set TRUSTWALL_EVAL_DATA)", file=sys.stderr)
            return 2
        rng = random.Random(1234)
        sy = Systems(a.model, a.fp32_dir)
        res["device"] = sy.device
        res["hatecheck"] = hatecheck(sy, data, a.quick, rng)
        res["moderation"] = moderation(sy, data, a.quick, rng)
        res["toxigen"] = toxigen(sy, data, a.quick, rng)
        res["holisticbias"] = holistic(sy, data, a.quick, rng)
        res["ethos"] = ethos(sy, data)
        res["multilingual"] = multilingual(sy, data, a.quick, rng)
        res["jigsaw"] = jigsaw(sy, data)
        print_quality(res)
    if not a.skip_speed:
        sp: dict[str, Any] = {}
        sp["profanity"] = speed_profanity(data, a.quick)
        clf = None
        if not a.skip_bert:
            sp["transformer"] = speed_transformer(a.quick, a.threads)
            clf = sp["transformer"].pop("_clf")
        from detectors.toxicity import load_embedded, load_lexical

        sp["latency_1000"] = latency_1000(data, a.quick, a.fp32_dir, a.threads, a.model)
        lex, emb = load_lexical(None), load_embedded(None, device="cpu")
        sentences = [f"Sentence number {i} says the weather is fine and nobody is upset today." for i in range(500)]
        sp["batcher_lexical"] = speed_batcher("lexical (BiLSTM + TF-IDF)", lex.score, sentences, 64,
                                              5 if a.quick else 20, 64)
        sp["batcher_minilm"] = speed_batcher("minilm-tw int8", emb.score, sentences, 64, 2 if a.quick else 8, 64)
        if clf is not None:
            sp["batcher_transformer"] = speed_batcher(f"BERT {sp['transformer']['layers']} layers", clf.predict,
                                                      sentences, 64, 1 if a.quick else 4, 64)
        lex.close()
        emb.close()
        res["speed"] = sp
        print_speed(sp)
    res["seconds"] = time.perf_counter() - t0
    print(f"\n({res['seconds']:.0f} s on {res['machine']})")
    if a.json:
        a.json.write_text(json.dumps(res, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
