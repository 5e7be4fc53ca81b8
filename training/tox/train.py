"""Fine-tune MiniLM with one multi-label head (toxicity labels + injection labels), calibrate, pick thresholds.

Validation is a split of the training data (training/tox/data.split), never an evaluation suite: it drives
the best-epoch choice, the per-label Platt calibration and the thresholds.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from training.tox import data
from training.tox.model import MultiLabelMiniLM, build, minilm_dir

INJECTION = ("prompt_injection", "jailbreak")
WEIGHTS = {"jailbreak": 4, "deepset": 4, "pyrit": 3, "contrast": 5}  # oversampling of small sources


@dataclass
class TrainConfig:
    data_root: Path
    out: Path
    encoder_dir: Path | None = None
    device: str = "auto"
    epochs: float = 1.5
    batch: int = 32
    max_len: int = 128
    lr: float = 5e-5
    head_lr: float = 1e-3
    limit: int | None = None
    layers: int | None = None
    contrast: bool = True
    seed: int = 0
    max_minutes: float = 110.0
    max_fpr_injection: float = 0.01
    log: Callable[[str], None] = print
    history: list[dict[str, Any]] = field(default_factory=list)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def tokenizer(encoder_dir: Path, max_len: int) -> Any:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(encoder_dir / "tokenizer.json"))
    tok.enable_truncation(max_len)
    tok.no_padding()
    return tok


def batches(rows: list[data.Row], tok: Any, size: int) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    enc = tok.encode_batch([r.text for r in rows])
    out = []
    for i in range(0, len(rows), size):
        part = enc[i:i + size]
        t = max(len(e.ids) for e in part)
        ids = torch.zeros(len(part), t, dtype=torch.long)
        am = torch.zeros(len(part), t, dtype=torch.long)
        for j, e in enumerate(part):
            ids[j, :len(e.ids)] = torch.tensor(e.ids)
            am[j, :len(e.ids)] = 1
        y = torch.tensor([r.labels for r in rows[i:i + size]], dtype=torch.float32)
        out.append((ids, am, y))
    return out


def _length_sorted(rows: list[data.Row], size: int, rng: random.Random) -> list[data.Row]:
    """Shuffle, then sort within chunks of 50 batches by length so padding stays small."""
    rows = rows[:]
    rng.shuffle(rows)
    chunk = size * 50
    out: list[data.Row] = []
    for i in range(0, len(rows), chunk):
        out.extend(sorted(rows[i:i + chunk], key=lambda r: len(r.text)))
    groups = [out[i:i + size] for i in range(0, len(out), size)]
    rng.shuffle(groups)
    return [r for g in groups for r in g]


def masked_bce(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    mask = ~torch.isnan(y)
    target = torch.nan_to_num(y, nan=0.0)
    loss = torch.nn.functional.binary_cross_entropy_with_logits(logits.float(), target, reduction="none")
    return (loss * mask).sum() / mask.sum().clamp(min=1)


@torch.no_grad()
def predict_logits(model: MultiLabelMiniLM, rows: list[data.Row], tok: Any, device: torch.device,
                   batch: int = 128) -> np.ndarray:
    model.eval()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i].text))
    srows = [rows[i] for i in order]
    outs = []
    for ids, am, _y in batches(srows, tok, batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outs.append(model(ids.to(device), am.to(device)).float().cpu().numpy())
    res = np.zeros((len(rows), len(data.LABELS)), dtype=np.float32)
    res[order] = np.concatenate(outs) if outs else res
    return res


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    ranks = np.empty(len(order))
    ranks[order] = np.arange(1, len(order) + 1)
    return float((ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def platt(logit: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Fit sigmoid(a*logit + b) to y by maximum likelihood (a small LBFGS in torch)."""
    if len(np.unique(y)) < 2:
        return 1.0, 0.0
    x = torch.tensor(logit, dtype=torch.float64)
    t = torch.tensor(y, dtype=torch.float64)
    a = torch.ones(1, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([a, b], max_iter=100)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(a * x + b, t)
        loss.backward()
        return loss

    opt.step(closure)
    av, bv = float(a.item()), float(b.item())
    return (av, bv) if math.isfinite(av) and math.isfinite(bv) and av > 0 else (1.0, 0.0)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    best = (0.5, 0.0)
    for thr in np.linspace(0.05, 0.95, 91):
        pred = p >= thr
        tp = float((pred & (y == 1)).sum())
        f1 = 2 * tp / max(1.0, float(pred.sum()) + float((y == 1).sum()))
        if f1 > best[1] + 1e-9:
            best = (float(thr), f1)
    return best


def fpr_threshold(y: np.ndarray, p: np.ndarray, max_fpr: float) -> float:
    neg = np.sort(p[y == 0])
    if len(neg) == 0:
        return 0.5
    k = int(math.floor(len(neg) * (1 - max_fpr)))
    thr = float(neg[min(k, len(neg) - 1)]) + 1e-6
    return float(min(max(thr, 0.05), 0.99))


def calibrate(model: MultiLabelMiniLM, val: list[data.Row], logits: np.ndarray,
              max_fpr: float) -> dict[str, dict[str, float]]:
    y = np.array([r.labels for r in val], dtype=np.float64)
    stats: dict[str, dict[str, float]] = {}
    a_all, b_all = [], []
    for j, name in enumerate(data.LABELS):
        m = ~np.isnan(y[:, j])
        yy, ll = y[m, j], logits[m, j]
        a, b = platt(ll, yy)
        a_all.append(a)
        b_all.append(b)
        p = 1 / (1 + np.exp(-(a * ll + b)))
        if name in INJECTION:
            thr = fpr_threshold(yy, p, max_fpr)
            pred = p >= thr
            tp = float((pred & (yy == 1)).sum())
            f1 = 2 * tp / max(1.0, float(pred.sum()) + float((yy == 1).sum()))
        else:
            thr, f1 = best_f1_threshold(yy, p)
            pred = p >= thr
            tp = float((pred & (yy == 1)).sum())
        npos = float((yy == 1).sum())
        nneg = float((yy == 0).sum())
        stats[name] = {"val_rows": int(m.sum()), "val_pos": int(npos), "roc_auc": round(roc_auc(yy, ll), 4),
                       "threshold": round(thr, 4), "f1": round(f1, 4),
                       "recall": round(tp / npos, 4) if npos else float("nan"),
                       "fpr": round(float((pred & (yy == 0)).sum()) / nneg, 4) if nneg else float("nan"),
                       "platt_a": round(a, 5), "platt_b": round(b, 5)}
    model.cal_a.copy_(torch.tensor(a_all, dtype=torch.float32))
    model.cal_b.copy_(torch.tensor(b_all, dtype=torch.float32))
    return stats


def mean_auc(val: list[data.Row], logits: np.ndarray) -> float:
    y = np.array([r.labels for r in val], dtype=np.float64)
    aucs = []
    for j in range(len(data.LABELS)):
        m = ~np.isnan(y[:, j])
        a = roc_auc(y[m, j], logits[m, j])
        if not math.isnan(a):
            aucs.append(a)
    return float(np.mean(aucs)) if aucs else 0.0


def train(cfg: TrainConfig) -> dict[str, Any]:
    t0 = time.time()
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    device = pick_device(cfg.device)
    enc_dir = cfg.encoder_dir or minilm_dir()
    contrast = Path(__file__).with_name("contrast.tsv") if cfg.contrast else None
    rows = data.load(cfg.data_root, limit=cfg.limit, contrast_file=contrast, seed=cfg.seed)
    tr, val = data.split(rows, seed=cfg.seed)
    weighted = [r for r in tr for _ in range(WEIGHTS.get(r.source, 1))]
    cfg.log(f"rows {len(rows)}: train {len(tr)} ({len(weighted)} with oversampling), validation {len(val)}; "
            f"device {device}")
    tok = tokenizer(enc_dir, cfg.max_len)
    model = build(len(data.LABELS), enc_dir, cfg.layers).to(device)
    head = [p for n, p in model.named_parameters() if n.startswith("head.")]
    body = [p for n, p in model.named_parameters() if not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": body, "lr": cfg.lr}, {"params": head, "lr": cfg.head_lr}],
                            weight_decay=0.01)
    steps_per_epoch = math.ceil(len(weighted) / cfg.batch)
    total = max(1, int(steps_per_epoch * cfg.epochs))
    warm = max(1, total // 16)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * max(0.0, (total - s) / max(1, total - warm)))
    rng = random.Random(cfg.seed)
    step, best_auc, best_state, epoch = 0, -1.0, None, 0
    deadline = t0 + cfg.max_minutes * 60
    while step < total and time.time() < deadline:
        epoch += 1
        model.train()
        running = 0.0
        for ids, am, y in batches(_length_sorted(weighted, cfg.batch, rng), tok, cfg.batch):
            if step >= total or time.time() > deadline:
                break
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(ids.to(device), am.to(device))
            loss = masked_bce(logits, y.to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            step += 1
            running += float(loss.item())
            if step % 200 == 0:
                cfg.log(f"epoch {epoch} step {step}/{total} loss {running / 200:.4f} ({time.time() - t0:.0f}s)")
                running = 0.0
        vl = predict_logits(model, val, tok, device)
        auc = mean_auc(val, vl)
        cfg.history.append({"epoch": epoch, "step": step, "val_mean_auc": round(auc, 4),
                            "seconds": round(time.time() - t0, 1)})
        cfg.log(f"epoch {epoch}: validation mean ROC-AUC {auc:.4f}")
        if auc > best_auc:
            best_auc = auc
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    vl = predict_logits(model, val, tok, device)
    model = model.cpu().float()
    stats = calibrate(model, val, vl, cfg.max_fpr_injection)
    cfg.out.mkdir(parents=True, exist_ok=True)
    from safetensors.torch import save_file

    save_file({k: v.detach().half().contiguous() if v.dtype.is_floating_point else v.contiguous()
               for k, v in model.state_dict().items()}, str(cfg.out / "weights.safetensors"))
    report = {
        "labels": list(data.LABELS), "layers": model_layers(model), "max_len": cfg.max_len,
        "config": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(cfg).items()
                   if k not in ("log", "history")},
        "device": str(device), "torch": torch.__version__, "seconds": round(time.time() - t0, 1),
        "steps": step, "history": cfg.history, "validation": stats,
        "rows": {"train": len(tr), "validation": len(val), "sources": data.summary(rows)},
        "licences": data.SOURCES,
    }
    (cfg.out / "train_report.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    cfg.log(f"done in {report['seconds']}s; best validation mean ROC-AUC {best_auc:.4f}")
    return report


def model_layers(model: MultiLabelMiniLM) -> int:
    return len(model.layers)
