"""ONNX Runtime sessions: CUDA (fp16 variant) when present, CPU otherwise; the device is read back.

`onnxruntime` (CPU) and `onnxruntime-gpu` install the same `onnxruntime` module and overwrite each
other. For a GPU host install into a fresh environment: `pip uninstall -y onnxruntime && pip install
'trustwall[gpu]'` (the gpu extra pulls onnxruntime-gpu, whose CPU provider serves as the fallback).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from guardrails.errors import ConfigError

log = logging.getLogger("trustwall.inference")

Device = Literal["auto", "cpu", "cuda"]


def cuda_available() -> bool:
    """True when the installed onnxruntime has the CUDA provider (does not prove a GPU works)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@dataclass
class LoadedSession:
    session: Any  # onnxruntime.InferenceSession
    device: str  # "cuda" or "cpu", read back from the session's providers
    provider: str
    variant: str  # "fp32" | "fp16" | "int8"
    path: Path

    def info(self) -> dict[str, Any]:
        return {"device": self.device, "provider": self.provider, "variant": self.variant, "file": self.path.name}


def _cpu_threads() -> int:
    env = os.environ.get("TRUSTWALL_ORT_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(os.cpu_count() or 1, 8))


def _spin() -> bool:
    """Whether ORT's intra-op threads may spin between runs (TRUSTWALL_ORT_SPIN=1; default off)."""
    return os.environ.get("TRUSTWALL_ORT_SPIN", "0").strip().lower() in ("1", "true", "yes", "on")


def open_session(fp32: Path | None, fp16: Path | None = None, *, device: Device = "auto",
                 threads: int | None = None, int8: Path | None = None) -> LoadedSession:
    """Open one InferenceSession. CUDA (with the fp16 variant when there is one) first unless
    `device="cpu"`; `device="cuda"` fails when CUDA is not usable instead of falling back. On CPU the
    `int8` file (dynamic quantisation) is used when given. A model may ship without fp32 (the embedded
    transformer ships int8 only, for size): then CUDA takes fp16, else int8, and the CPU takes int8."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = threads or _cpu_threads()
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    if not _spin():
        # Idle ORT workers otherwise busy-wait after every run, on cores the spaCy pass and the event
        # loop need; on a small CPU that costs the other detectors more than it saves this one.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    want_cuda = device in ("auto", "cuda") and cuda_available()
    if device == "cuda" and not want_cuda:
        raise ConfigError("device=cuda but onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)")
    present = {k: p for k, p in (("fp16", fp16), ("fp32", fp32), ("int8", int8)) if p is not None and p.is_file()}
    order = ("fp16", "fp32", "int8") if want_cuda else ("int8", "fp32")
    pick = next((k for k in order if k in present), None)
    if pick is None:
        have = ", ".join(str(p) for p in (fp32, fp16, int8) if p is not None) or "none"
        raise ConfigError(f"no ONNX file this device can run (CUDA {'yes' if want_cuda else 'no'}; variants: {have})")
    path, variant = present[pick], pick
    providers: list[Any] = ([("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"] if want_cuda
                            else ["CPUExecutionProvider"])
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    except Exception as exc:
        if want_cuda and device == "auto":
            log.warning("CUDA session failed (%s); falling back to CPU", exc)
            return open_session(fp32, None, device="cpu", threads=threads, int8=int8)
        raise ConfigError(f"cannot open ONNX model {path}: {exc}") from None
    used = sess.get_providers()[0]
    dev = "cuda" if used == "CUDAExecutionProvider" else "cpu"
    if device == "cuda" and dev != "cuda":
        raise ConfigError(f"device=cuda requested but the session runs on {used}")
    if dev == "cpu" and variant == "fp16":  # CUDA was listed but not taken: reopen on CPU
        return open_session(fp32, None, device="cpu", threads=threads, int8=int8)
    log.info("onnx model %s on %s (%s)", path.name, dev, variant)
    return LoadedSession(sess, dev, used, variant, path)
