"""The model directory format and its one loader.

A model directory holds the ONNX file(s), the tokenizer files, a licence and `manifest.json`:

```json
{
  "format": 1,
  "name": "toxic-bilstm",
  "kind": "transformer" | "sequence" | "text",
  "labels": ["toxic", ...],
  "label_map": {"toxic": "toxicity"},          # model label -> the category we report (optional)
  "activation": "sigmoid" | "softmax" | "none", # applied to the output named `output`
  "output": "logits",                           # output tensor name (default: the first output)
  "output_index": null,                         # for (N, 2) binary outputs: take this column
  "input_names": ["input_ids", "attention_mask"],
  "max_length": 512,                            # tokens per window (0: no limit, e.g. TF-IDF models)
  "stride": 64,                                 # overlap between windows of a long text
  "pad_to": null,                               # a fixed length the model was trained with (keras)
  "tokenizer": {"kind": "tokenizers" | "wordpiece" | "word_index" | "none", "files": [...], ...},
  "variants": {"fp32": "model.onnx", "fp16": "model.fp16.onnx"},
  "files": {"model.onnx": "<sha256>", ...},     # every file but manifest.json
  "licence": "MIT", "licence_file": "LICENSE",
  "source": "where the weights came from and how they were converted"
}
```

Kinds: `transformer` takes token ids (+ attention mask, token type ids) of any length and is padded
to the longest window of a batch; `sequence` takes word ids padded to `pad_to` (a Keras model trained
on fixed-length input); `text` takes the raw strings (a scikit-learn pipeline converted by skl2onnx).

A directory without manifest.json that holds `model.onnx`, `tokenizer.json` and a Hugging Face
`config.json` with `id2label` (an HF sequence-classification model exported to ONNX) loads too: the
manifest is derived from config.json.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from guardrails.errors import ConfigError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


class TokenizerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["tokenizers", "wordpiece", "word_index", "none"] = "tokenizers"
    files: list[str] = Field(default_factory=list, description="tokenizer.json | vocab.txt | vocab.json")
    lowercase: bool = True  # wordpiece / word_index only
    filters: str = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'  # word_index only (Keras Tokenizer.filters)
    num_words: int | None = None  # word_index only: ids >= num_words are dropped (Keras semantics)
    oov_id: int | None = None  # word_index only


class Manifest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    format: int = FORMAT_VERSION
    name: str
    kind: Literal["transformer", "sequence", "text"]
    labels: list[str] = Field(min_length=1)
    label_map: dict[str, str] = Field(default_factory=dict)
    activation: Literal["sigmoid", "softmax", "none"] = "sigmoid"
    output: str | None = None
    output_index: int | None = None
    input_names: list[str] = Field(default_factory=list)
    max_length: int = Field(512, ge=0)
    stride: int = Field(64, ge=0)
    pad_to: int | None = None
    tokenizer: TokenizerSpec = Field(default_factory=TokenizerSpec)
    variants: dict[str, str] = Field(default_factory=lambda: {"fp32": "model.onnx"})
    files: dict[str, str] = Field(default_factory=dict)
    licence: str = "unknown"
    licence_file: str | None = None
    source: str = ""
    quality: dict[str, Any] = Field(default_factory=dict)

    def categories(self) -> list[str]:
        """The categories this model reports, in label order (label_map applied)."""
        return [self.label_map.get(lbl, lbl) for lbl in self.labels]


@dataclass(frozen=True)
class ModelDir:
    path: Path
    manifest: Manifest
    derived: bool = False  # True when built from an HF config.json rather than manifest.json

    def file(self, rel: str) -> Path:
        return self.path / rel

    def variant(self, name: str) -> Path | None:
        rel = self.manifest.variants.get(name)
        return None if rel is None else self.path / rel


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_files(root: Path, rels: Iterable[str]) -> dict[str, str]:
    return {rel: sha256_file(root / rel) for rel in sorted(set(rels))}


def write_manifest(root: Path, manifest: Manifest) -> Manifest:
    """Hash every file in `root` (except manifest.json) into the manifest and write it."""
    rels = [p.relative_to(root).as_posix() for p in sorted(root.rglob("*")) if p.is_file() and p.name != MANIFEST]
    final = manifest.model_copy(update={"files": hash_files(root, rels)})
    (root / MANIFEST).write_text(json.dumps(final.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n")
    return final


def verify(model: ModelDir) -> list[str]:
    """Problems found: missing files and sha256 mismatches (empty list: all good)."""
    problems = []
    for rel, digest in model.manifest.files.items():
        p = model.path / rel
        if not p.is_file():
            problems.append(f"{rel}: missing")
        elif sha256_file(p) != digest:
            problems.append(f"{rel}: sha256 mismatch")
    for rel in model.manifest.variants.values():
        if rel not in model.manifest.files and not (model.path / rel).is_file():
            problems.append(f"{rel}: missing")
    return problems


def _derive_from_hf(root: Path) -> Manifest:
    cfg = json.loads((root / "config.json").read_text())
    id2label = cfg.get("id2label") or {}
    if not id2label:
        raise ConfigError(f"{root}/config.json has no id2label")
    labels = [str(id2label[k]) for k in sorted(id2label, key=lambda k: int(k))]
    multi = cfg.get("problem_type") == "multi_label_classification" or len(labels) > 2 and cfg.get(
        "problem_type") != "single_label_classification"
    max_pos = int(cfg.get("max_position_embeddings") or 512)
    if cfg.get("model_type") in ("roberta", "xlm-roberta", "camembert"):
        max_pos -= 2  # RoBERTa positions start at padding_idx + 1
    variants = {"fp32": "model.onnx"}
    if (root / "model.fp16.onnx").is_file():
        variants["fp16"] = "model.fp16.onnx"
    return Manifest(
        name=root.name, kind="transformer", labels=labels, activation="sigmoid" if multi else "softmax",
        max_length=min(max_pos, 512), tokenizer=TokenizerSpec(kind="tokenizers", files=["tokenizer.json"]),
        variants=variants, licence=str(cfg.get("license", "unknown")),
        source=f"Hugging Face ONNX export ({cfg.get('_name_or_path') or cfg.get('model_type', '?')})",
    )


def load_model_dir(path: str | Path, *, check: bool = True) -> ModelDir:
    """Load a model directory: manifest.json, or an HF ONNX export (model.onnx + tokenizer.json + config.json).

    With `check`, every file's sha256 is verified against the manifest; a mismatch is a ConfigError.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ConfigError(f"model directory not found: {root}")
    mpath = root / MANIFEST
    if mpath.is_file():
        try:
            manifest = Manifest.model_validate_json(mpath.read_text())
        except Exception as exc:
            raise ConfigError(f"{mpath}: invalid manifest: {exc}") from None
        if manifest.format > FORMAT_VERSION:
            raise ConfigError(f"{mpath}: format {manifest.format} is newer than this trustwall ({FORMAT_VERSION})")
        model = ModelDir(root, manifest)
    elif (root / "model.onnx").is_file() and (root / "config.json").is_file() and (root / "tokenizer.json").is_file():
        model = ModelDir(root, _derive_from_hf(root), derived=True)
    else:
        raise ConfigError(f"{root}: neither manifest.json nor an HF ONNX export (model.onnx, tokenizer.json, config.json)")
    if check:
        problems = verify(model)
        if problems:
            raise ConfigError(f"{root}: " + "; ".join(problems))
    return model
