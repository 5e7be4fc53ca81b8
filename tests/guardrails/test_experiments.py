"""Experiments, pure: keyed-hash assignment (deterministic, sticky, weighted), access-aware skipping,
windows, and the load-time checks (weights, upstreams, variant models, overlaps)."""

from __future__ import annotations

from collections import Counter

import pytest

from guardrails.errors import AccessDenied, PolicyError
from guardrails.experiments import Assignment, Refusal, bucket, choose_variant, globs_overlap, pick
from guardrails.callplan import plan_call
from guardrails.policy import parse_policy
from guardrails.types import Principal

BASE = """
policy: {{id: e}}
upstreams:
  - {{name: a, url: "http://127.0.0.1:1/v1", licence: MIT}}
  - {{name: b, url: "http://127.0.0.1:2/v1", models: ["gpt-*", "llama-*"], licence: Apache-2.0}}
experiments:
{experiments}
access:
  roles:
    local: {{}}
    noB: {{upstreams: {{a: ["*"]}}}}
    mit: {{licences: [MIT]}}
    none: {{licences: [GPL-3.0-only]}}
"""

AB = """  - name: ab
    models: ["gpt-*"]
    sticky: {sticky}
    start: 2026-12-01
    end: 2027-01-01T00:00:00Z
    variants:
      - {{name: control, upstream: a, weight: 3}}
      - {{name: llama, upstream: b, model: llama-8b, weight: 1}}
"""
NOW = 1_798_588_800.0  # 2026-12-30


def policy(sticky: str = "principal", experiments: str | None = None):
    return parse_policy(BASE.format(experiments=experiments or AB.format(sticky=sticky)), source="e.yaml")


def test_bucket_is_a_deterministic_keyed_hash() -> None:
    exp = policy().experiments[0]
    assert bucket(exp, "key:abc") == bucket(exp, "key:abc")
    assert 0 <= bucket(exp, "key:abc") < 1
    salted = exp.model_copy(update={"salt": "other"})
    assert bucket(salted, "key:abc") != bucket(exp, "key:abc")


def test_pick_maps_the_point_onto_cumulative_weights() -> None:
    vs = policy().experiments[0].variants
    assert pick(vs, 0.0).name == "control" and pick(vs, 0.7499).name == "control"
    assert pick(vs, 0.75).name == "llama" and pick(vs, 0.9999).name == "llama"


def test_sticky_principal_follows_weights_and_sticky_request_varies() -> None:
    p = policy()
    got = Counter()
    for i in range(20_000):
        a = choose_variant(p, f"key:{i}", "gpt-4o", f"req-{i}", NOW)
        assert isinstance(a, Assignment)
        assert choose_variant(p, f"key:{i}", "gpt-4o", "another-request", NOW) == a  # sticky
        got[a.variant] += 1
    assert abs(got["llama"] / 20_000 - 0.25) < 0.015
    llama = next(a for i in range(100) if (a := choose_variant(p, f"key:{i}", "gpt-4o", "r", NOW)).variant == "llama")
    assert (llama.upstream, llama.model) == ("b", "llama-8b")
    per_request = policy("request")
    seen = {choose_variant(per_request, "key:same", "gpt-4o", f"req-{i}", NOW).variant for i in range(50)}
    assert seen == {"control", "llama"}


def test_window_and_model_match() -> None:
    p = policy()
    assert choose_variant(p, "k", "gpt-4o", "r", NOW) is not None
    assert choose_variant(p, "k", "claude", "r", NOW) is None
    assert choose_variant(p, "k", None, "r", NOW) is None
    assert choose_variant(p, "k", "gpt-4o", "r", 1_796_083_200.0 - 1) is None  # before 2026-12-01
    assert choose_variant(p, "k", "gpt-4o", "r", 1_798_761_600.0) is None  # 2027-01-01: end is exclusive


