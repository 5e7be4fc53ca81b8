"""guardrails.access: pure rules."""

from __future__ import annotations

import pytest

from guardrails import access
from guardrails.errors import AccessDenied
from guardrails.policy import Role, parse_policy
from guardrails.types import Action, Decision, Finding, Judgement, Principal

P = Principal("key:abc", "user")


def test_is_loopback():
    for h in ("127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"):
        assert access.is_loopback(h)
    for h in ("0.0.0.0", "::", "10.0.0.1", "192.168.1.5", "example.com", "", None):
        assert not access.is_loopback(h)


def test_first_run_rule():
    policy = parse_policy("policy: {id: t}")
    assert access.startup_error(policy, "127.0.0.1", False, False) is None
    assert "--allow-anonymous" in access.startup_error(policy, "0.0.0.0", False, False)
    assert access.startup_error(policy, "0.0.0.0", True, False) is None
    assert access.startup_error(policy, "0.0.0.0", False, True) is None
    fr = access.FirstRun("local", loopback=True)
    assert access.authenticate("sk-anything", None, False, fr) == Principal("anonymous", "local")
    with pytest.raises(AccessDenied) as ei:
        access.authenticate("sk-anything", None, True, fr)
    assert ei.value.status == 401 and ei.value.code == "invalid_api_key"
    with pytest.raises(AccessDenied) as ei:
        access.authenticate(None, None, True, fr)
    assert ei.value.code == "missing_api_key"
    assert access.authenticate("k", P, True, fr) is P
    with pytest.raises(AccessDenied):
        access.authenticate(None, None, False, access.FirstRun("local", loopback=False))
    with pytest.raises(AccessDenied):
        access.authenticate(None, None, False, access.FirstRun(None, loopback=True))


def test_models_and_sizes():
    role = Role(models=["gpt-4o*", "llama-3"], max_request_bytes=100)
    assert access.model_allowed(role, "gpt-4o-mini") and access.model_allowed(role, "llama-3")
    assert not access.model_allowed(role, "llama-3.1") and not access.model_allowed(role, "GPT-4o")
    with pytest.raises(AccessDenied) as ei:
        access.check_model(role, P, "claude")
    assert ei.value.status == 403
    access.check_size(role, 100)
    with pytest.raises(AccessDenied) as ei:
        access.check_size(role, 101)
    assert ei.value.status == 413
    assert access.visible_models(role, ["gpt-4o", "x", "llama-3", "gpt-4o"]) == ["gpt-4o", "llama-3"]


def _decision(*pairs: tuple[str, Action]) -> Decision:
    js = tuple(Judgement(Finding("d", c, 1.0, (0, 1)), a) for c, a in pairs)
    return Decision("input", max(a for _, a in pairs), js, ("x",))


def test_categories_per_upstream():
    role = Role(upstreams={"inhouse": ["*"], "cloud": ["DATE_TIME", "LOC*"]})
    dec = _decision(("PERSON", Action.ROUTE), ("EMAIL_ADDRESS", Action.REDACT), ("URL", Action.ALLOW),
                    ("LOCATION", Action.FLAG))
    assert access.passing_categories(dec) == ("LOCATION", "PERSON")
    access.check_categories(role, P, "inhouse", ["PERSON", "LOCATION"])
    access.check_categories(role, P, "cloud", ["LOCATION"])
    with pytest.raises(AccessDenied) as ei:
        access.check_categories(role, P, "cloud", ["PERSON", "LOCATION"])
    assert ei.value.code == "category_not_allowed" and "PERSON" in str(ei.value)
    with pytest.raises(AccessDenied) as ei:
        access.check_categories(role, P, "other", [])
    assert ei.value.code == "upstream_not_allowed"
    wildcard = Role()
    access.check_categories(wildcard, P, "anything", ["PERSON"])
    assert access.allowed_categories(Role(upstreams={"*": [], "a": ["X"]}), "a") == ["X"]


def test_unknown_role_and_restore():
    policy = parse_policy("policy: {id: t}\naccess: {roles: {r: {restore: [PERSON]}}, anonymous_role: r}")
    with pytest.raises(AccessDenied) as ei:
        access.role_of(policy, Principal("key:x", "gone"))
    assert ei.value.status == 403
    role = access.role_of(policy, Principal("key:x", "r"))
    assert access.restore_allowed(role, "PERSON") and not access.restore_allowed(role, "EMAIL_ADDRESS")
