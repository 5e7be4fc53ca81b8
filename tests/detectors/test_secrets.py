"""Secrets detector: each provider's token format, negatives, evidence hygiene, policy (block by default)."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import string

import pytest

from detectors.registry import builtin_registry
from detectors.secrets import SecretsDetector, SecretsOptions, shannon_entropy
from guardrails.errors import PolicyError
from guardrails.pipeline import Pipeline
from guardrails.policy import parse_policy
from guardrails.types import CallContext

_rng = random.Random(1234)
ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(_rng.choice(alphabet) for _ in range(n))


def _jwt() -> str:
    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
    return f"{b64({'alg': 'HS256', 'typ': 'JWT'})}.{b64({'sub': '1234567890', 'iat': 1516239022})}.{rand(43, ALNUM + '-_')}"


# Built at import from documented formats (prefix + length + alphabet), never real credentials.
AWS_ID = "AKIA" + rand(16, string.ascii_uppercase + string.digits)
AWS_SECRET = rand(40, ALNUM + "/+")
GH_CLASSIC = "ghp_" + rand(36)
GH_FINE = "github_pat_" + rand(22) + "_" + rand(59)
GH_OAUTH = "gho_" + rand(36)
GL_PAT = "glpat-" + rand(20, ALNUM + "_-")
OPENAI_PROJ = "sk-proj-" + rand(74, ALNUM + "_-") + "T3BlbkFJ" + rand(74, ALNUM + "_-")
OPENAI_LEGACY = "sk-" + rand(20) + "T3BlbkFJ" + rand(20)
ANTHROPIC = "sk-ant-api03-" + rand(93, ALNUM + "_-") + "AA"
SLACK_BOT = f"xoxb-{rand(12, string.digits)}-{rand(13, string.digits)}-{rand(24)}"
SLACK_HOOK = f"https://hooks.slack.com/services/T{rand(8, string.ascii_uppercase + string.digits)}/B{rand(10, string.ascii_uppercase + string.digits)}/{rand(24)}"
STRIPE_LIVE = "sk_live_" + rand(24)
STRIPE_RESTRICTED = "rk_test_" + rand(99)
GOOGLE_KEY = "AIza" + rand(35, ALNUM + "_-")
GOOGLE_OAUTH = "GOCSPX-" + rand(28, ALNUM + "_-")
AZURE_KEY = rand(86, ALNUM + "+/") + "=="
AZURE_CLIENT = rand(3) + "8Q~" + rand(34, ALNUM + "_~.-")
AZURE_SIG = rand(43, ALNUM + "%") + "%3D"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + rand(64, ALNUM + "+/") + "\n-----END RSA PRIVATE KEY-----"
OPENSSH = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA" + rand(60, ALNUM + "+/") + "\n-----END OPENSSH PRIVATE KEY-----"
PGP = "-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF" + rand(60, ALNUM + "+/") + "\n-----END PGP PRIVATE KEY BLOCK-----"
JWT = _jwt()
URL_PW = "Zq8" + rand(9)
GENERIC = "q8#Lz!2vR9wXk3"

CASES = [
    ("AWS_ACCESS_KEY_ID", f"export AWS_ACCESS_KEY_ID={AWS_ID}", AWS_ID),
    ("AWS_SECRET_ACCESS_KEY", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET),
    ("GITHUB_TOKEN", f"token: {GH_CLASSIC}", GH_CLASSIC),
    ("GITHUB_TOKEN", f"use {GH_FINE} for the API", GH_FINE),
    ("GITHUB_TOKEN", f"oauth {GH_OAUTH}.", GH_OAUTH),
    ("GITLAB_TOKEN", f"PRIVATE-TOKEN: {GL_PAT}", GL_PAT),
    ("OPENAI_API_KEY", f"OPENAI_API_KEY={OPENAI_PROJ}", OPENAI_PROJ),
    ("OPENAI_API_KEY", f"key '{OPENAI_LEGACY}'", OPENAI_LEGACY),
    ("ANTHROPIC_API_KEY", f"x-api-key: {ANTHROPIC}", ANTHROPIC),
    ("SLACK_TOKEN", f"SLACK_BOT_TOKEN={SLACK_BOT}", SLACK_BOT),
    ("SLACK_WEBHOOK", f"post to {SLACK_HOOK} please", SLACK_HOOK),
    ("STRIPE_KEY", f"stripe.api_key = \"{STRIPE_LIVE}\"", STRIPE_LIVE),
    ("STRIPE_KEY", f"restricted {STRIPE_RESTRICTED}", STRIPE_RESTRICTED),
    ("GOOGLE_API_KEY", f"https://maps.googleapis.com/maps/api/geocode/json?key={GOOGLE_KEY}", GOOGLE_KEY),
    ("GOOGLE_OAUTH_SECRET", f'"client_secret": "{GOOGLE_OAUTH}"', GOOGLE_OAUTH),
    ("AZURE_STORAGE_KEY", f"DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={AZURE_KEY};EndpointSuffix=core.windows.net", AZURE_KEY),
    ("AZURE_CLIENT_SECRET", f"AZURE_CLIENT_SECRET={AZURE_CLIENT}", AZURE_CLIENT),
    ("AZURE_SAS_TOKEN", f"https://acme.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-01-01T00:00:00Z&sig={AZURE_SIG}", AZURE_SIG),
    ("PRIVATE_KEY", f"here is my key:\n{PEM}\nthanks", PEM),
    ("PRIVATE_KEY", OPENSSH, OPENSSH),
    ("PRIVATE_KEY", PGP, PGP),
    ("JWT", f"Authorization: Bearer {JWT}", JWT),
    ("URL_PASSWORD", f"DATABASE_URL=postgres://app_user:{URL_PW}@db.internal:5432/app", URL_PW),
    ("URL_PASSWORD", f"git clone https://bob:{URL_PW}@git.example.com/r.git", URL_PW),
    ("GENERIC_SECRET", f'db_password = "{GENERIC}"', GENERIC),
    ("GENERIC_SECRET", "api_key: 7f9a2c4e8b1d3f5a6c", "7f9a2c4e8b1d3f5a6c"),
]


@pytest.fixture(scope="module")
def det() -> SecretsDetector:
    return SecretsDetector("secrets", SecretsOptions())


@pytest.mark.parametrize(("category", "text", "value"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_each_secret_format(det, category, text, value):
    found = det.scan(text)
    spans = [(f.category, text[f.span[0]:f.span[1]]) for f in found]
    assert (category, value) in spans, spans
    for f in found:
        assert value not in json.dumps(dict(f.evidence))  # never the value in evidence
        assert f.score >= 0.5


@pytest.mark.parametrize("text", [
    "password: ********",
    "password = ${DB_PASSWORD}",
    "token: <your-token-here>",
    "api_key = YOUR_API_KEY",
    "secret = changeme",
    "The password policy requires 12 characters.",
    "sk-short and AKIA123 are not keys",
    "postgres://app_user@db.internal:5432/app",
    "https://user:${PASSWORD}@example.com/",
    "eyJhbGciOi.not.a.jwt",
    "version = 1.2.3.4 and count = 1000000000",
    "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqh\n-----END PUBLIC KEY-----",
    "ghp_tooShort",
])
def test_benign_text_is_not_a_secret(det, text):
    assert det.scan(text) == []


def test_detect_is_batched_and_async(det):
    out = asyncio.run(det.detect(["nothing here", f"key {GH_CLASSIC}", ""], CallContext()))
    assert [len(x) for x in out] == [0, 1, 0]


def test_long_input_runs_off_the_event_loop(det):
    text = ("lorem ipsum " * 2000) + GH_CLASSIC
    out = asyncio.run(det.detect([text], CallContext()))
    assert [f.category for f in out[0]] == ["GITHUB_TOKEN"]


def test_entropy():
    assert shannon_entropy("aaaa") == 0
    assert shannon_entropy("abcd") == 2


def test_options_include_exclude_allow():
    d = SecretsDetector("s", SecretsOptions(exclude=["jwt", "generic"], allow_list=[GH_CLASSIC]))
    text = f"{JWT} {GH_CLASSIC} {GH_OAUTH} password={GENERIC}"
    assert [f.category for f in d.scan(text)] == ["GITHUB_TOKEN"]
    only = SecretsDetector("s", SecretsOptions(include=["aws_access_key_id"]))
    assert [f.category for f in only.scan(f"{AWS_ID} {GH_CLASSIC}")] == ["AWS_ACCESS_KEY_ID"]


POLICY = """
policy: {id: secrets-test}
detectors:
  - name: secrets
    type: secrets
    stages: [input, output]
    rules:
      "*": {action: block, threshold: 0.5}
