"""Model licences, pure: short and long forms, per-model overrides, role allow-lists, the checks at load,
and `trustwall policy check`'s warning about undeclared licences."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from guardrails.errors import AccessDenied, PolicyError
from guardrails.licences import check_licence, describe_licence, licence_allowed, licence_of, licence_warnings
from guardrails.policy import parse_policy
from guardrails.types import Principal

ROOT = Path(__file__).resolve().parents[2]
TEXT = """
policy: {id: l}
licences:
  llama3.1-community: {name: Llama 3.1 Community License, terms_url: "https://example.org/llama", use: [commercial]}
upstreams:
  - name: a
    url: "http://127.0.0.1:1/v1"
    licence: {id: llama3.1-community, use: [research]}
    model_licences: {"qwen-*": Apache-2.0, "qwen-special": mit}
  - {name: bare, url: "http://127.0.0.1:2/v1"}
access:
  roles:
    local: {}
    any: {}
    permissive: {licences: [Apache-2.0, "MIT", "BSD-*"]}
    llama: {licences: [llama3.1-community]}
"""


def test_lookup_exact_model_then_glob_then_upstream() -> None:
    p = parse_policy(TEXT)
    a = p.upstream("a")
    assert licence_of(a, "qwen-special").id == "mit"
    assert licence_of(a, "qwen-7b").id == "Apache-2.0"
    assert licence_of(a, "llama-8b").id == "llama3.1-community"
    assert licence_of(p.upstream("bare"), "x") is None
    assert describe_licence(p, licence_of(a, "llama-8b")) == {
        "id": "llama3.1-community", "name": "Llama 3.1 Community License", "terms_url": "https://example.org/llama",
        "use": ["research"]}
    assert describe_licence(p, licence_of(a, "qwen-special"))["name"] == "MIT License"  # SPDX ids are case-insensitive


def test_roles_allow_lists() -> None:
    p = parse_policy(TEXT)
    roles = p.access.roles
    a = p.upstream("a")
    assert licence_allowed(roles["any"], None) and licence_allowed(roles["any"], licence_of(a, "llama-8b"))
    assert licence_allowed(roles["permissive"], licence_of(a, "qwen-7b"))
    assert licence_allowed(roles["permissive"], licence_of(a, "qwen-special"))  # mit == MIT
    assert not licence_allowed(roles["permissive"], licence_of(a, "llama-8b"))
    assert not licence_allowed(roles["permissive"], None)  # a list refuses undeclared licences
    with pytest.raises(AccessDenied) as info:
        check_licence(p, roles["permissive"], Principal("k", "permissive"), "a", "llama-8b")
    assert (info.value.status, info.value.code) == (403, "licence_not_allowed")
    with pytest.raises(AccessDenied, match="declares no licence"):
        check_licence(p, roles["llama"], Principal("k", "llama"), "bare", "x")
    assert check_licence(p, roles["llama"], Principal("k", "llama"), "a", "llama-8b").id == "llama3.1-community"


@pytest.mark.parametrize(("snippet", "field", "words"), [
    ("licence: Apache-2", "upstreams[0].licence", "unknown licence 'Apache-2'"),
    ("licence: {id: MIT, use: [everything]}", "upstreams[0].licence.use[0]", "everything"),
    ("licence: {id: MIT, terms_url: ftp://x}", "upstreams[0].licence.terms_url", "pattern"),
])
def test_bad_licences_fail_at_load(snippet: str, field: str, words: str) -> None:
    text = f"policy: {{id: l}}\nupstreams:\n  - name: a\n    url: http://127.0.0.1:1/v1\n    {snippet}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy(text, source="l.yaml")
    assert f"field '{field}'" in str(info.value) and words in str(info.value) and "l.yaml:" in str(info.value)


def test_warnings_and_require_licence() -> None:
    p = parse_policy(TEXT)
    warns = licence_warnings(p)
    assert len(warns) == 1 and "'bare'" in warns[0]
    with pytest.raises(PolicyError, match="declares none for"):
        parse_policy(TEXT.replace("access:", "require_licence: true\naccess:"), source="l.yaml")
    echo_only = parse_policy("policy: {id: e}\nrequire_licence: true\n")  # the echo upstream is no model
    assert licence_warnings(echo_only) == []


def test_policy_check_cli_warns_about_undeclared_licences(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(TEXT)
    proc = subprocess.run([sys.executable, "-m", "guardrails.cli", "policy", "check", str(path)], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, "TRUSTWALL_DATA_DIR": str(tmp_path)}, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning: upstream 'bare' declares no licence" in proc.stderr
    assert "'a'" not in proc.stderr
