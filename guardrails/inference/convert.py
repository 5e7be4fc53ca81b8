"""Model conversion (needs the `convert` extra: torch, transformers, onnx). Never imported when serving.

`convert_detoxify` turns a Detoxify checkpoint (original / unbiased / multilingual: a torch file with
`config` and `state_dict`) into a model directory, without the Detoxify class and without the hub:
the transformers config is rebuilt from the checkpoint's own `config` and the state dict's shapes
(or taken from a config.json in the tokenizer directory), the tokenizer comes from a local directory.

Detoxify checkpoint layout (what its `load_checkpoint` reads):
    checkpoint["config"]["arch"]["args"] = {"model_type": "bert-base-uncased" | "roberta-base" | "xlm-roberta-base",
                                            "model_name": "BertForSequenceClassification" | ..., "num_classes": N}
    checkpoint["config"]["dataset"]["args"]["classes"] = ["toxic", "severe_toxic", ...]  (first N are the heads)
    checkpoint["state_dict"] = the *ForSequenceClassification state dict
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from guardrails.errors import ConfigError
from guardrails.inference.manifest import Manifest, TokenizerSpec, write_manifest

DETOXIFY_RENAME = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}
_ARCH = {
    "BertForSequenceClassification": ("bert", "BertConfig"),
    "RobertaForSequenceClassification": ("roberta", "RobertaConfig"),
    "XLMRobertaForSequenceClassification": ("xlm-roberta", "XLMRobertaConfig"),
}
SAMPLE_TEXTS = [
    "Thank you for your help, this is great.",
    "You are a stupid idiot and everyone hates you.",
    "I will find you and hurt you.",
    "Le chat est sur la table, et il dort depuis ce matin.",
    "short",
    "A longer sentence that goes on and on about nothing in particular, " * 4,
]


@dataclass(frozen=True)
class Converted:
    manifest: Manifest
    max_abs_diff: float  # ONNX (fp32) vs PyTorch on the sample texts
    max_abs_diff_fp16: float | None = None
    max_abs_diff_int8: float | None = None


def _arch_of(ckpt: dict[str, Any], state: dict[str, Any]) -> tuple[str, str, str]:
    args = ((ckpt.get("config") or {}).get("arch") or {}).get("args") or {}
    model_name = args.get("model_name")
    model_type = str(args.get("model_type") or "")
    if model_name not in _ARCH:
        if any(k.startswith("roberta.") for k in state):
            model_name = "XLMRobertaForSequenceClassification" if "xlm" in model_type else "RobertaForSequenceClassification"
        elif any(k.startswith("bert.") for k in state):
            model_name = "BertForSequenceClassification"
        else:
            raise ConfigError(f"unsupported Detoxify architecture {model_name!r}")
    return model_name, _ARCH[model_name][0], model_type


def _labels_of(ckpt: dict[str, Any], n: int) -> list[str]:
    classes = (((ckpt.get("config") or {}).get("dataset") or {}).get("args") or {}).get("classes") or []
    labels = [str(c) for c in classes][:n]
    if len(labels) < n:
        labels += [f"label_{i}" for i in range(len(labels), n)]
    return labels


def build_hf_config(model_name: str, state: dict[str, Any], num_labels: int, labels: list[str],
                    config_json: Path | None = None) -> Any:
    """A transformers config for the state dict, from config.json when given, else from tensor shapes."""
    import transformers

    family, cfg_cls_name = _ARCH[model_name]
    cfg_cls = getattr(transformers, cfg_cls_name)
    id2label = dict(enumerate(labels))
    if config_json is not None and config_json.is_file():
        data = json.loads(config_json.read_text())
        data.update(num_labels=num_labels, id2label=id2label, label2id={v: k for k, v in id2label.items()},
                    problem_type="multi_label_classification")
        return cfg_cls(**{k: v for k, v in data.items() if k not in ("architectures",)})
    prefix = "bert." if family == "bert" else "roberta."
    emb = state[prefix + "embeddings.word_embeddings.weight"]
    vocab, hidden = int(emb.shape[0]), int(emb.shape[1])
    layers = 1 + max(int(k.split(".")[3]) for k in state if k.startswith(prefix + "encoder.layer."))
    inter = int(state[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[0])
    pos = int(state[prefix + "embeddings.position_embeddings.weight"].shape[0])
    types = int(state[prefix + "embeddings.token_type_embeddings.weight"].shape[0])
    kw: dict[str, Any] = dict(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                              num_attention_heads=max(1, hidden // 64), intermediate_size=inter,
                              max_position_embeddings=pos, type_vocab_size=types, num_labels=num_labels,
                              id2label=id2label, label2id={v: k for k, v in id2label.items()},
                              problem_type="multi_label_classification")
    if family != "bert":
        kw.update(layer_norm_eps=1e-5, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    return cfg_cls(**kw)


def _save_tokenizer(tokenizer_dir: Path, out: Path, family: str, model_type: str) -> TokenizerSpec:
    """tokenizer.json into `out`: copied when present, else built once from the slow files by transformers."""
    src = tokenizer_dir / "tokenizer.json"
    if src.is_file():
        shutil.copyfile(src, out / "tokenizer.json")
    else:
        try:
            from transformers import AutoTokenizer

            tok = AutoTokenizer.from_pretrained(str(tokenizer_dir), local_files_only=True, use_fast=True)
        except Exception as exc:
            raise ConfigError(f"cannot read a tokenizer from {tokenizer_dir} ({type(exc).__name__}: {exc}); "
                              "put the model's tokenizer.json there") from None
        backend = getattr(tok, "backend_tokenizer", None)
        if backend is None:
            raise ConfigError(f"{tokenizer_dir}: no fast tokenizer could be built; put tokenizer.json there")
        backend.save(str(out / "tokenizer.json"))
    return TokenizerSpec(kind="tokenizers", files=["tokenizer.json"])


def export_transformer(model: Any, path: Path, with_token_types: bool, opset: int = 17) -> None:
    import torch

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if with_token_types else [])
    ex = tuple(torch.ones((2, 16), dtype=torch.int64) for _ in names)
    dyn = {n: {0: "batch", 1: "sequence"} for n in names}
    dyn["logits"] = {0: "batch"}

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any):
            super().__init__()
            self.inner = inner

        def forward(self, *args: Any) -> Any:
            return self.inner(**dict(zip(names, args))).logits

    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python booleans in masking code: harmless here
        torch.onnx.export(Wrapped(model).eval(), ex, str(path), input_names=names, output_names=["logits"],
                          dynamic_axes=dyn, opset_version=opset, do_constant_folding=True, dynamo=False)


def optimize_onnx(raw: Path, out: Path, num_heads: int, hidden: int, *, fp16: Path | None = None) -> None:
    """Fuse attention/LayerNorm/GELU with onnxruntime's transformer optimizer (raw -> out) and optionally
    write an fp16 copy (inputs/outputs kept int64/fp32) for the CUDA provider."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    for name in ("onnxruntime.transformers", "onnx_model", "fusion_base", "optimizer"):
        logging.getLogger(name).setLevel(logging.ERROR)
    opt = optimize_model(str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden, opt_level=1,
                         use_gpu=False)
    opt.save_model_to_file(str(out))
    if fp16 is not None:
        gpu = optimize_model(str(raw), model_type="bert", num_heads=num_heads, hidden_size=hidden, opt_level=1,
                             use_gpu=True)
        gpu.convert_float_to_float16(keep_io_types=True)
        gpu.save_model_to_file(str(fp16))


