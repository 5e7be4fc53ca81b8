"""Policy files: the shipped ones load; each broken one fails with file, field and line, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from detectors.registry import builtin_registry
from guardrails.errors import PolicyError
from guardrails.policy import load_policy, parse_policy

ROOT = Path(__file__).resolve().parents[2]
BROKEN = Path(__file__).parent / "broken"

# file -> (field path expected in the message or None, line expected or None, words expected)
CASES: dict[str, tuple[str | None, int | None, str]] = {
    "bad_yaml.yaml": (None, 6, "invalid YAML"),
    "unknown_top_field.yaml": ("detector", 2, "unknown field"),
    "unknown_detector_field.yaml": ("detectors[0].treshold", 5, "unknown field"),
    "unknown_type.yaml": ("detectors[0].type", 4, "unknown detector type 'keywordz'"),
    "bad_threshold.yaml": ("detectors[0].rules.secret.threshold", 6, "less than or equal to 1"),
    "duplicate_names.yaml": ("detectors[1].name", 5, "duplicate detector name 'kw'"),
    "duplicate_keys.yaml": (None, 7, "duplicate key 'secret'"),
    "bad_action.yaml": ("detectors[0].rules.secret.action", 6, "obliterate"),
    "route_unknown_upstream.yaml": ("routes[0].upstream", 8, "unknown upstream 'inhouse'"),
    "unknown_role.yaml": ("access.anonymous_role", 3, "unknown role 'guest'"),
    "negative_timeout.yaml": ("detectors[0].timeout_ms", 5, "greater than 0"),
    "bad_option_regex.yaml": ("detectors[0].options.patterns", 6, "bad regex"),
    "bad_stage.yaml": ("detectors[0].stages[1]", 5, "during"),
    "not_a_mapping.yaml": (None, 1, "must be a YAML mapping"),
    "upstream_without_url.yaml": ("upstreams[0].url", 3, "needs a url"),
    "responses_api_wrong_kind.yaml": ("upstreams[0].api", 6, "api: responses is for kind openai"),  # issue 17
    "unknown_option.yaml": ("detectors[0].options.words", 6, "unknown field"),
    # issue 18: experiments and licences
    "experiment_zero_weights.yaml": ("experiments[0].variants", 8, "must sum to a positive number"),
    "experiment_unknown_upstream.yaml": ("experiments[0].variants[1].upstream", 9, "unknown upstream 'nowhere'"),
    "experiment_overlap.yaml": ("experiments[1].models[1]", 10, "overlaps experiment 'first'"),
    "licence_unknown.yaml": ("upstreams[0].model_licences.mystery-*", 10, "unknown licence 'made-up-licence'"),
    "licence_required.yaml": ("upstreams[1].licence", 5, "declares none for 'qwen-*'"),
    "licence_role_unknown.yaml": ("access.roles.local.licences[1]", 6, "unknown licence 'GPL-9.0'"),
}


def test_every_broken_file_has_a_case() -> None:
    assert sorted(p.name for p in BROKEN.glob("*.yaml")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_policy_error_names_file_field_line(name: str) -> None:
    field, line, words = CASES[name]
    with pytest.raises(PolicyError) as info:
        load_policy(BROKEN / name, builtin_registry())
    msg = str(info.value)
    assert name in msg
    assert words in msg
    if field is not None:
        assert f"field '{field}'" in msg
    if line is not None:
        assert f"{name}:{line}" in msg, msg


@pytest.mark.parametrize("name", sorted(CASES))
def test_policy_check_cli_fails_cleanly(name: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "guardrails.cli", "policy", "check", str(BROKEN / name)],
                          capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TRUSTWALL_DATA_DIR": "/tmp/tw-cli-test"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert name in proc.stderr
    assert proc.stdout == ""


def test_missing_file_is_a_policy_error() -> None:
    with pytest.raises(PolicyError, match="file not found"):
        load_policy(BROKEN / "nope.yaml")


def test_structure_of_shipped_policies_is_valid() -> None:
    for path in [ROOT / "rules" / "default.yaml", *sorted((ROOT / "rules" / "examples").glob("*.yaml"))]:
        policy = load_policy(path)  # structure only: detector types are checked in the next test
        assert policy.id
        assert policy.digest and len(policy.digest) == 64


def test_shipped_policies_validate_against_the_builtin_registry() -> None:
    reg = builtin_registry()
    for path in [ROOT / "rules" / "default.yaml", *sorted((ROOT / "rules" / "examples").glob("*.yaml"))]:
        load_policy(path, reg)


def test_default_policy_actions_are_the_documented_ones() -> None:
    policy = load_policy(ROOT / "rules" / "default.yaml")
    by_name = {d.name: d for d in policy.detectors}
    assert by_name["pii"].rule_for("input", "PERSON").action == "pseudonymise"
    assert by_name["secrets"].rule_for("input", "AWS_ACCESS_KEY").action == "block"
    assert by_name["toxicity"].rule_for("output", "toxicity").action == "block"
    inj = by_name["injection"]
    assert inj.stages == ["input"] and inj.on_error == "block"
    assert inj.rule_for("input", "prompt_injection").action == "block"
    assert inj.rule_for("input", "jailbreak").action == "block"
    assert by_name["bias"].rule_for("output", "bias_gender").action == "flag"
    assert by_name["copyright"].rule_for("output", "copyright").action == "block"


def test_digest_changes_with_content() -> None:
    a = parse_policy("policy: {id: a}\n")
    b = parse_policy("policy: {id: a}\nmessages: {block_input: nope}\n")
    assert a.digest != b.digest
    assert a.digest == parse_policy("policy:\n  id: a\n").digest
