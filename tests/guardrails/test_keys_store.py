"""guardrails.keys: SQLite and PostgreSQL stores, hashing, constant-time verification, the cache."""

from __future__ import annotations

import uuid

import pytest

from guardrails.errors import ConfigError
from guardrails.keys import KeyCache, PostgresKeyStore, SQLiteKeyStore, open_key_store
from guardrails.settings import Settings


def _exercise(store) -> None:  # noqa: ANN001
    assert not store.has_active() and store.list() == []
    info, key = store.create("user", "ci")
    assert key.startswith(f"tw-{info.id}.") and len(key) > 40
    assert store.has_active()
    assert store.verify(key) == info
    assert store.verify(key + "x") is None
    assert store.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.verify("tw-000000000000." + "a" * 43) is None
    assert store.verify("") is None and store.verify("sk-not-ours") is None
    assert [i.id for i in store.list()] == [info.id]
    assert store.revoke(info.id) and not store.revoke(info.id)
    assert store.verify(key) is None and not store.has_active()
    assert store.list(include_revoked=False) == [] and not store.list()[0].active
    with pytest.raises(ConfigError):
        store.create("bad role!")


def test_sqlite_store_keeps_only_hashes(tmp_path):
    store = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    _exercise(store)
    _, key = store.create("admin")
    store.close()
    raw = (tmp_path / "keys.sqlite3").read_bytes()
    secret = key.split(".", 1)[1]
    assert secret.encode() not in raw
    again = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    assert again.verify(key).role == "admin"
    again.close()


@pytest.mark.postgres
def test_postgres_store():
    table = f"trustwall_keys_test_{uuid.uuid4().hex[:8]}"
    store = PostgresKeyStore("postgresql://postgres@127.0.0.1:5432/test", table=table)
    try:
        _exercise(store)
    finally:
        store._q("DROP TABLE trustwall_keys", fetch=False)  # the store maps the name to its table
        store.close()


def test_open_key_store(tmp_path):
    s = open_key_store(Settings(data_dir=tmp_path))
    assert isinstance(s, SQLiteKeyStore) and s.path == tmp_path / "keys.sqlite3"
    s.close()
    s = open_key_store(Settings(data_dir=tmp_path, state_url=f"sqlite:///{tmp_path}/other.db"))
    assert s.path == tmp_path / "other.db"
    s.close()
    with pytest.raises(ConfigError):
        open_key_store(Settings(data_dir=tmp_path, state_url="mysql://x"))


async def test_cache_expires(tmp_path):
    now = [0.0]
    store = SQLiteKeyStore(tmp_path / "k.db")
    cache = KeyCache(store, ttl_s=1.0, clock=lambda: now[0])
    assert not await cache.has_active()
    info, key = store.create("user")
    assert not await cache.has_active()  # cached for ttl
    now[0] = 1.5
    assert await cache.has_active()
    assert (await cache.verify(key)) == info
    store.revoke(info.id)
    assert (await cache.verify(key)) == info
    now[0] = 3.0
    assert await cache.verify(key) is None
    store.close()
