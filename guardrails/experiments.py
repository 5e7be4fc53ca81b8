"""A/B experiments across upstreams, pure: the policy section, its load-time checks, and the one
function every guarded path calls to assign a call to a variant. No I/O.

    experiments:
      - name: chat-ab
        models: ["gpt-4o*"]                  # requested model names (globs) the experiment takes
        variants:
          - {name: control, upstream: openai, weight: 50}
          - {name: llama, upstream: local, model: llama-3.1-8b, weight: 50}
        sticky: principal                    # principal (default) or request
        start: 2026-12-01T00:00:00Z          # optional window, end exclusive
        end: 2027-01-01

Assignment is a keyed hash (HMAC-SHA256 under the experiment's `salt`, default its name) of the
principal id (sticky: principal) or of the request id (sticky: request), read as a number in [0, 1)
and mapped onto the variants' cumulative weights: deterministic, testable, and the same principal
gets the same variant on every path and every replica. Variants the caller's role may not reach are
skipped (the hash is mapped onto the remaining weights); when none remains the call is refused.
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.policy import Policy

NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _to_ts(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, bool):
        raise ValueError("expected a date or time")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, _dt.datetime):
        dt = v
    elif isinstance(v, _dt.date):
        dt = _dt.datetime(v.year, v.month, v.day)
    elif isinstance(v, str):
        try:
            dt = _dt.datetime.fromisoformat(v.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a date or time: {v!r} (use e.g. 2026-12-01 or 2026-12-01T00:00:00Z)") from None
    else:
        raise ValueError("expected a date or time")
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


class Variant(_Model):
    """One arm: the upstream (and optionally another model) a share of the matching calls goes to."""

    name: str | None = Field(None, pattern=NAME_RE, description="default: the upstream name (and model)")
    upstream: str
    model: str | None = Field(None, min_length=1, description="model sent upstream (default: the requested one)")
    weight: float = Field(1.0, ge=0.0)

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        return f"{self.upstream}:{self.model}" if self.model else self.upstream


class Experiment(_Model):
    name: str = Field(pattern=NAME_RE)
    models: list[str] = Field(min_length=1, description="requested model names or globs")
    variants: list[Variant] = Field(min_length=1)
    sticky: Literal["principal", "request"] = "principal"
    start: float | None = Field(None, description="unix seconds (YAML dates and ISO 8601 accepted)")
    end: float | None = Field(None, description="exclusive")
    salt: str | None = Field(None, min_length=1, description="hash key (default: the experiment name)")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, v: Any) -> float | None:
        return _to_ts(v)

    def active(self, now: float) -> bool:
        return (self.start is None or now >= self.start) and (self.end is None or now < self.end)

    def matches(self, model: str | None) -> bool:
        return model is not None and any(p == "*" or fnmatch.fnmatchcase(model, p) for p in self.models)

    @property
    def total_weight(self) -> float:
        return sum(v.weight for v in self.variants)


@dataclass(frozen=True)
class Assignment:
    """The variant a call goes to."""

    experiment: str
    variant: str
    upstream: str
    model: str | None  # the model sent upstream
    bucket: float  # the hash point in [0, 1)
    skipped: tuple[str, ...] = ()  # variants skipped because the role may not reach them


@dataclass(frozen=True)
class Refusal:
    """No variant is left for this caller: the call is refused (403)."""

    experiment: str
    code: str
    message: str
    status: int = 403


# ----------------------------------------------------------------------------------------- assignment


def bucket(experiment: Experiment, unit: str) -> float:
    """The keyed hash of `unit` (principal or request id) as a number in [0, 1)."""
    key = ("trustwall-experiment:" + (experiment.salt or experiment.name)).encode("utf-8")
    digest = hmac.new(key, unit.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def pick(variants: list[Variant], point: float) -> Variant:
    """The variant whose slice of the cumulative weights holds `point` (weights need not sum to 1)."""
    total = sum(v.weight for v in variants)
    acc = 0.0
    for v in variants:
        acc += v.weight
        if point * total < acc:
            return v
    return [v for v in variants if v.weight > 0][-1]


def find_experiment(policy: Policy, model: str | None, now: float) -> Experiment | None:
    """The running experiment that takes `model` (load-time checks make it unique)."""
    for e in policy.experiments:
        if e.active(now) and e.matches(model):
            return e
    return None


Forbidden = Callable[[str, str | None], "tuple[str, str] | None"]


def choose_variant(policy: Policy, principal_id: str, model: str | None, request_id: str, now: float,
                   forbidden: Forbidden | None = None) -> Assignment | Refusal | None:
    """Assign a call to a variant. None: no running experiment takes `model`.

    `forbidden(upstream, model)` says why the caller may not reach a variant ((code, message)) or None;
    such variants are skipped. A Refusal when none remains: its code is `licence_not_allowed` when
    every skip was for a licence, else `experiment_no_variant`."""
    exp = find_experiment(policy, model, now)
    if exp is None:
        return None
    point = bucket(exp, principal_id if exp.sticky == "principal" else request_id)
    left: list[Variant] = []
    skipped: list[tuple[str, str, str]] = []
    for v in exp.variants:
        if v.weight <= 0:
            continue
        why = forbidden(v.upstream, v.model or model) if forbidden is not None else None
        if why is None:
            left.append(v)
        else:
            skipped.append((v.label, *why))
    if not left:
        codes = {c for _, c, _ in skipped}
        code = codes.pop() if len(codes) == 1 and "licence_not_allowed" in codes else "experiment_no_variant"
        reasons = "; ".join(f"{label}: {msg}" for label, _, msg in skipped)
        return Refusal(exp.name, code, f"Experiment {exp.name!r} has no variant this caller may use ({reasons})")
    v = pick(left, point)
    return Assignment(exp.name, v.label, v.upstream, v.model or model, point, tuple(s[0] for s in skipped))


# -------------------------------------------------------------------------------------- load-time checks


def _tokens(pattern: str) -> list[str]:
    """A glob as tokens: '*', '?' (any one character; [..] classes count as one) or a literal."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            j = pattern.find("]", i + 2)
            if j != -1:
                out.append("?")
                i = j + 1
                continue
        out.append("*" if ch == "*" else "?" if ch == "?" else "L" + ch)
        i += 1
    return out


