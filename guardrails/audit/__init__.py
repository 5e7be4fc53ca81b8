"""The audit log: one tamper-evident, privacy-safe record per guarded call.

    from guardrails.audit import open_sink          # runtime: sink = open_sink(settings, policy)
    await sink.record(call_record); await sink.aclose()

    from guardrails.audit import open_store, verify, iter_export
    store = open_store(settings)                    # the AuditSink named by settings.audit_url
    report = verify(store, settings)                # VerifyReport(ok, first_bad_seq, reason, ...)
    async for chunk in iter_export(store, "jsonl", Filters(...)): ...

Stores (settings.audit_url): ``sqlite:///abs/path.db`` (default: DATA_DIR/audit.sqlite3),
``postgresql://user@host:5432/db[?schema=NAME]``, ``jsonl:///abs/path.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from guardrails.audit.base import AuditSink, Filters, Mark, PruneResult, Stored
from guardrails.audit.log import AuditLog, AuditUnavailable
from guardrails.audit.stores import DEFAULT_DB, default_url, open_store

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.audit.chain import VerifyReport
    from guardrails.policy import Policy
    from guardrails.settings import Settings

__all__ = [
    "DEFAULT_DB", "AuditLog", "AuditSink", "AuditUnavailable", "Filters", "Mark", "PruneResult", "Stored", "default_url",
    "iter_export", "open_sink", "open_store", "verify",
]

def open_sink(settings: Settings, policy: Policy) -> AuditLog:
    """What build_runtime calls: the configured store behind a bounded queue, per policy.audit."""
    cfg = policy.audit
    store = open_store(settings, checkpoint_every=cfg.checkpoint_every)
    return AuditLog(store, policy_id=policy.id, policy_version=policy.digest, text_mode=cfg.text,
                    hash_key=settings.hash_key_bytes() if cfg.text == "hash" else b"",
                    queue_size=cfg.queue_size, on_full=cfg.on_full,
                    wait_timeout_s=cfg.wait_timeout_s)


def verify(store: AuditSink, settings: Settings, *, public_key: Path | None = None,
           expect: tuple[int, str] | None = None) -> VerifyReport:
    from guardrails.audit.chain import verify_sink
    from guardrails.audit.signing import make_verifiers

    return verify_sink(store, make_verifiers(settings, public_key), expect=expect)


def __getattr__(name: str) -> Any:
    if name == "iter_export":
        from guardrails.audit.export import iter_export

        return iter_export
    raise AttributeError(f"module 'guardrails.audit' has no attribute {name!r}")
