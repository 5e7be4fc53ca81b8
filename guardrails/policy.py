"""Policy files: pydantic models (extra="forbid") loaded from YAML with precise errors.

A broken policy fails at load with one message naming the file, the line (where the YAML parser knows
it) and the field path. It never falls back to defaults.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from guardrails.errors import PolicyError
from guardrails.experiments import Experiment, experiment_errors
from guardrails.licences import DeclaredLicence, LicenceSpec, licence_errors
from guardrails.types import Action, Operator, Stage

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
RuleActionName = Literal["allow", "flag", "redact", "mask", "hash", "pseudonymise", "route", "block"]
_OPERATOR_ACTIONS = {"redact": Operator.REDACT, "mask": Operator.MASK, "hash": Operator.HASH, "pseudonymise": Operator.PSEUDONYMISE}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Rule(_Model):
    """What to do when a detector reports a category at or above `threshold`."""

    action: RuleActionName = "flag"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    keep_last: int = Field(4, ge=0, le=64, description="for action: mask, characters left visible")
    message: str | None = Field(None, description="refusal text for this category, overrides messages.*")

    @property
    def verdict(self) -> Action:
        if self.action in _OPERATOR_ACTIONS:
            return Action.REDACT
        return Action.parse(self.action)

    @property
    def operator(self) -> Operator | None:
        return _OPERATOR_ACTIONS.get(self.action)


DEFAULT_RULE = Rule()


class DetectorSpec(_Model):
    """One detector instance in a policy."""

    name: str = Field(pattern=NAME_RE)
    type: str = Field(pattern=NAME_RE)
    stages: list[Stage] = Field(default_factory=lambda: ["input"], min_length=1)
    enabled: bool = True
    timeout_ms: int = Field(2000, gt=0, le=600_000)
    on_error: Literal["block", "flag", "allow"] = "block"
    options: dict[str, Any] = Field(default_factory=dict)
    rules: dict[str, Rule] = Field(default_factory=dict, description="category -> rule; '*' is the default")
    input_rules: dict[str, Rule] = Field(default_factory=dict, description="overrides for the input stage")
    output_rules: dict[str, Rule] = Field(default_factory=dict, description="overrides for the output stage")

    @field_validator("stages")
    @classmethod
    def _unique_stages(cls, v: list[Stage]) -> list[Stage]:
        if len(set(v)) != len(v):
            raise ValueError("stages listed twice")
        return v

    def rule_for(self, stage: Stage, category: str) -> Rule:
        staged = self.input_rules if stage == "input" else self.output_rules
        for table in (staged, self.rules):
            if category in table:
                return table[category]
        for table in (staged, self.rules):
            if "*" in table:
                return table["*"]
        return DEFAULT_RULE


class Messages(_Model):
    block_input: str = "Your request was blocked by the content policy."
    block_output: str = "The response was withheld by the content policy."
    detector_error: str = "A safety check could not complete, so the request was blocked."
    too_long: str = "The text is too long to be checked, so it was blocked."


class RateLimit(_Model):
    requests_per_minute: float = Field(gt=0)
    burst: int = Field(10, ge=1)


class Role(_Model):
    models: list[str] = Field(default_factory=lambda: ["*"], description="glob patterns of allowed models")
    upstreams: dict[str, list[str]] = Field(
        default_factory=lambda: {"*": ["*"]},
        description="upstream name (or '*') -> data categories allowed to reach it unredacted",
    )
    restore: list[str] = Field(default_factory=lambda: ["*"], description="categories whose pseudonyms are restored")
    max_request_bytes: int = Field(1_000_000, gt=0)
    rate_limit: RateLimit | None = None
    admin: bool = False
    licences: list[str] = Field(default_factory=lambda: ["*"],
                                description="model licences (SPDX ids, declared names, globs) this role may use")


class Access(_Model):
    anonymous_role: str | None = Field("local", description="role of keyless calls on loopback before any key exists")
    roles: dict[str, Role] = Field(default_factory=lambda: {"local": Role(), "admin": Role(admin=True)})


class Upstream(_Model):
    name: str = Field(pattern=NAME_RE)
    kind: Literal["openai", "azure", "echo", "anthropic"] = "openai"
    url: str | None = None
    api_key_env: str | None = Field(None, description="environment variable holding this upstream's key")
    api_version: str | None = Field(None, description="Azure OpenAI api-version; kind anthropic: anthropic-version "
                                                      "(default 2023-06-01)")
    models: list[str] = Field(default_factory=lambda: ["*"])
    api: Literal["chat", "responses"] = Field("chat", description="kind openai: the API this upstream serves chat-shaped "
                                              "calls with; responses: it speaks the Responses API natively")
    connect_timeout_s: float = Field(5.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    licence: LicenceSpec | None = Field(None, description="the licence of this upstream's models (SPDX id or declared name)")
    model_licences: dict[str, LicenceSpec] = Field(default_factory=dict, description="model name or glob -> licence")


class RouteWhen(_Model):
    categories: list[str] = Field(min_length=1)
    min_score: float = Field(0.0, ge=0.0, le=1.0)


class Route(_Model):
    """Send a request to another upstream when its input carries certain data categories."""

    name: str = Field(pattern=NAME_RE)
    when: RouteWhen
    upstream: str


class AuditPolicy(_Model):
    text: Literal["none", "redacted", "hash"] = "redacted"
    queue_size: int = Field(10_000, ge=1)
    on_full: Literal["wait", "refuse"] = "wait"
    wait_timeout_s: float = Field(30.0, gt=0, description="on_full: wait gives up after this long (503), never hangs")
    checkpoint_every: int = Field(1000, ge=1)


class Streaming(_Model):
    window_chars: int = Field(400, ge=16, description="check at latest after this many unchecked characters")
    min_chars: int = Field(48, ge=1, description="check at a sentence end once this many are pending")
    hold_chars: int = Field(64, ge=0, description="checked tail held back for the next window")
    context_chars: int = Field(200, ge=0, description="already released text re-read for context")


class Limits(_Model):
    """Bounds on what the detectors are given. A text longer than `max_text_chars` is refused before any
    detector runs (it could not be checked within the detectors' timeouts, and work abandoned at a
    timeout keeps running and slows the calls after it). 0 turns the bound off."""

    max_text_chars: int = Field(100_000, ge=0, description="longest single text checked; longer ones are blocked")


class Wire(_Model):
    """How request fields are read (guardrails.wire.openai). Every string a request carries is checked,
    except control values (model, numbers, enums, ids, binary parts) and the top-level fields named here,
    which pass to the upstream unchecked: only for vendor fields with no meaning to the model (a test
    harness's steering, an upstream's sampling extension). Each name must be a plain field name."""

    pass_fields: list[str] = Field(default_factory=list, description="top-level request fields forwarded unchecked")

    @field_validator("pass_fields")
    @classmethod
    def _names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", name):
                raise ValueError(f"{name!r} is not a plain field name")
            if name in ("messages", "prompt", "suffix", "prediction", "tools", "functions", "response_format"):
                raise ValueError(f"{name!r} holds text the model reads: it is always checked")
        return v


class PolicyMeta(_Model):
    id: str = Field(pattern=NAME_RE)
    version: str = "1"
    description: str = ""


class Policy(_Model):
    policy: PolicyMeta
    detectors: list[DetectorSpec] = Field(default_factory=list)
    messages: Messages = Field(default_factory=Messages)
    access: Access = Field(default_factory=Access)
    upstreams: list[Upstream] = Field(default_factory=lambda: [Upstream(name="echo", kind="echo")])
    default_upstream: str | None = None
    routes: list[Route] = Field(default_factory=list)
    audit: AuditPolicy = Field(default_factory=AuditPolicy)
    streaming: Streaming = Field(default_factory=Streaming)
    wire: Wire = Field(default_factory=Wire)
    limits: Limits = Field(default_factory=Limits)
    experiments: list[Experiment] = Field(default_factory=list)
    licences: dict[str, DeclaredLicence] = Field(default_factory=dict, description="named (non-SPDX) licences")
    require_licence: bool = Field(False, description="every upstream model must declare a licence")

    _source: str | None = PrivateAttr(default=None)
    _digest: str = PrivateAttr(default="")

    @property
    def id(self) -> str:
        return self.policy.id

    @property
    def digest(self) -> str:
        """sha256 of the canonical JSON form: the policy 'version' recorded in audit records."""
        if not self._digest:
            canon = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
            self._digest = hashlib.sha256(canon.encode()).hexdigest()
        return self._digest

    @property
    def source(self) -> str | None:
        return self._source

    def detectors_for(self, stage: Stage) -> list[DetectorSpec]:
        return [d for d in self.detectors if d.enabled and stage in d.stages]

    def upstream(self, name: str) -> Upstream:
        for u in self.upstreams:
            if u.name == name:
                return u
        raise KeyError(name)

    @property
    def default_upstream_name(self) -> str:
        return self.default_upstream or self.upstreams[0].name


# --------------------------------------------------------------------------------------------- loading


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate mapping keys instead of silently keeping the last."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_map(node: yaml.Node | None, path: tuple[Any, ...] = (), out: dict[tuple[Any, ...], int] | None = None) -> dict[tuple[Any, ...], int]:
    """Map each field path to the 1-based line where the YAML parser saw it."""
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value
            out[path + (key,)] = k.start_mark.line + 1
            _line_map(v, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _line_map(v, path + (i,), out)
    return out


def format_loc(loc: Iterable[Any]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts)


def _line_for(lines: Mapping[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int | None:
    for n in range(len(loc), -1, -1):
        if loc[:n] in lines:
            return lines[loc[:n]]
    return None


def _first_error(exc: ValidationError) -> tuple[tuple[Any, ...], str]:
    err = exc.errors()[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown field"
    elif err["type"] == "literal_error":
        msg = f"{msg} (got {err.get('input')!r})"
    more = len(exc.errors()) - 1
    if more:
        msg += f" (and {more} more error{'s' if more > 1 else ''})"
    return loc, msg


def parse_policy(text: str, *, source: str = "<policy>", registry: Any = None) -> Policy:
    """Parse and validate policy YAML text. Raises PolicyError naming source, line and field."""
    try:
        node = yaml.compose(text, Loader=_UniqueKeyLoader)
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PolicyError(f"invalid YAML: {problem}", path=source, line=mark.line + 1 if mark else None) from None
    if not isinstance(data, dict):
        raise PolicyError("a policy must be a YAML mapping with at least a 'policy' section", path=source, line=1)
    lines = _line_map(node)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        loc, msg = _first_error(exc)
        raise PolicyError(msg, path=source, line=_line_for(lines, loc), field=format_loc(loc) or None) from None
    for loc, msg in _semantic_errors(policy, registry):
        raise PolicyError(msg, path=source, line=_line_for(lines, loc), field=format_loc(loc))
    policy._source = source
    return policy


def load_policy(path: str | Path, registry: Any = None) -> Policy:
    """Load a policy file. `registry` (a guardrails.detector.Registry) also validates detector types
    and their options; without it only the structure is checked."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError("file not found", path=str(p)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read: {exc}", path=str(p)) from None
    return parse_policy(text, source=str(p), registry=registry)


