"""Detoxify checkpoints (tiny random BERT / RoBERTa) -> ONNX model directories; ONNX == PyTorch within 1e-4.

Also: padding per batch does not change scores, long texts are windowed, the CLI converts, lists and
verifies, and the CUDA path runs where CUDA exists.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tests.support.tiny_transformers import (
    bert_tokenizer_dir,
    detoxify_checkpoint,
    reference_model,
    roberta_tokenizer_dir,
)

pytestmark = pytest.mark.slow

TEXTS = [
    "thank you for your help , this is a great day",
    "you are a stupid idiot and everyone hates you",
    "i will find you",
    "le chat est sur la table",
    "short",
    "",
]


@pytest.fixture(scope="module", params=["bert", "roberta"])
def converted(request, tmp_path_factory):
    from guardrails.inference.convert import convert_detoxify

    family = request.param
    d = tmp_path_factory.mktemp(family)
    tok = bert_tokenizer_dir(d / "tok") if family == "bert" else roberta_tokenizer_dir(d / "tok")
    ckpt = detoxify_checkpoint(d / "model.ckpt", family, vocab_size=200 if family == "bert" else 300)
    res = convert_detoxify(ckpt, tok, d / "out", fp16=True, int8=True)
    return family, ckpt, d / "out", res


def _torch_probs(ckpt: Path, out: Path, texts: list[str]) -> np.ndarray:
    import torch
    from tokenizers import Tokenizer

    model = reference_model(ckpt)
    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    rows = []
    for t in texts:
        enc = tok.encode(t)
        feed = {"input_ids": torch.tensor([enc.ids]), "attention_mask": torch.ones((1, len(enc.ids)), dtype=torch.int64)}
        if "bert" in type(model).__name__.lower() and "roberta" not in type(model).__name__.lower():
            feed["token_type_ids"] = torch.tensor([enc.type_ids])
        with torch.no_grad():
            rows.append(torch.sigmoid(model(**feed).logits)[0].numpy())
    return np.stack(rows)


def test_manifest_of_a_converted_checkpoint(converted):
    family, _ckpt, out, res = converted
    m = json.loads((out / "manifest.json").read_text())
    assert m["kind"] == "transformer" and m["activation"] == "sigmoid"
    assert m["labels"][:2] == ["toxic", "severe_toxic"]
    assert m["label_map"]["toxic"] == "toxicity" and m["label_map"]["identity_hate"] == "identity_attack"
    assert set(m["variants"]) == {"fp32", "fp16", "int8"}
    assert {"model.onnx", "model.fp16.onnx", "tokenizer.json", "config.json"} <= set(m["files"])
    assert ("token_type_ids" in m["input_names"]) == (family == "bert")
    assert res.max_abs_diff < 1e-4
    assert m["quality"]["max_abs_logit_diff_vs_torch"] < 1e-4


def test_onnx_batched_and_padded_equals_pytorch(converted):
    from guardrails.inference.classifier import OnnxTextClassifier

    _family, ckpt, out, _res = converted
    clf = OnnxTextClassifier(out, device="cpu", max_batch=4)
    assert clf.device == "cpu" and clf.info()["device"] == "cpu"
    got = clf.predict(TEXTS)  # sorted by length, padded per chunk of 4
    ref = _torch_probs(ckpt, out, TEXTS)
    assert got.shape == (len(TEXTS), 6)
    assert np.abs(got - ref).max() < 1e-4
    one_by_one = np.stack([clf.predict([t])[0] for t in TEXTS])
    assert np.abs(got - one_by_one).max() < 1e-5
    assert clf.categories[0] == "toxicity"


def test_long_text_is_scored_over_windows_max_over_windows(converted):
    from guardrails.inference.classifier import OnnxTextClassifier

    _family, ckpt, out, _res = converted
    clf = OnnxTextClassifier(out, device="cpu", max_batch=8)
    long_text = " ".join(["good day"] * 200 + ["you are a stupid idiot"] + ["nice day"] * 200)
    windows = clf._tok.windows([long_text])
    assert len(windows) > 3 and max(len(w) for w in windows) <= clf.model.manifest.max_length
    # the window scores, computed one by one in PyTorch-equivalent ONNX, max-reduced == predict()
    per_window = np.stack([clf.run_windows([w])[0] for w in windows])
    assert np.allclose(clf.predict([long_text])[0], per_window.max(axis=0), atol=1e-5)


def test_int8_variant_is_opt_in_and_close(converted):
    from guardrails.errors import ConfigError
    from guardrails.inference.classifier import OnnxTextClassifier

    _family, _ckpt, out, res = converted
    fp32 = OnnxTextClassifier(out, device="cpu")
    q = OnnxTextClassifier(out, device="cpu", precision="int8")
    assert fp32.info()["variant"] == "fp32" and q.info()["variant"] == "int8"
    assert np.abs(q.predict(TEXTS) - fp32.predict(TEXTS)).max() < 0.05
    assert res.max_abs_diff_int8 is not None
    with pytest.raises(ConfigError, match="precision"):
        OnnxTextClassifier(out, device="cpu", precision="bf16")


def test_cli_convert_list_verify(tmp_path):
    from guardrails.cli import app

    tok = bert_tokenizer_dir(tmp_path / "tok")
    ckpt = detoxify_checkpoint(tmp_path / "m.ckpt", "bert")
    models = tmp_path / "models"
    runner = CliRunner()
    r = runner.invoke(app, ["models", "convert", "detoxify", "--checkpoint", str(ckpt), "--tokenizer", str(tok),
                            "--out", str(models / "tiny-detox")])
    assert r.exit_code == 0, r.output
    assert "max |ONNX - PyTorch|" in r.output
    r = runner.invoke(app, ["models", "list", "--models-dir", str(models), "--json"])
    assert r.exit_code == 0, r.output
    names = {row["name"]: row for row in json.loads(r.output)}
    assert {"tiny-detox", "toxic-bilstm", "profanity-check"} <= set(names)
    assert names["tiny-detox"]["origin"] == "models_dir"
    r = runner.invoke(app, ["models", "verify", "--models-dir", str(models)])
    assert r.exit_code == 0, r.output
    assert r.output.count("OK ") == 4  # minilm-tw, profanity-check, toxic-bilstm, tiny-detox
    (models / "tiny-detox" / "tokenizer.json").write_text("{}")
    r = runner.invoke(app, ["models", "verify", "tiny-detox", "--models-dir", str(models)])
    assert r.exit_code == 1 and "tokenizer.json: sha256 mismatch" in r.output


def test_cli_convert_errors_are_clear(tmp_path):
    from guardrails.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["models", "convert", "detoxify", "--checkpoint", str(tmp_path / "none.ckpt"),
                            "--tokenizer", str(tmp_path), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "checkpoint not found" in r.output
    bogus = tmp_path / "bogus.ckpt"
    import torch

    torch.save({"weights": 1}, str(bogus))
    from guardrails.errors import ConfigError
    from guardrails.inference.convert import convert_detoxify

    with pytest.raises(ConfigError, match="not a Detoxify checkpoint"):
        convert_detoxify(bogus, tmp_path, tmp_path / "o")


def test_hf_style_export_dir_loads_and_scores(converted, tmp_path):
    """An HF ONNX export (model.onnx + tokenizer.json + config.json with id2label, no manifest) loads."""
    import shutil

    from guardrails.inference.classifier import OnnxTextClassifier

    _family, _ckpt, out, _res = converted
    hf = tmp_path / "hf-export"
    hf.mkdir()
    for f in ("model.onnx", "tokenizer.json", "config.json"):
        shutil.copyfile(out / f, hf / f)
    clf = OnnxTextClassifier(hf, device="cpu")
    assert clf.model.derived
    assert clf.labels[0] == "toxic"
    ref = OnnxTextClassifier(out, device="cpu").predict(TEXTS)
    assert np.abs(clf.predict(TEXTS) - ref).max() < 1e-6


@pytest.mark.cuda
def test_cuda_fp16_path(converted):
    from guardrails.inference.classifier import OnnxTextClassifier
    from guardrails.inference.session import cuda_available

    if not cuda_available():
        pytest.skip("onnxruntime has no CUDAExecutionProvider on this machine")
    _family, _ckpt, out, _res = converted
    gpu = OnnxTextClassifier(out, device="cuda", max_batch=4)
    assert gpu.device == "cuda"
    assert gpu.info()["variant"] == "fp16"
    cpu = OnnxTextClassifier(out, device="cpu").predict(TEXTS)
    assert np.abs(gpu.predict(TEXTS) - cpu).max() < 1e-2
