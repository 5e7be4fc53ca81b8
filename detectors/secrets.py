"""Secrets detector: API keys, tokens, private keys, passwords in URLs, high-entropy assignments.

Own patterns, each written from the provider's documented token format and tested with real-shaped
values (tests/detectors/test_secrets.py). detect-secrets was considered: its plugins report values per
line without offsets, run under process-global settings, and lack Anthropic, Google OAuth and current
OpenAI project-key formats, so it did not fit a span-reporting, per-runtime detector.

Categories (upper snake case, like PII): AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, GITHUB_TOKEN,
GITLAB_TOKEN, OPENAI_API_KEY, ANTHROPIC_API_KEY, SLACK_TOKEN, SLACK_WEBHOOK, STRIPE_KEY, GOOGLE_API_KEY,
GOOGLE_OAUTH_SECRET, GOOGLE_OAUTH_TOKEN, AZURE_STORAGE_KEY, AZURE_SAS_TOKEN, AZURE_CLIENT_SECRET,
PRIVATE_KEY, JWT, URL_PASSWORD, GENERIC_SECRET. Evidence holds the rule name and the value's length,
never the value. Pure regex work: cheap; long inputs go off the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator

from guardrails.detector import BuildContext, DetectorType, Options
from guardrails.normalize import normalize
from guardrails.types import CallContext, Finding, Stage

_B = r"(?<![A-Za-z0-9_\-])"  # left boundary: not inside a longer token
_E = r"(?![A-Za-z0-9_\-])"  # right boundary


@dataclass(frozen=True)
class SecretRule:
    name: str
    category: str
    pattern: re.Pattern[str]
    score: float = 1.0
    group: int = 0  # which regex group is the secret (0: the whole match)
    check: Any = None  # optional callable(value) -> bool


def _jwt_ok(value: str) -> bool:
    try:
        head = value.split(".", 1)[0]
        data = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    return isinstance(data, dict) and ("alg" in data or "typ" in data)


def shannon_entropy(value: str) -> float:
    if not value:
        return 0.0
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in Counter(value).values())


_PLACEHOLDER = re.compile(r"^(?:x+|\*+|\.+|<[^>]*>|\{\{?[^}]*\}?\}|\$\{?[A-Za-z_][A-Za-z0-9_]*\}?|%\(?[a-z_]+\)?s?|"
                          r"changeme|password|secret|your[_-]?\w*|example\w*|dummy\w*|test|none|null|true|false|"
                          r"redacted|hidden|\w*placeholder\w*)$", re.IGNORECASE)


def _rules() -> tuple[SecretRule, ...]:
    c = re.compile
    return (
        SecretRule("aws_access_key_id", "AWS_ACCESS_KEY_ID", c(_B + r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}" + _E)),
        SecretRule("aws_secret_access_key", "AWS_SECRET_ACCESS_KEY",
                   c(r"(?i)aws.{0,20}?(?:secret|private).{0,20}?['\"]?\s*[:=]\s*['\"]?([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
                   group=1),
        SecretRule("github_token", "GITHUB_TOKEN", c(_B + r"gh[pousr]_[A-Za-z0-9]{36,251}" + _E)),
        SecretRule("github_fine_grained_pat", "GITHUB_TOKEN", c(_B + r"github_pat_[A-Za-z0-9]{22}_[A-Za-z0-9]{59}" + _E)),
        SecretRule("gitlab_token", "GITLAB_TOKEN",
                   c(_B + r"gl(?:pat|dt|rt|ptt|ft|imt|agent|oas|soat|cbt|ffct|wt)-[A-Za-z0-9_\-]{20,}" + _E)),
        SecretRule("anthropic_api_key", "ANTHROPIC_API_KEY", c(_B + r"sk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,120}" + _E)),
        SecretRule("openai_project_key", "OPENAI_API_KEY",
                   c(_B + r"sk-(?:proj|svcacct|admin|None)-[A-Za-z0-9_\-]{40,200}" + _E)),
        SecretRule("openai_legacy_key", "OPENAI_API_KEY",
                   c(_B + r"sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}" + _E + r"|" + _B + r"sk-[A-Za-z0-9]{48}" + _E)),
        SecretRule("slack_token", "SLACK_TOKEN", c(_B + r"xox[abposr]-(?:\d+-)+[A-Za-z0-9\-]{10,}" + _E
                                                   + r"|" + _B + r"xapp-\d-[A-Z0-9]+-\d+-[a-f0-9]{32,}" + _E)),
        SecretRule("slack_webhook", "SLACK_WEBHOOK",
                   c(r"https://hooks\.slack\.com/(?:services|workflows|triggers)/T[A-Z0-9]+/[A-Z0-9]+/[A-Za-z0-9/]{16,}")),
        SecretRule("stripe_key", "STRIPE_KEY", c(_B + r"(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,247}" + _E
                                                 + r"|" + _B + r"whsec_[A-Za-z0-9]{32,}" + _E)),
        SecretRule("google_api_key", "GOOGLE_API_KEY", c(_B + r"AIza[0-9A-Za-z_\-]{35}" + _E)),
        SecretRule("google_oauth_secret", "GOOGLE_OAUTH_SECRET", c(_B + r"GOCSPX-[A-Za-z0-9_\-]{28}" + _E)),
        SecretRule("google_oauth_token", "GOOGLE_OAUTH_TOKEN", c(_B + r"ya29\.[A-Za-z0-9_\-]{30,}" + _E), score=0.9),
        SecretRule("azure_storage_key", "AZURE_STORAGE_KEY",
                   c(r"(?i)AccountKey\s*=\s*([A-Za-z0-9+/]{86}==)"), group=1),
        SecretRule("azure_sas_token", "AZURE_SAS_TOKEN",
                   c(r"(?:[?&]|^|\s)sv=\d{4}-\d{2}-\d{2}&[^\s\"']*?\bsig=([A-Za-z0-9%+/=]{30,})"), group=1),
        SecretRule("azure_client_secret", "AZURE_CLIENT_SECRET",
                   c(_B + r"[A-Za-z0-9_~.\-]{3}\dQ~[A-Za-z0-9_~.\-]{31,34}" + _E)),
        SecretRule("private_key", "PRIVATE_KEY",
                   c(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY"
                     r"(?: BLOCK)?-----|\Z)")),
        SecretRule("jwt", "JWT", c(_B + r"eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}" + _E), score=0.9,
                   check=_jwt_ok),
        SecretRule("url_password", "URL_PASSWORD",
                   c(r"\b[a-zA-Z][a-zA-Z0-9+.\-]{1,20}://[^\s:/@?#\"'<>]{1,128}:([^\s/@?#\"'<>]{1,256})@[A-Za-z0-9.\-\[\]]+"),
                   group=1, score=0.9, check=lambda v: not _PLACEHOLDER.match(v)),
    )


_GENERIC = re.compile(
    r"(?i)(?<![A-Za-z0-9])[\"']?([A-Za-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|apikey|access[_\-]?key|"
    r"auth[_\-]?key|private[_\-]?key|client[_\-]?secret|credentials?)[A-Za-z0-9_.\-]*)[\"']?\s*(?::=|=>|[:=])\s*"
    r"(?:\"([^\"\s]{6,200})\"|'([^'\s]{6,200})'|([^\s\"',;]{6,200}))")


# Candidates for encoded secrets: a base64 / base64url run, or a run with at least three %XX escapes.
_ENCODED = re.compile(r"(?<![A-Za-z0-9+/=_\-])[A-Za-z0-9+/_\-]{24,8192}={0,2}(?![A-Za-z0-9+/=_\-])"
                      r"|(?:[^\s%]{0,64}%[0-9A-Fa-f]{2}){3,}[^\s%]{0,64}")


def _decode(value: str) -> str | None:
    """The printable text a base64 or percent-encoded value stands for, or None."""
    from urllib.parse import unquote

    if "%" in value:
        try:
            plain = unquote(value, errors="strict")
        except UnicodeDecodeError:
            return None
        return plain if plain != value else None
    raw = value.rstrip("=")
    try:
        data = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4), validate=True)
        plain = data.decode("utf-8")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return None
    if not plain or sum(c.isprintable() or c in "\n\r\t" for c in plain) < 0.95 * len(plain):
        return None
    return plain


class SecretsOptions(Options):
    include: list[str] | None = Field(None, description="rule names to run (default: all); see `rules`")
    exclude: list[str] = Field(default_factory=list, description="rule names not to run")
    generic: bool = Field(True, description="report high-entropy values assigned to secret-like names")
    min_entropy: float = Field(3.0, ge=0.0, le=8.0, description="bits per character for generic assignments")
    min_length: int = Field(8, ge=4, le=200, description="shortest generic value reported")
    allow_list: list[str] = Field(default_factory=list, description="exact values never reported (known test keys)")
    normalize: bool = Field(True, description="match on normalised text (invisible characters, NFKC, homoglyphs) "
                                              "and decode base64 / percent-encoded values; spans map to the original")

    @field_validator("include", "exclude")
    @classmethod
    def _known(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return v
        known = {r.name for r in _rules()} | {"generic"}
        bad = [n for n in v if n not in known]
        if bad:
            raise ValueError(f"unknown secret rules {bad}; known: {sorted(known)}")
        return v


class SecretsDetector:
    def __init__(self, name: str, options: SecretsOptions):
        self.name = name
        self.options = options
        rules = _rules()
        if options.include is not None:
            rules = tuple(r for r in rules if r.name in options.include)
        self.rules = tuple(r for r in rules if r.name not in options.exclude)
        self.generic = options.generic and "generic" not in options.exclude and (
            options.include is None or "generic" in options.include)
        self._allow = set(options.allow_list)

    def info(self) -> dict[str, Any]:
        return {"rules": [r.name for r in self.rules] + (["generic"] if self.generic else []), "device": "cpu"}

    def scan(self, text: str) -> list[Finding]:
        if not self.options.normalize:
            return self._scan(text)
        norm = normalize(text, confusables=True)
        found = self._scan(norm.text)
        decoded = self._decoded(norm.text, found)
        if decoded:  # a specific secret inside an encoded value beats a generic finding on the same value
            found = [f for f in found if f.category != "GENERIC_SECRET" or not any(
                f.span and d.span and d.span[0] < f.span[1] and f.span[0] < d.span[1] for d in decoded)] + decoded
        if norm.changed:
            found = [Finding(f.detector, f.category, f.score, norm.original_span(f.span), f.evidence)
                     if f.span else f for f in found]
        found.sort(key=lambda f: f.span or (0, 0))
        return found

    def _decoded(self, text: str, found: list[Finding]) -> list[Finding]:
        """Secrets inside base64 or percent-encoded values: the whole encoded value is reported."""
        taken = [f.span for f in found if f.span and f.category != "GENERIC_SECRET"]
        out: list[Finding] = []
        budget = 1_000_000  # decoded characters scanned per text, at most
        for m in _ENCODED.finditer(text):
            s, e = m.span()
            if budget <= 0:
                break
            if any(ts < e and s < te for ts, te in taken):
                continue
            plain = _decode(m.group(0))
            if not plain:
                continue
            budget -= len(plain)
            inner = self._scan(plain)
            for cat in dict.fromkeys(f.category for f in inner):
                best = max(f.score for f in inner if f.category == cat)
                rule = next(f.evidence.get("rule", "") for f in inner if f.category == cat)
                out.append(Finding(self.name, cat, best, (s, e), {"rule": f"encoded:{rule}", "length": e - s}))
        return out

    def _scan(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        taken: list[tuple[int, int]] = []
        for rule in self.rules:
            for m in rule.pattern.finditer(text):
                s, e = m.span(rule.group)
                if s < 0 or e <= s:
                    continue
                value = text[s:e]
                if value in self._allow or (rule.check is not None and not rule.check(value)):
                    continue
                found.append(Finding(self.name, rule.category, rule.score, (s, e), {"rule": rule.name, "length": e - s}))
                taken.append((s, e))
        if self.generic:
            for m in _GENERIC.finditer(text):
                g = next(i for i in (2, 3, 4) if m.group(i) is not None)
                s, e = m.span(g)
                value = text[s:e]
                if any(ts < e and s < te for ts, te in taken) or value in self._allow:
                    continue
                if len(value) < self.options.min_length or _PLACEHOLDER.match(value):
                    continue
                ent = shannon_entropy(value)
                if ent < self.options.min_entropy:
                    continue
                score = min(0.95, 0.5 + 0.1 * (ent - self.options.min_entropy))
                found.append(Finding(self.name, "GENERIC_SECRET", round(score, 3), (s, e),
                                     {"rule": "generic", "length": e - s, "entropy": round(ent, 2)}))
        found.sort(key=lambda f: f.span or (0, 0))
        return found

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        if sum(len(t) for t in texts) > 20_000:
            return await asyncio.to_thread(lambda: [self.scan(t) for t in texts])
        return [self.scan(t) for t in texts]


def _build(spec: Any, options: SecretsOptions, build: BuildContext) -> SecretsDetector:
    return SecretsDetector(spec.name, options)


CATEGORIES = tuple(dict.fromkeys([r.category for r in _rules()] + ["GENERIC_SECRET"]))

TYPE = DetectorType("secrets", SecretsOptions, _build, categories=CATEGORIES,
                    description="API keys, tokens, private keys, passwords in URLs, high-entropy assignments")
