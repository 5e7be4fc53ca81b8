"""The bias detector's compact classifier: TF-IDF + logistic regression exported to ONNX.

It reads one sentence with its group terms replaced by MASK (so it learns the claim, not the group) and
returns P(stereotyping claim). The embedded model lives in detectors/models/bias/ (see its MODEL_CARD.md);
detectors/bias/train.py rebuilds it. onnxruntime and numpy load when a Classifier is built, not at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path


MASK = "grp"  # what group terms become before the classifier sees a sentence


def model_dir() -> Path:
    """The embedded classifier's directory, detectors/models/bias (resolved through the `detectors` package)."""
    return Path(str(files("detectors").joinpath("models", "bias")))


class Classifier:
    """TF-IDF + logistic regression exported to ONNX: P(stereotyping claim | masked sentence)."""

    def __init__(self, path: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        self.path = path
        self.session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self._input = self.session.get_inputs()[0].name
        outs = [o.name for o in self.session.get_outputs()]
        self._prob = "probabilities" if "probabilities" in outs else outs[-1]

    def predict(self, sentences: Sequence[str]) -> list[float]:
        import numpy as np

        if not sentences:
            return []
        x = np.array([[s] for s in sentences], dtype=object)
        probs = self.session.run([self._prob], {self._input: x})[0]
        if isinstance(probs, list):  # zipmap output: list of {label: p}
            return [float(p.get(1, p.get("1", 0.0))) for p in probs]
        return [float(p[1]) for p in probs]