"""


def test_default_action_blocks_in_the_pipeline():
    reg = builtin_registry()
    pol = parse_policy(POLICY, registry=reg)
    pipe = Pipeline(pol, {"secrets": reg.get("secrets").factory(pol.detectors[0], SecretsOptions(), None)})
    dec = asyncio.run(pipe.check_input([f"my key is {STRIPE_LIVE}"], CallContext()))
    assert dec.blocked and dec.blocking_categories == ("STRIPE_KEY",)
    ok = asyncio.run(pipe.check_input(["no secrets here"], CallContext()))
    assert not ok.blocked


def test_default_policy_blocks_secrets():
    from guardrails.settings import default_policy_path

    text = default_policy_path().read_text()
    pol = parse_policy(text, registry=builtin_registry())
    spec = next(d for d in pol.detectors if d.type == "secrets")
    assert spec.rule_for("input", "AWS_ACCESS_KEY_ID").action == "block"


def test_unknown_rule_name_rejected_at_load():
    bad = POLICY + "    options: {exclude: [aws_keyz]}\n"
    with pytest.raises(PolicyError, match="unknown secret rules"):
        parse_policy(bad, source="s.yaml", registry=builtin_registry())


# ------------------------------------------------------------- normalised and encoded values (issue 16)

def test_obfuscated_and_encoded_secrets_are_found():
    import base64

    from detectors.secrets import SecretsDetector, SecretsOptions

    det = SecretsDetector("secrets", SecretsOptions())
    key = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    cases = {
        "zero_width": f"token {key[:9]}\u200b{key[9:]} end",
        "base64": "blob " + base64.b64encode(f"key={key}".encode()).decode() + " end",
        "url": "u=" + "".join(f"%{b:02X}" for b in key.encode()) + " end",
        "fullwidth": "AKIA" + "".join(chr(ord(c) + 0xFEE0) for c in "IOSFODNN7EXAMPL") + "Q end",
    }
    for name, text in cases.items():
        found = det.scan(text)
        assert found, name
        s, e = found[0].span
        assert 0 <= s < e <= len(text) and text[s:e].strip() == text[s:e], name
    assert det.scan("plain words and YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXo= here") == []
    off = SecretsDetector("secrets", SecretsOptions(normalize=False))
    assert off.scan(cases["base64"]) == []
