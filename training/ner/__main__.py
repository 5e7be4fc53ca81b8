"""python -m training.ner [--out DIR] [--epochs N] [--limit N]: fine-tune the embedded NER (see train.py).

The defaults are the shipped model's settings (detectors/models/ner-tw/meta.json "config"; a test checks
that they agree), so the bare command rebuilds it: up to TrainConfig.epochs epochs, the best by F1 on the
training data's own validation split.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.ner.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_OUT = ROOT / "detectors" / "models" / "ner-tw"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=(ROOT / ".." / "shared" / "train-data").resolve())
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    ap.add_argument("--limit", type=int, default=None, help="sentences per source (smoke runs)")
    ap.add_argument("--rehearsal", type=int, default=TrainConfig.rehearsal)
    ap.add_argument("--max-minutes", type=float, default=TrainConfig.max_minutes,
                    help="stop before an epoch that would end past this (the card says when it did)")
    args = ap.parse_args(argv)
    if not args.data.exists():
        print(f"training data not found at {args.data}", file=sys.stderr)
        return 2
    report = train(TrainConfig(args.data, args.out, epochs=args.epochs, limit=args.limit, rehearsal=args.rehearsal,
                               max_minutes=args.max_minutes, log=lambda m: print(m, flush=True)))
    print(json.dumps(report["validation"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