def _semantic_errors(policy: Policy, registry: Any) -> Iterable[tuple[tuple[Any, ...], str]]:
    seen: dict[str, int] = {}
    for i, d in enumerate(policy.detectors):
        if d.name in seen:
            yield ("detectors", i, "name"), f"duplicate detector name {d.name!r} (also detectors[{seen[d.name]}])"
        seen[d.name] = i
        for table in ("rules", "input_rules", "output_rules"):
            for cat, rule in getattr(d, table).items():
                if rule.action == "route":
                    yield ("detectors", i, table, cat, "action"), "'route' is decided by the routes section, not by a rule"
        if registry is not None:
            if d.type not in registry:
                yield ("detectors", i, "type"), f"unknown detector type {d.type!r}; known types: {', '.join(registry.names())}"
                continue
            dtype = registry.get(d.type)
            bad_stages = [s for s in d.stages if s not in dtype.stages]
            if bad_stages:
                yield ("detectors", i, "stages"), f"type {d.type!r} cannot run at stage {bad_stages[0]!r}"
            try:
                dtype.options_model.model_validate(d.options)
            except ValidationError as exc:
                loc, msg = _first_error(exc)
                yield ("detectors", i, "options", *loc), msg
    up_names: dict[str, int] = {}
    for i, u in enumerate(policy.upstreams):
        if u.name in up_names:
            yield ("upstreams", i, "name"), f"duplicate upstream name {u.name!r}"
        up_names[u.name] = i
        if u.kind != "echo" and not u.url:
            yield ("upstreams", i, "url"), f"upstream {u.name!r} of kind {u.kind!r} needs a url"
        if u.url and not re.match(r"^https?://", u.url):
            yield ("upstreams", i, "url"), "url must start with http:// or https://"
        if u.api == "responses" and u.kind != "openai":
            yield ("upstreams", i, "api"), f"api: responses is for kind openai, not {u.kind!r}"
    if not policy.upstreams:
        yield ("upstreams",), "at least one upstream is required (kind: echo needs no model)"
    if policy.default_upstream and policy.default_upstream not in up_names:
        yield ("default_upstream",), f"unknown upstream {policy.default_upstream!r}"
    route_names: set[str] = set()
    for i, r in enumerate(policy.routes):
        if r.name in route_names:
            yield ("routes", i, "name"), f"duplicate route name {r.name!r}"
        route_names.add(r.name)
        if r.upstream not in up_names:
            yield ("routes", i, "upstream"), f"unknown upstream {r.upstream!r}"
    roles = policy.access.roles
    if policy.access.anonymous_role and policy.access.anonymous_role not in roles:
        yield ("access", "anonymous_role"), f"unknown role {policy.access.anonymous_role!r}"
    for name, role in roles.items():
        if not re.match(NAME_RE, name):
            yield ("access", "roles", name), "role names use letters, digits, '_', '-', '.'"
        for up in role.upstreams:
            if up != "*" and up not in up_names:
                yield ("access", "roles", name, "upstreams", up), f"unknown upstream {up!r}"
    yield from experiment_errors(policy)
    yield from licence_errors(policy)


