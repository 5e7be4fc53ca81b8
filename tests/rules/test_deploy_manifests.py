"""The Kubernetes example of docs/DEPLOY.md stays true: its policy loads, its kustomizations name files
that exist, its manifests parse, and every TRUSTWALL_* variable it sets is a real setting."""

from __future__ import annotations

from pathlib import Path

import yaml

from detectors.registry import builtin_registry
from guardrails.policy import load_policy
from guardrails.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy"


def docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_policy_loads_with_remote_detectors():
    pol = load_policy(DEPLOY / "base" / "policy.yaml", builtin_registry())
    remote = [d for d in pol.detectors if d.options.get("backend") == "remote"]
    assert {d.type for d in remote} == {"injection", "toxicity"}
    assert all(d.options["remote"]["url"] == "grpc://triton:8001" for d in remote)


def test_kustomizations_name_existing_files_and_manifests_parse():
    for kust in DEPLOY.rglob("kustomization.yaml"):
        k = docs(kust)[0]
        for res in k.get("resources", []):
            assert (kust.parent / res).exists(), f"{kust}: {res}"
        for gen in k.get("configMapGenerator", []):
            for f in gen.get("files", []):
                assert (kust.parent / f).is_file()
    kinds = {d["kind"] for f in (DEPLOY / "base").glob("*.yaml") if f.name != "policy.yaml" for d in docs(f)}
    assert {"Deployment", "Service", "StatefulSet", "Kustomization", "PodDisruptionBudget"} <= kinds


def test_every_trustwall_variable_is_a_setting():
    known = {f"TRUSTWALL_{n.upper()}" for n in Settings.model_fields}
    seen = set()
    for f in (DEPLOY / "base").glob("*.yaml"):
        for d in docs(f):
            for lit in (g for gen in d.get("secretGenerator", []) for g in gen.get("literals", [])):
                seen.add(lit.split("=", 1)[0])
            spec = d.get("spec", {}).get("template", {}).get("spec", {})
            for c in spec.get("containers", []):
                seen.update(e["name"] for e in c.get("env", []))
    tw = {n for n in seen if n.startswith("TRUSTWALL_")}
    assert tw and tw <= known, tw - known
    assert "TRUSTWALL_MAX_INFLIGHT" in tw
