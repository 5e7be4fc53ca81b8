"""Core value types shared by the pipeline, detectors, adapters and the audit log.

Everything here is a plain, immutable value (or a small per-request container) so the core stays pure:
no I/O, no model, no global state.
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pragma: no cover - typing only
    from guardrails.vault import Vault

Stage = Literal["input", "output"]
STAGES: tuple[Stage, ...] = ("input", "output")


class Action(enum.IntEnum):
    """What the pipeline does about a request. Ordered: the most severe action wins."""

    ALLOW = 0
    FLAG = 1
    REDACT = 2
    ROUTE = 3
    BLOCK = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, value: str | Action) -> Action:
        if isinstance(value, Action):
            return value
        try:
            return cls[value.upper()]
        except KeyError:
            raise ValueError(f"unknown action {value!r}") from None

    def __str__(self) -> str:  # pragma: no cover - cosmetic
        return self.label


class Operator(str, enum.Enum):
    """How a redacted span is rewritten (only meaningful with Action.REDACT)."""

    REDACT = "redact"  # <EMAIL_ADDRESS>
    MASK = "mask"  # ********1234
    HASH = "hash"  # <EMAIL_ADDRESS:9f2c...> keyed HMAC-SHA256
    PSEUDONYMISE = "pseudonymise"  # <PERSON_1>, restored on the way back


@dataclass(frozen=True, slots=True)
class Message:
    """One chat message. `content` is the text the detectors see."""

    role: str
    content: str

    @classmethod
    def user(cls, content: str) -> Message:
        return cls("user", content)


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing a detector found.

    `span` is a half-open range of code-point offsets into the text the detector was given, or None
    when the finding is about the whole text. `evidence` must never hold a raw sensitive value: it may
    hold ids, offsets, rule names, scores.
    """

    detector: str
    category: str
    score: float
    span: tuple[int, int] | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    message_index: int | None = None

    def with_message(self, index: int) -> Finding:
        return Finding(self.detector, self.category, self.score, self.span, self.evidence, index)

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector,
            "category": self.category,
            "score": round(float(self.score), 6),
            "span": list(self.span) if self.span is not None else None,
            "message_index": self.message_index,
            "evidence": dict(self.evidence),
        }


@dataclass(frozen=True, slots=True)
class Judgement:
    """A finding with what the policy decided about it."""

    finding: Finding
    action: Action
    operator: Operator | None = None
    rule: str = ""  # "detector/category" that matched, for explanations
    keep_last: int | None = None  # for Operator.MASK: characters left visible (from the rule)

    def to_dict(self) -> dict[str, Any]:
        d = self.finding.to_dict()
        d["action"] = self.action.label
        d["operator"] = self.operator.value if self.operator else None
        return d


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an API key id (never the key) or a name the embedding app supplies."""

    id: str
    role: str


ANONYMOUS = Principal(id="anonymous", role="local")


@dataclass(slots=True)
class CallContext:
    """Per-call state. One per request; never shared between requests.

    The vault (pseudonym mapping) lives here and only here: it is never global, logged or audited.
    """

    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    principal: Principal = ANONYMOUS
    model: str | None = None
    upstream: str | None = None
    route: str | None = None  # "proxy", "decorator", "cli"
    vault: Vault | None = None
    # The message role each input text came from ("user", "system", "assistant", "tool", ...; None when
    # unknown), parallel to the input texts; set by the adapters. Detectors may scope themselves by it
    # (the injection detector reads user and tool messages, not the developer's system prompt).
    roles: tuple[str | None, ...] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # caller-supplied, safe to audit
    cache: dict[Any, Any] = field(default_factory=dict, repr=False)  # per-call memo (parses), never audited

    def ensure_vault(self) -> Vault:
        if self.vault is None:
            from guardrails.vault import Vault

            self.vault = Vault()
        return self.vault


@dataclass(frozen=True, slots=True)
class CheckTiming:
    detector: str
    stage: Stage
    ms: float
    status: Literal["ok", "error", "timeout", "skipped"] = "ok"

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "stage": self.stage, "ms": round(self.ms, 3), "status": self.status}


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one stage (input or output).

    `texts` are the texts to pass on (redacted / pseudonymised), one per input text, in order.
    """

    stage: Stage
    action: Action
    judgements: tuple[Judgement, ...]
    texts: tuple[str, ...]
    timings: tuple[CheckTiming, ...] = ()
    policy_id: str = ""
    policy_version: str = ""
    request_id: str = ""
    upstream: str | None = None  # where a ROUTE decision sends the call
    route_rule: str | None = None  # which route rule fired and why
    message: str | None = None  # the refusal text shown on block
    errors: tuple[str, ...] = ()  # detector names that failed (crash or timeout)

    @property
    def blocked(self) -> bool:
        return self.action is Action.BLOCK

    @property
    def findings(self) -> tuple[Finding, ...]:
        return tuple(j.finding for j in self.judgements)

    @property
    def categories(self) -> tuple[str, ...]:
        """Categories that led to a non-allow action, sorted, unique."""
        return tuple(sorted({j.finding.category for j in self.judgements if j.action > Action.ALLOW}))

    @property
    def blocking_categories(self) -> tuple[str, ...]:
        return tuple(sorted({j.finding.category for j in self.judgements if j.action is Action.BLOCK}))

    @property
    def text(self) -> str:
        """The single passed-on text (for single-text checks)."""
        return self.texts[0] if self.texts else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "action": self.action.label,
            "text": self.text if len(self.texts) == 1 else None,
            "texts": list(self.texts),
            "findings": [j.to_dict() for j in self.judgements],
            "categories": list(self.categories),
            "timings": [t.to_dict() for t in self.timings],
            "policy_id": self.policy_id,
            "policy_version": self.policy_version,
            "request_id": self.request_id,
            "upstream": self.upstream,
            "route_rule": self.route_rule,
            "message": self.message,
            "errors": list(self.errors),
        }


def max_action(actions: Sequence[Action] | Any) -> Action:
    return max(actions, default=Action.ALLOW)


@dataclass(slots=True)
class CallRecord:
    """Everything the audit log needs about one guarded call. Built by adapters, consumed by the
    audit sink, which decides what text to keep (none / redacted / keyed hashes). Holds no vault."""

    request_id: str
    principal: Principal
    route: str  # proxy path, "decorator", "cli"
    model: str | None
    upstream: str | None
    input: Decision | None
    output: Decision | None
    started_at: float  # unix time
    upstream_ms: float | None = None
    total_ms: float | None = None
    status: int | None = None  # HTTP-like status of the outcome (200, 400, 403, 502, ...)
    error: str | None = None  # error class / code, never raw content
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    final_action: Action = Action.ALLOW
    streamed: bool = False
    experiment: str | None = None  # the experiment that assigned this call (guardrails.experiments)
    variant: str | None = None  # its variant
    licence: str | None = None  # the licence id of the model used (guardrails.licences)
    # non-text parts forwarded unchecked (issue 17): (kind, count), e.g. (("image_url", 2),)
    unchecked: tuple[tuple[str, int], ...] = ()
