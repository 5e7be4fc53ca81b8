"""Which audit store a URL names: SQLite (default, in the data dir), PostgreSQL or JSONL."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from guardrails.audit.base import AuditSink
from guardrails.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.audit.signing import Signer
    from guardrails.settings import Settings

DEFAULT_DB = "audit.sqlite3"


def default_url(settings: Settings) -> str:
    return settings.audit_url or f"sqlite:///{(Path(settings.data_dir) / DEFAULT_DB).resolve()}"


def _path_of(url: str, scheme: str) -> Path:
    rest = url[len(scheme) + 3:]
    if rest.startswith("//"):  # sqlite:////abs (SQLAlchemy style)
        rest = rest[1:]
    if not rest:
        raise ConfigError(f"audit_url {url!r} names no file")
    return Path(rest)


def open_store(settings: Settings, url: str | None = None, *, checkpoint_every: int = 1000,
               signer: Signer | None = None) -> AuditSink:
    """The AuditSink for `url` (default: settings.audit_url, else SQLite in the data dir)."""
    from guardrails.audit.signing import make_signer

    url = url or default_url(settings)
    signer = signer or make_signer(settings)
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        from guardrails.audit.sql import SqliteSink

        return SqliteSink(_path_of(url, "sqlite"), signer, checkpoint_every)
    if scheme in ("postgresql", "postgres"):
        from guardrails.audit.sql import PostgresSink

        return PostgresSink(url, signer, checkpoint_every)
    if scheme == "jsonl":
        from guardrails.audit.jsonl import JsonlSink

        return JsonlSink(_path_of(url, "jsonl"), signer, checkpoint_every)
    raise ConfigError(f"unsupported audit_url {url.split('@')[-1]!r}: use sqlite:///..., postgresql://... or jsonl:///...")
