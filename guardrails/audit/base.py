"""The AuditSink protocol every store implements, and the small values they exchange.

A sink is synchronous and thread-safe; the AuditLog front (guardrails.audit.log) runs it off the event
loop. Appending stamps `seq` and `prev` on each body under the store's own lock (a database lock where
several processes or replicas share one chain), so the chain is one line whatever the concurrency.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from guardrails.audit.record import iso_time
from guardrails.audit.signing import Signer


@dataclass(frozen=True)
class Filters:
    """Export / stats filters. Times are unix seconds, `until` exclusive."""

    since: float | None = None
    until: float | None = None
    principal: str | None = None
    actions: tuple[str, ...] = ()

    def match(self, ts: float, principal: str, action: str) -> bool:
        return ((self.since is None or ts >= self.since) and (self.until is None or ts < self.until)
                and (self.principal is None or principal == self.principal)
                and (not self.actions or action in self.actions))


@dataclass(frozen=True)
class Stored:
    """One stored record: its indexed columns, its canonical body text and its hash."""

    seq: int
    id: str
    ts: float
    principal: str
    action: str
    model: str | None
    body: str
    hash: str

    def json_line(self) -> str:
        """The export line: the body with its hash added (still canonical, keys sorted)."""
        return self.body[:-1] + ',"hash":"' + self.hash + '"}' if self.body.endswith("}") else self.body

    def parsed(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass(frozen=True)
class Mark:
    """A signed checkpoint (`kind` checkpoint: the chain head at `seq` was `hash`) or prune anchor."""

    kind: str
    seq: int
    hash: str
    payload: str  # canonical JSON that was signed
    sig: str

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.payload)


@dataclass(frozen=True)
class PruneResult:
    anchor_seq: int | None
    deleted: int
    message: str


@dataclass
class Head:
    seq: int
    hash: str
    cp_seq: int
    chain: str
    extra: dict[str, Any] = field(default_factory=dict)


def make_mark(signer: Signer, chain: str, kind: str, seq: int, hash_: str, prev_cp: int, now: float,
              **extra: Any) -> Mark:
    from guardrails.audit.record import canonical

    payload = {"chain": chain, "kind": kind, "seq": seq, "hash": hash_, "prev_cp": prev_cp, "time": iso_time(now),
               "alg": signer.alg, "key_id": signer.key_id, **extra}
    return Mark(kind, seq, hash_, canonical(payload), signer.sign(payload))


@runtime_checkable
class AuditSink(Protocol):
    """A store of one hash chain. SQLite, PostgreSQL and JSONL implement it."""

    url: str

    def chain_id(self) -> str: ...

    def append(self, bodies: Sequence[dict[str, Any]]) -> int:
        """Stamp seq/prev on each body, store them (and a checkpoint at every multiple of
        checkpoint_every) atomically; return the last seq."""

    def checkpoint(self) -> Mark | None:
        """Sign the current head unless it is signed already."""

    def head(self) -> Head: ...

    def records(self, filters: Filters | None = None, *, batch: int = 1000) -> Iterator[Stored]:
        """Stored records in seq order, streamed."""

    def count(self, filters: Filters | None = None) -> int: ...

    def marks(self) -> list[Mark]: ...

    def prune(self, before: float) -> PruneResult: ...

    def close(self) -> None: ...
