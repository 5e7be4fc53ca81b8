"""A model directory -> a Triton Inference Server model repository (`trustwall models export-triton`).

    REPO/
      minilm-tw/
        config.pbtxt          # backend onnxruntime, max_batch_size, dynamic_batching, instance_group
        1/model.onnx          # the model directory's ONNX file (fp16 with --fp16, else fp32, else int8)

Input and output names, types and dims are read from the ONNX graph itself and checked against the
manifest (names the manifest lists must exist; the output must carry one score per label), so the
config matches what the server will load. With `max_batch_size > 0` Triton's dims leave out the batch
dimension: token inputs are `[-1]` (any length; the proxy pads per batch), the output `[labels]`.

Triton's dynamic batcher only merges requests whose non-batch dims agree, so with variable-length
token inputs it batches requests padded to the same length; the proxy's own MicroBatcher already sends
many texts per request, so the server-side batcher mostly merges requests from different replicas.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from guardrails.errors import ConfigError
from guardrails.inference.manifest import ModelDir, load_model_dir

ORT_TO_KSERVE = {"tensor(int64)": "INT64", "tensor(int32)": "INT32", "tensor(float)": "FP32",
                 "tensor(float16)": "FP16", "tensor(double)": "FP64", "tensor(string)": "BYTES",
                 "tensor(bool)": "BOOL"}


@dataclass(frozen=True)
class Tensor:
    name: str
    datatype: str  # KServe v2 name: INT64, FP32, ...
    shape: tuple[int, ...]  # with the batch dim; -1 for symbolic dims

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    onnx: Path
    variant: str


def pick_variant(model: ModelDir, fp16: bool = False) -> tuple[Path, str]:
    order = ("fp16",) if fp16 else ("fp32", "int8")
    for k in order:
        p = model.variant(k)
        if p is not None and p.is_file():
            return p, k
    have = ", ".join(sorted(model.manifest.variants)) or "none"
    raise ConfigError(f"{model.path}: no {'/'.join(order)} variant to export (the manifest has: {have})"
                      + ("; build one with --fp16 at conversion" if fp16 else ""))


def signature(model: ModelDir | str | Path, *, fp16: bool = False) -> Signature:
    """Read the graph's inputs and outputs (names, KServe types, dims) and check them against the manifest."""
    import onnxruntime as ort

    md = model if isinstance(model, ModelDir) else load_model_dir(model)
    m = md.manifest
    if m.kind == "text":
        raise ConfigError(f"{md.path}: kind text (raw strings in the graph) is not served remotely")
    path, variant = pick_variant(md, fp16)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])

    def conv(args: Any) -> tuple[Tensor, ...]:
        out = []
        for a in args:
            dt = ORT_TO_KSERVE.get(a.type)
            if dt is None:
                raise ConfigError(f"{path.name}: tensor {a.name!r} has type {a.type}, not servable")
            out.append(Tensor(a.name, dt, tuple(d if isinstance(d, int) and d > 0 else -1 for d in a.shape)))
        return tuple(out)

    inputs, outputs = conv(sess.get_inputs()), conv(sess.get_outputs())
    names = [t.name for t in inputs]
    missing = [n for n in m.input_names if n not in names]
    if missing:
        raise ConfigError(f"{md.path}: manifest inputs {missing} are not in the graph (it has {names})")
    out_name = m.output or outputs[0].name
    if out_name not in [t.name for t in outputs]:
        raise ConfigError(f"{md.path}: manifest output {out_name!r} is not in the graph")
    outputs = tuple(t for t in outputs if t.name == out_name)
    last = outputs[0].shape[-1]
    if m.output_index is None and last not in (-1, len(m.labels)):
        raise ConfigError(f"{md.path}: output {out_name!r} has {last} columns, the manifest {len(m.labels)} labels")
    return Signature(inputs, outputs, path, variant)


def _tensor_block(t: Tensor, batched: bool) -> str:
    dims = list(t.shape[1:] if batched else t.shape)
    return (f"  {{\n    name: \"{t.name}\"\n    data_type: TYPE_{'STRING' if t.datatype == 'BYTES' else t.datatype}\n"
            f"    dims: [ {', '.join(str(d) for d in dims)} ]\n  }}")


def triton_config(name: str, sig: Signature, *, labels: int, max_batch: int = 256,
                  preferred_batch: tuple[int, ...] = (32, 64), max_queue_delay_us: int = 2000,
                  instances: int = 1, kind: str = "gpu") -> str:
    """config.pbtxt text (Triton's ModelConfig in protobuf text format)."""
    if max_batch < 0 or any(p < 1 or (max_batch and p > max_batch) for p in preferred_batch):
        raise ConfigError("preferred batch sizes must be between 1 and --max-batch")
    if instances < 1:
        raise ConfigError("--instances must be at least 1")
    batched = max_batch > 0
    fixed = [t.name for t in (*sig.inputs, *sig.outputs) if batched and (not t.shape or t.shape[0] != -1)]
    if fixed:
        raise ConfigError(f"tensors {fixed} have a fixed first dimension: export with --max-batch 0")
    outs = []
    for t in sig.outputs:
        if batched and len(t.shape) == 2:
            t = Tensor(t.name, t.datatype, (t.shape[0], t.shape[1] if t.shape[1] > 0 else labels))
        outs.append(_tensor_block(t, batched))
    lines = [f"name: \"{name}\"", "backend: \"onnxruntime\"", f"max_batch_size: {max_batch}",
             "input [\n" + ",\n".join(_tensor_block(t, batched) for t in sig.inputs) + "\n]",
             "output [\n" + ",\n".join(outs) + "\n]"]
    if batched:
        pref = ", ".join(str(p) for p in preferred_batch)
        lines.append("dynamic_batching {\n" + (f"  preferred_batch_size: [ {pref} ]\n" if pref else "")
                     + f"  max_queue_delay_microseconds: {max_queue_delay_us}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_{kind.upper()}\n  }}\n]")
    lines.append("version_policy: { latest: { num_versions: 1 } }")
    return "\n".join(lines) + "\n"


def export_triton(model: ModelDir | str | Path, out: Path, *, name: str | None = None, version: int = 1,
                  max_batch: int = 256, preferred_batch: tuple[int, ...] = (32, 64), max_queue_delay_us: int = 2000,
                  instances: int = 1, kind: str = "gpu", fp16: bool = False) -> Path:
    """Write REPO/NAME/config.pbtxt and REPO/NAME/VERSION/model.onnx; returns the model folder."""
    md = model if isinstance(model, ModelDir) else load_model_dir(model)
    sig = signature(md, fp16=fp16)
    name = name or md.manifest.name
    if kind not in ("gpu", "cpu"):
        raise ConfigError("--kind must be gpu or cpu")
    text = triton_config(name, sig, labels=len(md.manifest.labels), max_batch=max_batch,
                         preferred_batch=preferred_batch, max_queue_delay_us=max_queue_delay_us,
                         instances=instances, kind=kind)
    folder = out / name
    (folder / str(version)).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sig.onnx, folder / str(version) / "model.onnx")
    (folder / "config.pbtxt").write_text(text, encoding="utf-8")
    return folder
