"""Who is calling, in-process: a ContextVar (not module state), so each thread or task sees only
what its own context set. `trustwall_principal(...)` scopes it; `current_principal()` reads it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

from guardrails.types import ANONYMOUS, Principal

if TYPE_CHECKING:  # pragma: no cover

    pass

# ------------------------------------------------------------------------------------------ principal

# A ContextVar, not mutable module state: each thread / task sees only what its own context set.
_PRINCIPAL: ContextVar[Principal | None] = ContextVar("trustwall_principal", default=None)


def as_principal(value: Principal | str, role: str = ANONYMOUS.role) -> Principal:
    """A Principal from a Principal or an id string (with `role`)."""
    if isinstance(value, Principal):
        return value
    if isinstance(value, str) and value:
        return Principal(id=value, role=role)
    raise TypeError(f"a principal is a guardrails.Principal or a non-empty id string, not {type(value).__name__}")


@contextlib.contextmanager
def trustwall_principal(principal: Principal | str, role: str = ANONYMOUS.role) -> Iterator[Principal]:
    """Run guarded calls in this block (this thread / task and what it awaits) as `principal`.

        with trustwall_principal(Principal("alice", "user")):
            ask("...")        # audited as alice; pseudonyms restored as the 'user' role allows
    """
    p = as_principal(principal, role)
    token = _PRINCIPAL.set(p)
    try:
        yield p
    finally:
        _PRINCIPAL.reset(token)


def current_principal() -> Principal | None:
    """The principal set by the innermost `trustwall_principal` block, if any."""
    return _PRINCIPAL.get()
