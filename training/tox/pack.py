"""Bundle what a lent GPU machine needs beyond the repository: the encoder and the training sets.

The device transfer is capped (64 MiB with the repository), so the bundle stores the encoder's layers in
fp16 and its word-embedding matrix as int8 rows with a per-row fp16 scale (max relative error ~0.4% per
entry; fine-tuning starts from there); model.build() reads that form back.
"""

from __future__ import annotations

import argparse
import shutil
import tarfile
from pathlib import Path

import torch

from training.tox.data import LOADERS
from training.tox.model import minilm_dir

FOLDERS = ("toxic-spans-civil-comments/data", "davidson-hate-offensive", "hatemoji-build", "xstest",
           "pyrit-harm-scored", "deepset-prompt-injections", "jailbreak-llms-inthewild", "awesome-chatgpt-prompts",
           "self-instruct-seeds", "gsm8k")
SKIP = ("test.jsonl", "test.csv", "inthewild_jailbreak_llms.json", ".parquet")


def pack_encoder(dst: Path) -> None:
    from safetensors.torch import load_file, save_file

    src = minilm_dir()
    dst.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copy(src / name, dst / name)
    w = load_file(str(src / "model.safetensors"))
    out = {}
    for k, v in w.items():
        if k == "embeddings.word_embeddings.weight":
            scale = v.abs().amax(1, keepdim=True).clamp(min=1e-8) / 127.0
            out[k] = torch.round(v / scale).to(torch.int8)
            out["embeddings.word_embeddings.scale"] = scale.half()
        elif v.dtype.is_floating_point:
            out[k] = v.half()
    save_file(out, str(dst / "model.safetensors"))


def pack_data(root: Path, dst: Path) -> None:
    with tarfile.open(dst, "w:xz") as tar:
        for folder in FOLDERS:
            for p in sorted((root / folder).rglob("*")):
                if p.is_file() and not any(p.name.endswith(s) or p.name == s for s in SKIP):
                    tar.add(p, arcname=str(p.relative_to(root)))
        for extra in ("toxic-spans-civil-comments/eval_overlap_exclude.tsv",):
            tar.add(root / extra, arcname=extra)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(".gpu"))
    ap.add_argument("--data-root", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "train-data")
    a = ap.parse_args(argv)
    assert set(LOADERS)  # the loaders read only the folders above
    pack_encoder(a.out / "encoder")
    pack_data(a.data_root, a.out / "train-data.tar.xz")
    total = sum(p.stat().st_size for p in a.out.rglob("*") if p.is_file())
    print(f"{a.out}: {total / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
