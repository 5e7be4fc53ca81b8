"""Access control, pure: principals, roles from `policy.access`, model globs, data categories per
upstream, restoration rights, and the first-run rule. No I/O: the key store (guardrails.keys) and the
rate limiter (guardrails.ratelimit) are adapters around it.

Denials are `AccessDenied(message, status=..., code=...)`: 401 (no or bad key), 403 (model or data
category not allowed), 413 (request too large). Adapters turn them into their own error shapes.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from guardrails.errors import AccessDenied
from guardrails.policy import Policy, Role
from guardrails.types import Action, Decision, Principal

# Actions under which a category reaches the upstream as it is (not rewritten): a flagged value is
# passed on, and a routed one is sent unredacted to the route's upstream. Redacted values never leave,
# blocked requests never leave, and categories a policy explicitly allows are not sensitive by policy.
PASSING_ACTIONS = (Action.FLAG, Action.ROUTE)


def is_loopback(host: str | None) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, 'localhost')."""
    if not host:
        return False
    h = host.strip().strip("[]")
    if h.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def glob_match(name: str, patterns: Iterable[str]) -> bool:
    """Case-sensitive glob match of a name against any of the patterns ('*' matches everything)."""
    return any(p == "*" or fnmatch.fnmatchcase(name, p) for p in patterns)


def role_of(policy: Policy, principal: Principal) -> Role:
    """The policy role of a principal. An unknown role (a key created for a role since removed from
    the policy) is a 403, never a silent fallback."""
    role = policy.access.roles.get(principal.role)
    if role is None:
        raise AccessDenied(f"role {principal.role!r} is not defined by the policy", status=403, code="unknown_role")
    return role


@dataclass(frozen=True)
class FirstRun:
    """Whether keyless calls are accepted: no key exists yet and the server is reachable only locally
    (or the operator said --allow-anonymous), and the policy names an anonymous role."""

    anonymous_role: str | None
    loopback: bool
    allow_anonymous: bool = False

    def keyless_principal(self, keys_exist: bool) -> Principal | None:
        if keys_exist or self.anonymous_role is None:
            return None
        if self.loopback or self.allow_anonymous:
            return Principal(id="anonymous", role=self.anonymous_role)
        return None


def startup_error(policy: Policy, host: str, keys_exist: bool, allow_anonymous: bool) -> str | None:
    """Why the server must not start (None when it may): a non-loopback bind with no key created
    would serve anyone on the network keyless unless the operator explicitly allowed that."""
    if keys_exist or is_loopback(host) or allow_anonymous or policy.access.anonymous_role is None:
        return None
    return (f"refusing to listen on {host} with no API key created: anyone who can reach it could call "
            "models. Create a key first (`trustwall keys create --role NAME`), bind to 127.0.0.1, "
            "or pass --allow-anonymous.")


def authenticate(presented: str | None, found: Principal | None, keys_exist: bool, first_run: FirstRun) -> Principal:
    """Pick the principal of a call. `found` is what the key store resolved `presented` to.

    Before any key exists (first run), whatever key a client sends is ignored and the call runs as the
    anonymous role, so a stock client with a dummy key works at once. After that a valid key is needed.
    """
    if not keys_exist:
        anon = first_run.keyless_principal(False)
        if anon is not None:
            return anon
        raise AccessDenied("An API key is required: create one with `trustwall keys create --role NAME`.",
                           status=401, code="invalid_api_key")
    if found is not None:
        return found
    if presented:
        raise AccessDenied("Incorrect API key provided.", status=401, code="invalid_api_key")
    raise AccessDenied("You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.",
                       status=401, code="missing_api_key")


def check_size(role: Role, size: int) -> None:
    if size > role.max_request_bytes:
        raise AccessDenied(f"Request body of {size} bytes exceeds this role's limit of {role.max_request_bytes} bytes.",
                           status=413, code="request_too_large")


def model_allowed(role: Role, model: str) -> bool:
    return glob_match(model, role.models)


def check_model(role: Role, principal: Principal, model: str) -> None:
    if not model_allowed(role, model):
        raise AccessDenied(f"Role {principal.role!r} may not use model {model!r}.", status=403, code="model_not_allowed")


def allowed_categories(role: Role, upstream: str) -> list[str]:
    """Data categories this role may send unredacted to `upstream` (a specific entry wins over '*')."""
    if upstream in role.upstreams:
        return list(role.upstreams[upstream])
    return list(role.upstreams.get("*", []))


def passing_categories(decision: Decision) -> tuple[str, ...]:
    """Categories of the input decision that would reach the upstream as they are."""
    return tuple(sorted({j.finding.category for j in decision.judgements if j.action in PASSING_ACTIONS}))


def upstream_allowed(role: Role, upstream: str) -> bool:
    return upstream in role.upstreams or "*" in role.upstreams


def check_categories(role: Role, principal: Principal, upstream: str, categories: Sequence[str]) -> None:
    """403 when the role may not use `upstream` at all, or may not send one of `categories` to it."""
    if not upstream_allowed(role, upstream):
        raise AccessDenied(f"Role {principal.role!r} may not use upstream {upstream!r}.", status=403,
                           code="upstream_not_allowed")
    allowed = allowed_categories(role, upstream)
    denied = [c for c in categories if not glob_match(c, allowed)]
    if denied:
        raise AccessDenied(f"Role {principal.role!r} may not send data of categories {', '.join(denied)} to upstream "
                           f"{upstream!r}.", status=403, code="category_not_allowed")


def restore_allowed(role: Role, category: str) -> bool:
    """Whether pseudonyms of `category` are restored for `role`. Both sides are compared in the vault's form
    (upper case, '_' for other characters), so `restore: [email-address]` matches EMAIL_ADDRESS."""
    import re

    from guardrails.vault import placeholder_category

    patterns = [re.sub(r"[^A-Za-z0-9*?]", "_", p.upper()) for p in role.restore]
    return glob_match(placeholder_category(category), patterns)


def visible_models(role: Role, candidates: Iterable[str]) -> list[str]:
    """The models of `candidates` this role may use, sorted, unique."""
    return sorted({m for m in candidates if model_allowed(role, m)})
