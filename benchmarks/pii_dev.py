"""PII development measurements, on development data only (never the reported sets): what an option costs
in recall on name data and what it saves on benign prompts, so a rule can be decided before the reported
benchmark (benchmarks/bench_pii.py) is run once.

    .venv/bin/python -m benchmarks.pii_dev [--lone-names redact,ignore] [--option KEY=VALUE] [--gsm-n 400]

Name data: presidio-synth first half (bench_pii's --split dev) and the NER training data's own validation
split (crc32 split of training/ner/data.py: Broad Twitter Corpus, WNUT-17 train+dev, wikigold, SEC),
scored at the detector level (tokens joined by spaces; PERSON, overlap, at the policy's thresholds).
Benign prompts: GSM8K *train* questions (a seeded sample), self-instruct seed tasks, awesome-chatgpt-prompts
(`../shared/train-data`); the share the default policy would change, as in bench_pii.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_pii import (ROOT, SYNTH_MAP, load_synth, make_trustwall, policy_changes, policy_thresholds,
                                  predict, score, thresholded)


def benign_dev(data: Path, gsm_n: int) -> dict[str, list[str]]:
    with open(data / "gsm8k" / "train.jsonl", encoding="utf-8") as fh:
        gsm = [json.loads(line)["question"] for line in fh]
    random.Random(1).shuffle(gsm)
    seeds = []
    with open(data / "self-instruct-seeds" / "seed_tasks.jsonl", encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            inputs = [i["input"] for i in r.get("instances", []) if i.get("input")]
            seeds.append("\n".join([r["instruction"], *inputs]).strip())
    csv.field_size_limit(1 << 24)
    with open(data / "awesome-chatgpt-prompts" / "prompts.csv", encoding="utf-8") as fh:
        acp = [r["prompt"] for r in csv.DictReader(fh) if r.get("prompt")]
    return {f"GSM8K train ({gsm_n} sampled)": gsm[:gsm_n], "self-instruct seeds": seeds, "awesome-chatgpt-prompts": acp}


def name_validation(data: Path) -> list[tuple[str, list[tuple[int, int, str]], str]]:
    from training.ner.data import load_sources, split

    rows = []
    for s in split(load_sources(data))[1]:
        offs, pos = [], 0
        for t in s.tokens:
            offs.append((pos, pos + len(t)))
            pos += len(t) + 1
        spans = [(offs[a][0], offs[b - 1][1], lab) for a, b, lab in s.spans if lab == "PERSON"]
        rows.append((" ".join(s.tokens), spans, s.source))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=(ROOT / ".." / "shared" / "train-data").resolve())
    ap.add_argument("--lone-names", default="redact,ignore", help="comma-separated lone_names modes to compare")
    ap.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="other pii options")
    ap.add_argument("--gsm-n", type=int, default=400)
    ap.add_argument("--show", type=int, default=0, metavar="N", help="list the N most frequent changed values per set")
    ap.add_argument("--no-names", action="store_true", help="skip the name data (benign prompts only)")
    args = ap.parse_args(argv)
    thr, changes = policy_thresholds(), policy_changes()
    benign = benign_dev(args.data, args.gsm_n)
    synth, val = ([], []) if args.no_names else (load_synth("dev"), name_validation(args.data))
    print(f"presidio-synth dev half {len(synth)} texts; NER validation split {len(val)} sentences")
    for mode in args.lone_names.split(","):
        _, run = make_trustwall(None, {**dict(o.split("=", 1) for o in args.option), "lone_names": mode})
        if args.no_names:
            print(f"\nlone_names={mode}")
        else:
            names(run, synth, val, mode, thr)
        for name, prompts in benign.items():
            preds = predict(run, [(x, []) for x in prompts])
            hits = [[(c, x[s:e]) for s, e, c, sc in fl if changes(c, sc)] for x, fl in zip(prompts, preds)]
            print(f"  {name}: {sum(map(bool, hits)) / len(prompts):.1%} of {len(prompts)} changed")
            if args.show:
                top = Counter(h for hl in hits for h in hl).most_common(args.show)
                print("    " + ", ".join(f"{c}:{v!r} {n}" for (c, v), n in top))
    return 0


def names(run: Callable, synth: list, val: list, mode: str, thr: Callable[[str], float]) -> None:
    """PERSON on name data: presidio-synth dev half and the NER validation split (overall and tweets)."""
    types = sorted({v for v in SYNTH_MAP.values() if v})
    r = score(synth, thresholded(predict(run, synth), thr), SYNTH_MAP, types)
    p = r["PERSON"]
    print(f"\nlone_names={mode}\n  presidio-synth dev PERSON P/R/F1 overlap {p['p_overlap']:.3f}/{p['r_overlap']:.3f}/"
          f"{p['f1_overlap']:.3f}; all F1 overlap/exact {r['ALL']['f1_overlap']:.3f}/{r['ALL']['f1_exact']:.3f}")
    preds = thresholded(predict(run, [(t, sp) for t, sp, _ in val]), thr)
    for src in ("all", "broad-twitter-corpus", "wnut17-train-dev"):
        idx = [i for i, x in enumerate(val) if src == "all" or x[2] == src]
        q = score([val[i][:2] for i in idx], [preds[i] for i in idx], {"PERSON": "PERSON"}, ["PERSON"])["PERSON"]
        print(f"  NER validation [{src}] PERSON P/R/F1 overlap {q['p_overlap']:.3f}/{q['r_overlap']:.3f}/"
              f"{q['f1_overlap']:.3f} (gold {q['gold']:.0f})")


if __name__ == "__main__":
    sys.exit(main())