def describe(policy: Policy) -> str:
    """A human summary of what a policy enables (for `trustwall policy check`)."""
    out = [f"policy {policy.id} v{policy.policy.version} (sha256 {policy.digest[:12]})"]
    for stage in ("input", "output"):
        specs = policy.detectors_for(stage)  # type: ignore[arg-type]
        out.append(f"  {stage}: " + (", ".join(f"{d.name} ({d.type})" for d in specs) or "no detectors"))
        for d in specs:
            rules = {**d.rules, **(d.input_rules if stage == "input" else d.output_rules)}
            if rules:
                desc = ", ".join(f"{c}>={r.threshold:g}:{r.action}" for c, r in sorted(rules.items()))
                out.append(f"    {d.name}: {desc}; timeout {d.timeout_ms} ms, on_error {d.on_error}")
    out.append("  upstreams: " + ", ".join(f"{u.name} ({u.kind})" for u in policy.upstreams)
               + f"; default {policy.default_upstream_name}")
    for r in policy.routes:
        out.append(f"  route {r.name}: {'/'.join(r.when.categories)} -> {r.upstream}")
    lic = [f"{u.name}={u.licence.id if u.licence else '-'}"
           + "".join(f", {u.name}/{m}={s.id}" for m, s in u.model_licences.items()) for u in policy.upstreams]
    if any(u.licence or u.model_licences for u in policy.upstreams):
        out.append("  licences: " + "; ".join(lic) + (" (required)" if policy.require_licence else ""))
    for e in policy.experiments:
        arms = ", ".join(f"{v.label}={v.weight:g}" for v in e.variants)
        out.append(f"  experiment {e.name}: {'/'.join(e.models)} -> {arms} (sticky {e.sticky})")
    out.append("  roles: " + ", ".join(sorted(policy.access.roles)))
    out.append(f"  audit text: {policy.audit.text}")
    return "\n".join(out)
