"""Where a guarded call goes and under which licence: the experiment variant (if one takes the model)
and the licence check, in one pure function every path calls (proxy, @guard, wrap_openai).

    plan = plan_call(policy, principal, model, upstream, request_id)   # AccessDenied 403 when refused
    ... the input checks; a data route may change the upstream:
    plan = replan_for_route(policy, principal, plan, routed_upstream)  # licence of the routed upstream
    CallRecord(..., **plan.record_fields())
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from guardrails import access
from guardrails.errors import AccessDenied
from guardrails.experiments import Assignment, Refusal, choose_variant
from guardrails.licences import LICENCE_NOT_ALLOWED, check_licence, licence_of, licence_refusal
from guardrails.types import Action, Decision, Principal

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.policy import Policy

T = TypeVar("T")


@dataclass(frozen=True)
class Plan:
    upstream: str
    model: str | None  # the model sent upstream
    experiment: str | None = None
    variant: str | None = None
    licence: str | None = None

    def record_fields(self) -> dict[str, Any]:
        """The CallRecord fields this plan fills in."""
        return {"experiment": self.experiment, "variant": self.variant, "licence": self.licence}


def plan_call(policy: Policy, principal: Principal, model: str | None, upstream: str, request_id: str,
              now: float | None = None) -> Plan:
    """The upstream and model of a call (an experiment's variant, else `upstream`, the one the path would
    use) and its licence. Raises AccessDenied (403) when no variant is left for the caller's role
    (`experiment_no_variant`) or the role may not use the licence (`licence_not_allowed`)."""
    role = access.role_of(policy, principal)

    def forbidden(up: str, m: str | None) -> tuple[str, str] | None:
        if not access.upstream_allowed(role, up):
            return "upstream_not_allowed", f"role {principal.role!r} may not use upstream {up!r}"
        if m is not None and not access.model_allowed(role, m):
            return "model_not_allowed", f"role {principal.role!r} may not use model {m!r}"
        try:
            spec = licence_of(policy.upstream(up), m)
        except KeyError:
            return "upstream_unknown", f"upstream {up!r} is not configured"
        why = licence_refusal(role, principal, up, m, spec)
        return (LICENCE_NOT_ALLOWED, why) if why is not None else None

    got = choose_variant(policy, principal.id, model, request_id, time.time() if now is None else now, forbidden)
    if isinstance(got, Refusal):
        raise AccessDenied(got.message + ".", status=got.status, code=got.code)
    if isinstance(got, Assignment):
        spec = check_licence(policy, role, principal, got.upstream, got.model)
        return Plan(got.upstream, got.model, got.experiment, got.variant, spec.id if spec else None)
    spec = check_licence(policy, role, principal, upstream, model)
    return Plan(upstream, model, licence=spec.id if spec else None)


def replan_for_route(policy: Policy, principal: Principal, plan: Plan, upstream: str) -> Plan:
    """A data route sent the call to `upstream`: check that upstream's licence for the model. The
    experiment fields stay (reports count calls by assigned variant: intent to treat)."""
    if upstream == plan.upstream:
        return plan
    role = access.role_of(policy, principal)
    spec = check_licence(policy, role, principal, upstream, plan.model)
    return dataclasses.replace(plan, upstream=upstream, licence=spec.id if spec else None)


def pick_target(default: T, routes: Mapping[str, T], dec: Decision, plan: Plan | None, own: str) -> T | Decision:
    """For @guard and wrap_openai: what to call: a data route's target, else the experiment variant's
    (`routes[upstream]`), else `default` (which stands for upstream `own`). A Decision to refuse when
    the upstream has no target (fail closed)."""
    if dec.action is Action.ROUTE and dec.upstream is not None:
        name, why = dec.upstream, f"The policy routes this request to upstream {dec.upstream!r}"
    elif plan is not None and plan.experiment is not None and plan.upstream != own:
        name, why = plan.upstream, (f"Experiment {plan.experiment!r} assigns this call to upstream {plan.upstream!r} "
                                    f"(variant {plan.variant!r})")
    else:
        return default
    target = routes.get(name)
    if target is None:
        return dataclasses.replace(dec, action=Action.BLOCK, message=(
            f"{why}, which was not provided (pass routes={{name: function or client}})."))
    return target
