"""Model directories: manifest round trip, sha256 verification, HF ONNX exports without a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guardrails.errors import ConfigError
from guardrails.inference.manifest import Manifest, TokenizerSpec, load_model_dir, verify, write_manifest


def _dir(tmp_path: Path) -> Path:
    d = tmp_path / "m"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"not really onnx")
    (d / "vocab.json").write_text("{}")
    write_manifest(d, Manifest(name="m", kind="sequence", labels=["toxic"], pad_to=10,
                               tokenizer=TokenizerSpec(kind="word_index", files=["vocab.json"]), licence="MIT"))
    return d


def test_manifest_hashes_every_file_and_verifies(tmp_path):
    d = _dir(tmp_path)
    md = load_model_dir(d)
    assert set(md.manifest.files) == {"model.onnx", "vocab.json"}
    assert verify(md) == []


def test_tampered_or_missing_file_fails_loudly(tmp_path):
    d = _dir(tmp_path)
    (d / "model.onnx").write_bytes(b"tampered")
    with pytest.raises(ConfigError, match="model.onnx: sha256 mismatch"):
        load_model_dir(d)
    (d / "vocab.json").unlink()
    problems = verify(load_model_dir(d, check=False))
    assert "vocab.json: missing" in problems


def test_invalid_manifest_and_missing_dir(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_model_dir(tmp_path / "nope")
    d = tmp_path / "bad"
    d.mkdir()
    (d / "manifest.json").write_text(json.dumps({"name": "x", "kind": "weird", "labels": ["a"]}))
    with pytest.raises(ConfigError, match="invalid manifest"):
        load_model_dir(d)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="neither manifest.json"):
        load_model_dir(empty)


def test_hf_onnx_export_is_read_from_config_json(tmp_path):
    d = tmp_path / "hf"
    d.mkdir()
    (d / "model.onnx").write_bytes(b"x")
    (d / "tokenizer.json").write_text("{}")
    (d / "config.json").write_text(json.dumps({
        "model_type": "roberta", "max_position_embeddings": 514, "problem_type": "multi_label_classification",
        "id2label": {"1": "severe_toxicity", "0": "toxicity"}}))
    md = load_model_dir(d)
    assert md.derived
    m = md.manifest
    assert m.labels == ["toxicity", "severe_toxicity"]
    assert m.activation == "sigmoid" and m.kind == "transformer" and m.max_length == 512


def test_embedded_models_verify():
    from detectors.toxicity import models_root

    for name in ("toxic-bilstm", "profanity-check"):
        md = load_model_dir(models_root() / name)
        assert md.manifest.licence == "MIT"
        assert (md.path / (md.manifest.licence_file or "")).is_file()
