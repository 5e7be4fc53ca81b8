"""ONNX Runtime session options: thread spinning off unless asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardrails.inference.session import open_session

MODEL = Path(__file__).resolve().parents[2] / "detectors" / "models" / "profanity-check" / "model.onnx"


@pytest.mark.parametrize(("env", "expected"), [(None, "0"), ("0", "0"), ("1", None), ("true", None)])
def test_intra_op_spinning_is_off_unless_enabled(monkeypatch, env, expected):  # noqa: ANN001
    if env is None:
        monkeypatch.delenv("TRUSTWALL_ORT_SPIN", raising=False)
    else:
        monkeypatch.setenv("TRUSTWALL_ORT_SPIN", env)
    loaded = open_session(MODEL, device="cpu", threads=2)
    entries = loaded.session.get_session_options()
    value = entries.get_session_config_entry("session.intra_op.allow_spinning") if expected else None
    if expected is None:
        with pytest.raises(Exception):  # noqa: B017 - ORT raises when the entry was never set
            entries.get_session_config_entry("session.intra_op.allow_spinning")
    else:
        assert value == expected
    assert loaded.device == "cpu"
