"""One exception tree for everything trustwall raises on purpose."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.types import Decision


class TrustwallError(Exception):
    """Base of every error trustwall raises deliberately."""


class PolicyError(TrustwallError):
    """A policy file (or a part of one) is invalid. The message names file, line and field."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None, field: str | None = None):
        self.path = path
        self.line = line
        self.field = field
        where = []
        if path:
            where.append(str(path) + (f":{line}" if line else ""))
        if field:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DetectorError(TrustwallError):
    """A detector failed to load or to run."""

    def __init__(self, detector: str, message: str):
        self.detector = detector
        super().__init__(f"detector '{detector}': {message}")


class ConfigError(TrustwallError):
    """Settings or environment are unusable (bad data dir, missing key file, ...)."""


class AccessDenied(TrustwallError):
    """Authentication or authorisation failed. `status` is the HTTP status an adapter should use."""

    def __init__(self, message: str, *, status: int = 403, code: str = "permission_denied", retry_after: float | None = None):
        self.status = status
        self.code = code
        self.retry_after = retry_after
        super().__init__(message)


class Blocked(TrustwallError):
    """A guarded call was refused. Carries the decision (categories, request id, message)."""

    def __init__(self, decision: Decision):
        self.decision = decision
        cats = ", ".join(decision.blocking_categories or decision.categories) or "policy"
        msg = decision.message or "Request blocked by policy."
        super().__init__(f"{msg} [stage={decision.stage}; categories={cats}; request_id={decision.request_id}]")

    @property
    def categories(self) -> tuple[str, ...]:
        return self.decision.blocking_categories or self.decision.categories

    @property
    def request_id(self) -> str:
        return self.decision.request_id
