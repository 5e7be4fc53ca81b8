"""API keys: created once (printed once), stored only as a hash, checked in constant time.

A key looks like `tw-<id>.<secret>`: the id (12 hex characters) is the public key id shown by
`trustwall keys list` and recorded in the audit log; the secret never leaves the creating command. The
store keeps sha256(secret) only. Back ends: SQLite in `settings.data_dir` (default) or PostgreSQL when
`settings.state_url` is a postgresql:// URL. Stores are synchronous and thread-safe; async callers use
`asyncio.to_thread` (the proxy does, behind a short cache).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from guardrails.errors import ConfigError
from guardrails.settings import Settings
from guardrails.types import Principal

KEY_PREFIX = "tw-"
_KEY_RE = re.compile(r"^tw-([0-9a-f]{12})\.([A-Za-z0-9_\-]{20,128})$")
_DUMMY_HASH = hashlib.sha256(b"trustwall-dummy").hexdigest()
_ROLE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


@dataclass(frozen=True)
class KeyInfo:
    """What the store knows about a key (never the key itself)."""

    id: str
    role: str
    name: str
    created_at: float
    revoked_at: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def principal(self) -> Principal:
        return Principal(id=f"key:{self.id}", role=self.role)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_key() -> tuple[str, str, str]:
    """(key id, full key, hash of its secret)."""
    kid = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    return kid, f"{KEY_PREFIX}{kid}.{secret}", _hash(secret)


class KeyStore(Protocol):
    def create(self, role: str, name: str = "") -> tuple[KeyInfo, str]: ...
    def list(self, include_revoked: bool = True) -> list[KeyInfo]: ...
    def revoke(self, key_id: str) -> bool: ...
    def has_active(self) -> bool: ...
    def verify(self, key: str) -> KeyInfo | None: ...
    def close(self) -> None: ...


class _BaseStore:
    """Shared logic and SQL; subclasses provide the connection and `_q` (SQL written with '?' placeholders)."""

    def _q(self, sql: str, args: tuple[Any, ...] = (), fetch: bool = True) -> Any:  # pragma: no cover - abstract
        """Run `sql` ('?' placeholders): the rows, or the row count when fetch is False."""
        raise NotImplementedError

    def create(self, role: str, name: str = "") -> tuple[KeyInfo, str]:
        self._check_role(role)
        kid, key, h = new_key()
        info = KeyInfo(kid, role, name, time.time())
        self._q("INSERT INTO trustwall_keys (id, role, name, hash, created_at) VALUES (?, ?, ?, ?, ?)",
                (kid, role, name, h, info.created_at), fetch=False)
        return info, key

    def list(self, include_revoked: bool = True) -> list[KeyInfo]:
        rows = self._q("SELECT id, role, name, created_at, revoked_at FROM trustwall_keys ORDER BY created_at")
        infos = [KeyInfo(*r) for r in rows]
        return infos if include_revoked else [i for i in infos if i.active]

    def revoke(self, key_id: str) -> bool:
        n = self._q("UPDATE trustwall_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                    (time.time(), key_id), fetch=False)
        return bool(n)

    def has_active(self) -> bool:
        return bool(self._q("SELECT 1 FROM trustwall_keys WHERE revoked_at IS NULL LIMIT 1"))

    def _fetch(self, key_id: str) -> tuple[str, KeyInfo] | None:
        rows = self._q("SELECT hash, id, role, name, created_at, revoked_at FROM trustwall_keys WHERE id = ?", (key_id,))
        if not rows:
            return None
        h, *rest = rows[0]
        return h, KeyInfo(*rest)

    def verify(self, key: str) -> KeyInfo | None:
        """The active key matching `key`, or None. The hash comparison is constant-time and runs even
        for unknown ids, so timing does not reveal which ids exist."""
        m = _KEY_RE.match(key.strip()) if key else None
        kid, secret = (m.group(1), m.group(2)) if m else ("", key or "")
        row = self._fetch(kid) if kid else None
        stored = row[0] if row is not None else _DUMMY_HASH
        ok = hmac.compare_digest(stored.encode(), _hash(secret).encode())
        if not ok or row is None or not row[1].active:
            return None
        return row[1]

    @staticmethod
    def _check_role(role: str) -> None:
        if not _ROLE_RE.match(role):
            raise ConfigError(f"invalid role name {role!r}")


class SQLiteKeyStore(_BaseStore):
    _SCHEMA = ("CREATE TABLE IF NOT EXISTS trustwall_keys (id TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL,"
               " hash TEXT NOT NULL, created_at REAL NOT NULL, revoked_at REAL)")

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(self._SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open key store {self.path}: {exc}") from None
        self._lock = threading.Lock()

    def _q(self, sql: str, args: tuple[Any, ...] = (), fetch: bool = True) -> Any:
        with self._lock:
            cur = self._conn.execute(sql, args)
            return cur.fetchall() if fetch else cur.rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class PostgresKeyStore(_BaseStore):
    """One connection (autocommit) guarded by a lock; reconnects once if the server dropped it."""

    _SCHEMA = ("CREATE TABLE IF NOT EXISTS trustwall_keys (id TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL,"
               " hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, revoked_at DOUBLE PRECISION)")

    def __init__(self, url: str, table: str = "trustwall_keys"):
        if not re.match(r"^[a-z_][a-z0-9_]{0,62}$", table):
            raise ConfigError(f"invalid table name {table!r}")
        self.url = url
        self.table = table
        self._lock = threading.Lock()
        self._conn: Any = None
        with self._lock:
            self._connect()

    def _connect(self) -> None:
        import psycopg

        try:
            self._conn = psycopg.connect(self.url, autocommit=True, connect_timeout=10)
            self._conn.execute(self._SCHEMA.replace("trustwall_keys", self.table))
        except psycopg.Error as exc:
            raise ConfigError(f"cannot open key store at PostgreSQL: {type(exc).__name__}") from None

    def _q(self, sql: str, args: tuple[Any, ...] = (), fetch: bool = True) -> Any:
        import psycopg

        sql = sql.replace("trustwall_keys", self.table).replace("?", "%s")
        with self._lock:
            for attempt in (0, 1):
                try:
                    cur = self._conn.execute(sql, args)
                    return cur.fetchall() if fetch else cur.rowcount
                except psycopg.OperationalError:
                    if attempt:
                        raise
                    self._connect()
        raise AssertionError("unreachable")  # pragma: no cover

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def open_key_store(settings: Settings) -> KeyStore:
    """The store named by settings.state_url: postgresql://... or sqlite:///path; default
    SQLite at <data_dir>/keys.sqlite3."""
    url = settings.state_url
    if url is None:
        return SQLiteKeyStore(settings.ensure_data_dir() / "keys.sqlite3")
    if url.startswith(("postgresql://", "postgres://")):
        return PostgresKeyStore(url)
    if url.startswith("sqlite:///"):
        return SQLiteKeyStore(url[len("sqlite:///"):])
    raise ConfigError("state_url must be postgresql://... or sqlite:///PATH")


class KeyCache:
    """A short-lived in-process view of the store, so the hot path does not query it on every call.

    `ttl_s` bounds how long a revoked key keeps working and how long a newly created first key takes to
    close keyless access. Verified keys are cached by sha256 of the presented key, never the key. Store
    queries run in a worker thread (the store may be a remote PostgreSQL).
    """

    def __init__(self, store: KeyStore, ttl_s: float = 1.0, clock: Any = time.monotonic):
        self.store = store
        self.ttl_s = ttl_s
        self._clock = clock
        self._exists: tuple[float, bool] | None = None
        self._verified: dict[str, tuple[float, KeyInfo | None]] = {}

    async def has_active(self) -> bool:
        import asyncio

        now = self._clock()
        if self._exists is not None and now - self._exists[0] < self.ttl_s:
            return self._exists[1]
        val = await asyncio.to_thread(self.store.has_active)
        self._exists = (now, val)
        return val

    async def verify(self, key: str) -> KeyInfo | None:
        import asyncio

        now = self._clock()
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        hit = self._verified.get(digest)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        info = await asyncio.to_thread(self.store.verify, key)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[digest] = (now, info)
        return info