def quantize_int8(src: Path, dst: Path, *, per_channel: bool = False, reduce_range: bool = False) -> None:
    """Dynamic int8 quantisation of the MatMul weights (onnxruntime.quantization) for the CPU provider.
    `per_channel` (a scale per output column) and `reduce_range` (7-bit weights) cut the error a lot on
    small fine-tuned encoders (minilm-tw: max |diff| 0.84 -> 0.10, mean 0.014 -> 0.004) at the same size."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    import logging

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantiser logs a pre-processing hint on the root logger
    try:
        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=per_channel,
                         reduce_range=reduce_range, extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)


def compare_with_torch(model: Any, out: Path, texts: list[str] | None = None) -> tuple[float, float | None]:
    """Max |ONNX - PyTorch| of the logits over sample texts (fp32; fp16 when present and runnable)."""
    import torch

    from guardrails.inference.manifest import load_model_dir
    from guardrails.inference.tokenize import SubwordTokenizer

    md = load_model_dir(out, check=False)
    tok = SubwordTokenizer(md)
    windows = tok.windows(texts or SAMPLE_TEXTS)
    import onnxruntime as ort

    diffs: list[float | None] = []
    for variant in ("fp32", "fp16", "int8"):
        p = md.variant(variant)
        if p is None:
            diffs.append(None)
            continue
        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        inputs = {i.name for i in sess.get_inputs()}
        worst = 0.0
        for w in windows:
            feed = {"input_ids": w.ids[None], "attention_mask": np.ones_like(w.ids)[None],
                    "token_type_ids": (w.type_ids if w.type_ids is not None else np.zeros_like(w.ids))[None]}
            feed = {k: v for k, v in feed.items() if k in inputs}
            got = sess.run(["logits"], feed)[0]
            with torch.no_grad():
                ref = model(**{k: torch.from_numpy(v) for k, v in feed.items()}).logits.numpy()
            worst = max(worst, float(np.abs(got - ref).max()))
        diffs.append(worst)
    return float(diffs[0] or 0.0), diffs[1], diffs[2]


def convert_detoxify(checkpoint: Path, tokenizer_dir: Path, out: Path, *, fp16: bool = False,
                     optimize: bool = True, name: str | None = None, licence: str = "Apache-2.0",
                     int8: bool = False) -> Converted:
    """Detoxify checkpoint + local tokenizer directory -> model directory (manifest.json, model.onnx, ...)."""
    import torch
    import transformers

    if not checkpoint.is_file():
        raise ConfigError(f"checkpoint not found: {checkpoint}")
    if not tokenizer_dir.is_dir():
        raise ConfigError(f"tokenizer directory not found: {tokenizer_dir}")
    try:
        ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=False)
    except Exception as exc:
        raise ConfigError(f"cannot read checkpoint {checkpoint}: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise ConfigError(f"{checkpoint}: not a Detoxify checkpoint (no 'state_dict')")
    state = ckpt["state_dict"]
    model_name, family, model_type = _arch_of(ckpt, state)
    n = int(state["classifier.out_proj.weight" if family != "bert" else "classifier.weight"].shape[0])
    raw_labels = _labels_of(ckpt, n)
    config = build_hf_config(model_name, state, n, raw_labels, tokenizer_dir / "config.json")
    config._attn_implementation = "eager"
    model = getattr(transformers, model_name)(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("position_ids")]
    unexpected = [k for k in unexpected if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ConfigError(f"{checkpoint}: state dict does not fit {model_name}: missing {missing[:5]}, "
                          f"unexpected {unexpected[:5]}")
    model.eval()

    out.mkdir(parents=True, exist_ok=True)
    for old in ("model.onnx", "model.fp16.onnx", "model.int8.onnx", "manifest.json"):
        (out / old).unlink(missing_ok=True)
    tok_spec = _save_tokenizer(tokenizer_dir, out, family, model_type)
    with_types = family == "bert"
    if optimize or fp16:
        raw = out / "model.raw.onnx"
        export_transformer(model, raw, with_types)
        try:
            optimize_onnx(raw, out / "model.onnx", config.num_attention_heads, config.hidden_size,
                          fp16=(out / "model.fp16.onnx") if fp16 else None)
        finally:
            raw.unlink(missing_ok=True)
        if not optimize:  # fp16 wanted, fused fp32 not: keep the plain export as fp32
            export_transformer(model, out / "model.onnx", with_types)
    else:
        export_transformer(model, out / "model.onnx", with_types)
    if int8:
        quantize_int8(out / "model.onnx", out / "model.int8.onnx")
    cfg_out = config.to_dict()
    cfg_out["architectures"] = [model_name]
    (out / "config.json").write_text(json.dumps(cfg_out, indent=2, default=str) + "\n")
    max_len = min(512, int(config.max_position_embeddings) - (2 if family != "bert" else 0))
    variants = {"fp32": "model.onnx", **({"fp16": "model.fp16.onnx"} if fp16 else {}),
                **({"int8": "model.int8.onnx"} if int8 else {})}
    manifest = Manifest(
        name=name or out.name, kind="transformer", labels=raw_labels, label_map={
            k: v for k, v in DETOXIFY_RENAME.items() if k in raw_labels}, activation="sigmoid", output="logits",
        input_names=["input_ids", "attention_mask"] + (["token_type_ids"] if with_types else []),
        max_length=max_len, stride=64, tokenizer=tok_spec, variants=variants, licence=licence,
        source=f"Detoxify checkpoint {checkpoint.name} ({model_type or family}, {model_name}) converted by "
               f"trustwall models convert detoxify",
    )
    write_manifest(out, manifest)
    d32, d16, d8 = compare_with_torch(model, out)
    quality = {"max_abs_logit_diff_vs_torch": d32, **({"max_abs_logit_diff_fp16": d16} if d16 is not None else {}),
               **({"max_abs_logit_diff_int8": d8} if d8 is not None else {})}
    final = write_manifest(out, manifest.model_copy(update={"quality": quality}))
    return Converted(final, d32, d16, d8)