def test_forbidden_variants_are_skipped_and_none_left_is_refused() -> None:
    p = policy()
    for i in range(200):
        a = choose_variant(p, f"key:{i}", "gpt-4o", "r", NOW, lambda up, m: ("x", "no") if up == "b" else None)
        assert isinstance(a, Assignment) and a.variant == "control"
    r = choose_variant(p, "k", "gpt-4o", "r", NOW, lambda up, m: ("licence_not_allowed", "no"))
    assert isinstance(r, Refusal) and r.code == "licence_not_allowed"
    r = choose_variant(p, "k", "gpt-4o", "r", NOW, lambda up, m: ("upstream_not_allowed", "no"))
    assert isinstance(r, Refusal) and r.code == "experiment_no_variant"


def test_plan_call_uses_the_roles_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    p = policy()
    for i in range(100):
        assert plan_call(p, Principal(f"k{i}", "noB"), "gpt-4o", "a", "r", NOW).variant == "control"
        plan = plan_call(p, Principal(f"k{i}", "mit"), "gpt-4o", "a", "r", NOW)
        assert (plan.variant, plan.licence) == ("control", "MIT")
    with pytest.raises(AccessDenied) as info:
        plan_call(p, Principal("k", "none"), "gpt-4o", "a", "r", NOW)
    assert info.value.status == 403 and info.value.code == "licence_not_allowed"
    with pytest.raises(AccessDenied) as info:
        plan_call(p, Principal("k", "mit"), "llama-8b", "b", "r", NOW)  # no experiment: the model's own licence
    assert info.value.code == "licence_not_allowed"
    plain = plan_call(p, Principal("k", "local"), "other", "a", "r", NOW)
    assert (plain.experiment, plain.upstream, plain.licence) == (None, "a", "MIT")


@pytest.mark.parametrize(("a", "b", "overlap"), [
    ("gpt-*", "*-mini", True), ("gpt-4o", "gpt-4o-mini", False), ("llama-*", "gpt-*", False),
    ("a?c", "abc", True), ("*", "anything", True), ("gpt-4*", "gpt-4o", True), ("x*y", "x*z", False),
    ("[ab]x", "cx", True),  # classes count as any character: conservative
])
def test_globs_overlap(a: str, b: str, overlap: bool) -> None:
    assert globs_overlap(a, b) is overlap and globs_overlap(b, a) is overlap


def test_overlap_only_counts_while_both_run() -> None:
    two = AB.format(sticky="principal") + """  - name: later
    models: ["gpt-4o"]
    start: 2027-01-01
    variants: [{upstream: a, weight: 1}]
"""
    p = policy(experiments=two)
    assert [e.name for e in p.experiments] == ["ab", "later"]
    with pytest.raises(PolicyError, match="overlaps experiment 'ab'"):
        policy(experiments=two.replace("start: 2027-01-01", "start: 2026-12-31"))


@pytest.mark.parametrize(("variants", "field", "words"), [
    ("[{upstream: a, weight: 0}]", "experiments[0].variants", "positive"),
    ("[{upstream: a, weight: -1}]", "experiments[0].variants[0].weight", "greater than or equal to 0"),
    ("[{upstream: zz}]", "experiments[0].variants[0].upstream", "unknown upstream 'zz'"),
    ("[{upstream: b, model: mistral-7b}]", "experiments[0].variants[0].model", "does not serve model 'mistral-7b'"),
    ("[{upstream: a}, {upstream: a}]", "experiments[0].variants[1].name", "duplicate variant 'a'"),
])
def test_bad_variants_fail_at_load_with_field(variants: str, field: str, words: str) -> None:
    text = f"  - name: x\n    models: [m]\n    variants: {variants}\n"
    with pytest.raises(PolicyError) as info:
        policy(experiments=text)
    assert f"field '{field}'" in str(info.value) and words in str(info.value) and "e.yaml:" in str(info.value)


def test_end_before_start_fails() -> None:
    with pytest.raises(PolicyError, match="end must be after start"):
        policy(experiments="  - {name: x, models: [m], start: 2027-01-02, end: 2027-01-01, variants: [{upstream: a}]}\n")
