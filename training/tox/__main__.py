"""`python -m training.tox`: train, then export the shipped model (one command rebuilds it)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from training.tox.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.tox", description=__doc__)
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "train-data")
    ap.add_argument("--out", type=Path, default=ROOT / "detectors" / "models" / "minilm-tw", help="model folder")
    ap.add_argument("--run-dir", type=Path, default=ROOT / "build" / "tox-run", help="weights + report")
    ap.add_argument("--encoder-dir", type=Path, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--epochs", type=float, default=1.5, help="1.5: the shipped model (about 50 min on 2 CPU cores)")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--limit", type=int, default=None, help="rows per source (CI slice)")
    ap.add_argument("--layers", type=int, default=None, help="use the first N encoder layers (CI slice)")
    ap.add_argument("--no-contrast", action="store_true", help="leave out training/tox/contrast.tsv")
    ap.add_argument("--max-minutes", type=float, default=110.0)
    ap.add_argument("--fp16", action="store_true", help="also export the CUDA fp16 variant (~45 MB, not shipped)")
    ap.add_argument("--train-only", action="store_true", help="stop after writing the run folder")
    a = ap.parse_args(argv)
    cfg = TrainConfig(data_root=a.data_root, out=a.run_dir, encoder_dir=a.encoder_dir, device=a.device,
                      epochs=a.epochs, batch=a.batch, max_len=a.max_len, lr=a.lr, limit=a.limit, layers=a.layers,
                      contrast=not a.no_contrast, max_minutes=a.max_minutes,
                      log=lambda s: print(s, file=sys.stderr, flush=True))
    report = train(cfg)
    if not a.train_only:
        from training.tox.export import export  # needs onnxruntime; the training alone does not

        res = export(a.run_dir / "weights.safetensors", report, a.out, encoder_dir=a.encoder_dir, fp16=a.fp16,
                     data_root=a.data_root)
        print(json.dumps({k: res[k] for k in ("out", "sizes", "parity", "seconds")}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