def globs_overlap(a: str, b: str) -> bool:
    """Whether some name matches both globs (a character class counts as any character: conservative)."""
    ta, tb = _tokens(a), _tokens(b)
    seen: set[tuple[int, int]] = set()
    stack = [(0, 0)]
    while stack:
        i, j = stack.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(ta) and j == len(tb):
            return True
        if i < len(ta) and ta[i] == "*":
            stack.append((i + 1, j))
        if j < len(tb) and tb[j] == "*":
            stack.append((i, j + 1))
        if i < len(ta) and j < len(tb):
            x, y = ta[i], tb[j]
            if x.startswith("L") and y.startswith("L") and x != y:
                continue
            stack.append((i if x == "*" else i + 1, j if y == "*" else j + 1))
    return False


def _windows_overlap(a: Experiment, b: Experiment) -> bool:
    a0, a1 = a.start or float("-inf"), a.end or float("inf")
    b0, b1 = b.start or float("-inf"), b.end or float("inf")
    return a0 < b1 and b0 < a1


def experiment_errors(policy: Policy) -> Iterable[tuple[tuple[Any, ...], str]]:
    """(field path, message) for each problem: weights, unknown upstreams, variant models the upstream
    does not serve, duplicate names, empty windows, and experiments that could take the same model at
    the same time."""
    upstreams = {u.name: u for u in policy.upstreams}
    names: dict[str, int] = {}
    for i, e in enumerate(policy.experiments):
        if e.name in names:
            yield ("experiments", i, "name"), f"duplicate experiment name {e.name!r} (also experiments[{names[e.name]}])"
        names.setdefault(e.name, i)
        if not e.total_weight > 0:
            yield ("experiments", i, "variants"), (f"the variants' weights sum to {e.total_weight:g}: they must sum "
                                                   "to a positive number")
        labels: dict[str, int] = {}
        for j, v in enumerate(e.variants):
            if v.label in labels:
                yield ("experiments", i, "variants", j, "name"), (
                    f"duplicate variant {v.label!r} (also variants[{labels[v.label]}]): give each a name")
            labels.setdefault(v.label, j)
            up = upstreams.get(v.upstream)
            if up is None:
                yield ("experiments", i, "variants", j, "upstream"), (
                    f"unknown upstream {v.upstream!r}; known upstreams: {', '.join(upstreams)}")
                continue
            if v.model is not None and not any(p == "*" or fnmatch.fnmatchcase(v.model, p) for p in up.models):
                yield ("experiments", i, "variants", j, "model"), (
                    f"upstream {v.upstream!r} does not serve model {v.model!r} (its models: {', '.join(up.models)})")
        if e.start is not None and e.end is not None and e.end <= e.start:
            yield ("experiments", i, "end"), "end must be after start"
        for k in range(i):
            other = policy.experiments[k]
            if not _windows_overlap(e, other):
                continue
            for m, p in enumerate(e.models):
                hit = next((q for q in other.models if globs_overlap(p, q)), None)
                if hit is not None:
                    yield ("experiments", i, "models", m), (
                        f"overlaps experiment {other.name!r}: models {p!r} and {hit!r} can match the same model "
                        "while both run (a model belongs to one experiment at a time)")
                    break
