"""Process settings from the environment (prefix TRUSTWALL_) or explicit arguments.

Secrets (the hashing key, the audit key) are generated into the data dir on first use when not given,
with 0600 permissions, and are never printed or logged.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from guardrails.errors import ConfigError



def default_policy_path() -> Path:
    """The embedded default policy, shipped inside the installed package as guardrails.rules."""
    from importlib.resources import files

    return Path(str(files("guardrails.rules").joinpath("default.yaml")))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRUSTWALL_", extra="ignore")

    policy: Path | None = Field(None, description="policy YAML; default: the embedded rules/default.yaml")
    data_dir: Path = Field(Path(".trustwall"), description="audit log, keys, indexes; created on first use")
    eval_data: Path = Field(Path("../shared/eval-data"), description="public evaluation suites for benchmarks")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    audit_url: str | None = Field(None, description="sqlite:///path, postgresql://..., jsonl:///path; default SQLite in data_dir")
    state_url: str | None = Field(None, description="where API keys live; default SQLite in data_dir")
    redis_url: str | None = Field(None, description="shared rate limits across replicas")
    hash_key: SecretStr | None = Field(None, description="HMAC key for the hash operator and audit text hashes")
    audit_key: SecretStr | None = Field(None, description="HMAC key that signs audit checkpoints")
    models_dir: Path | None = Field(None, description="extra model directories (converted Detoxify etc.)")
    log_level: str = "INFO"
    max_inflight: int | None = Field(None, ge=1, description="load shedding: at most this many guarded calls in "
                                                             "flight per process; more get 503 + Retry-After")
    blas_threads: int | None = Field(None, ge=1, description="cap numpy's BLAS threads process-wide (the spaCy pipelines' matrix products); the proxy uses 1 unless set: small products gain nothing from a second thread, which spins on a core the other detectors need")

    def policy_path(self) -> Path:
        return self.policy if self.policy is not None else default_policy_path()

    def ensure_data_dir(self) -> Path:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create data dir {self.data_dir}: {exc}") from None
        return self.data_dir

    def _secret(self, given: SecretStr | None, filename: str) -> bytes:
        if given is not None:
            return given.get_secret_value().encode()
        path = self.ensure_data_dir() / filename
        if not path.exists():
            key = secrets.token_hex(32)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(key)
        return path.read_text().strip().encode()

    def hash_key_bytes(self) -> bytes:
        return self._secret(self.hash_key, "hash.key")

    def audit_key_bytes(self) -> bytes:
        return self._secret(self.audit_key, "audit.key")
