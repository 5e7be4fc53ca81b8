"""build_runtime: detectors built once from the registry, load failures are clear, settings honoured."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from detectors.registry import builtin_registry
from guardrails.detector import DetectorType, NoOptions, Registry
from guardrails.errors import DetectorError, PolicyError
from guardrails.policy import parse_policy
from guardrails.runtime import build_runtime
from guardrails.settings import Settings, default_policy_path
from guardrails.types import Action, CallContext

POLICY = """
policy: {id: rt}
detectors:
  - name: kw
    type: keywords
    options: {terms: {secret: [swordfish]}}
    rules: {secret: {action: block}}
  - name: unused
    type: keywords
    enabled: false
"""


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data")


async def test_build_runtime_builds_enabled_detectors_once(tmp_path: Path) -> None:
    built = []

    def factory(spec, options, build):
        built.append(spec.name)
        return builtin_registry().get("keywords").factory(spec, options, build)

    reg = Registry({"keywords": DetectorType("keywords", builtin_registry().get("keywords").options_model, factory)})
    rt = build_runtime(settings(tmp_path), policy=parse_policy(POLICY, registry=reg), registry=reg, audit=False)
    assert built == ["kw"]
    d = await rt.pipeline.check_input(["the swordfish flies"], CallContext())
    assert d.action is Action.BLOCK
    assert rt.info()["policy"] == "rt"
    await rt.aclose()


def test_detector_load_failure_is_a_detector_error(tmp_path: Path) -> None:
    def factory(spec, options, build):
        raise OSError("model file missing")

    reg = Registry({"broken": DetectorType("broken", NoOptions, factory)})
    pol = parse_policy("policy: {id: x}\ndetectors:\n  - {name: b, type: broken}\n", registry=reg)
    with pytest.raises(DetectorError, match="detector 'b': failed to load: OSError: model file missing"):
        build_runtime(settings(tmp_path), policy=pol, registry=reg, audit=False)


def test_policy_from_settings_and_unknown_type(tmp_path: Path) -> None:
    p = tmp_path / "p.yaml"
    p.write_text("policy: {id: x}\ndetectors:\n  - {name: b, type: nope}\n")
    with pytest.raises(PolicyError, match="unknown detector type 'nope'"):
        build_runtime(Settings(data_dir=tmp_path, policy=p), audit=False)


def test_secrets_generated_once_private_and_stable(tmp_path: Path) -> None:
    s = settings(tmp_path)
    k1 = s.hash_key_bytes()
    assert len(k1) == 64 and s.hash_key_bytes() == k1
    mode = stat.S_IMODE(os.stat(tmp_path / "data" / "hash.key").st_mode)
    assert mode == 0o600
    assert s.audit_key_bytes() != k1


def test_settings_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTWALL_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("TRUSTWALL_HASH_KEY", "given-key")
    s = Settings()
    assert s.data_dir == tmp_path / "env"
    assert s.hash_key_bytes() == b"given-key"
    assert not (tmp_path / "env" / "hash.key").exists()
    assert "given-key" not in repr(s)


def test_embedded_default_policy_ships_in_the_package() -> None:
    path = default_policy_path()
    assert path.name == "default.yaml" and path.is_file()


def test_importing_the_packages_loads_no_model() -> None:
    import subprocess
    import sys

    code = ("import sys, guardrails, guardrails.cli, guardrails.pipeline, detectors.registry;"
            "r = detectors.registry.builtin_registry();"
            "heavy = [m for m in ('spacy', 'presidio_analyzer', 'onnxruntime', 'torch', 'transformers', 'datasketch') if m in sys.modules];"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


def test_warm_up_runs_each_detector_once_even_inside_a_running_loop(tmp_path: Path) -> None:
    import asyncio

    calls = []

    class Probe:
        name = "kw"

        async def detect(self, texts, ctx, stage="input"):
            calls.append((list(texts), ctx.route))
            return [[] for _ in texts]

    reg = Registry({"keywords": DetectorType("keywords", builtin_registry().get("keywords").options_model,
                                             lambda spec, options, build: Probe())})
    pol = parse_policy("policy: {id: w}\ndetectors:\n  - {name: kw, type: keywords}\n", registry=reg)

    async def inside_loop():
        return build_runtime(settings(tmp_path), policy=pol, registry=reg, audit=False)

    asyncio.run(inside_loop())
    assert len(calls) == 1 and calls[0][1] == "warmup"
    build_runtime(settings(tmp_path), policy=pol, registry=reg, audit=False, warmup=False)
    assert len(calls) == 1


def test_limit_blas_threads_caps_numpy_blas_process_wide():
    import numpy  # noqa: F401 - loads the BLAS library threadpoolctl inspects
    from threadpoolctl import threadpool_info, threadpool_limits

    from guardrails.runtime import limit_blas_threads

    with threadpool_limits(limits=None):  # restores the original limits when the test ends
        before = limit_blas_threads(1)
        assert before is not None and before >= 1
        blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
        assert blas and all(p["num_threads"] == 1 for p in blas)
