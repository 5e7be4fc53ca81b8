"""Checkpoint signatures: HMAC-SHA256 with the audit key (default), Ed25519 when a key pair is configured.

A key pair is configured by placing ``audit_ed25519.pem`` (PKCS#8 private key, 0600) in the data dir,
e.g. with ``trustwall audit keygen``; verifiers then need only ``audit_ed25519.pub`` (or
``--public-key``). `cryptography` is imported only on that path.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from guardrails.audit.record import canonical
from guardrails.errors import ConfigError

PRIVATE_KEY_FILE = "audit_ed25519.pem"
PUBLIC_KEY_FILE = "audit_ed25519.pub"


class Signer(Protocol):
    alg: str
    key_id: str

    def sign(self, payload: dict[str, Any]) -> str: ...


@dataclass(frozen=True)
class HmacSigner:
    key: bytes
    alg: str = "hmac-sha256"

    @property
    def key_id(self) -> str:
        return hmac.new(self.key, b"trustwall-audit-key-id", hashlib.sha256).hexdigest()[:16]

    def sign(self, payload: dict[str, Any]) -> str:
        return hmac.new(self.key, canonical(payload).encode(), hashlib.sha256).hexdigest()

    def verify(self, payload: dict[str, Any], sig: str) -> bool:
        return hmac.compare_digest(self.sign(payload), sig)


class Ed25519Signer:
    alg = "ed25519"

    def __init__(self, private_key: Any):
        self._key = private_key
        self.verifier = Ed25519Verifier(private_key.public_key())
        self.key_id = self.verifier.key_id

    def sign(self, payload: dict[str, Any]) -> str:
        return self._key.sign(canonical(payload).encode()).hex()


class Ed25519Verifier:
    alg = "ed25519"

    def __init__(self, public_key: Any):
        from cryptography.hazmat.primitives import serialization

        self._pub = public_key
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.key_id = hashlib.sha256(raw).hexdigest()[:16]

    def verify(self, payload: dict[str, Any], sig: str) -> bool:
        from cryptography.exceptions import InvalidSignature

        try:
            self._pub.verify(bytes.fromhex(sig), canonical(payload).encode())
            return True
        except (InvalidSignature, ValueError):
            return False


def _load_private(path: Path) -> Any:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read audit signing key {path}: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519Verifier:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read audit public key {path}: {type(exc).__name__}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path} is not an Ed25519 public key")
    return Ed25519Verifier(key)


def make_signer(settings: Any) -> Signer:
    """Ed25519 when the data dir holds a private key, else HMAC with settings.audit_key_bytes()."""
    pem = Path(settings.data_dir) / PRIVATE_KEY_FILE
    if pem.exists():
        return Ed25519Signer(_load_private(pem))
    return HmacSigner(settings.audit_key_bytes())


def make_verifiers(settings: Any, public_key: Path | None = None) -> dict[str, Any]:
    """Every verifier available here, by key id: the HMAC key (when readable) and Ed25519 public keys."""
    out: dict[str, Any] = {}
    try:
        h = HmacSigner(settings.audit_key_bytes())
        out[h.key_id] = h
    except (OSError, ConfigError):
        pass
    data = Path(settings.data_dir)
    candidates = [public_key] if public_key is not None else []
    candidates.append(data / PUBLIC_KEY_FILE)
    for cand in candidates:
        if cand is not None and Path(cand).exists():
            v = load_public_key(Path(cand))
            out[v.key_id] = v
    if public_key is None and (data / PRIVATE_KEY_FILE).exists():
        v = Ed25519Signer(_load_private(data / PRIVATE_KEY_FILE)).verifier
        out[v.key_id] = v
    return out


def keygen(data_dir: Path, *, overwrite: bool = False) -> tuple[Path, Path]:
    """Write a new Ed25519 key pair into the data dir (private key 0600)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    data_dir.mkdir(parents=True, exist_ok=True)
    priv, pub = data_dir / PRIVATE_KEY_FILE, data_dir / PUBLIC_KEY_FILE
    if priv.exists() and not overwrite:
        raise ConfigError(f"{priv} exists; refusing to replace a signing key (--force to override)")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    if priv.exists():
        priv.unlink()
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub
