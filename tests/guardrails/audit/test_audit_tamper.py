"""Every kind of tampering is detected, on every sink, and reported at the first broken record."""

from __future__ import annotations

from typing import Any

import pytest
from audit_helpers import ALL_SINKS, SQL_SINKS, body
from audit_tamper import tamperer

from guardrails.audit import verify


def filled(make_store: Any, n: int = 35, every: int = 10) -> Any:
    store = make_store(every=every)
    for start in range(0, n, 7):
        store.append([body(i) for i in range(start, min(n, start + 7))])
    return store


def check(store: Any, settings: Any) -> Any:
    return verify(store, settings)


@ALL_SINKS
def test_intact_chain_verifies(make_store: Any, settings: Any) -> None:
    store = filled(make_store)
    store.checkpoint()
    rep = check(store, settings)
    assert rep.ok, rep.reason
    assert (rep.records, rep.first_seq, rep.last_seq, rep.last_checkpoint, rep.unsigned_tail) == (35, 1, 35, 35, 0)
    assert rep.checkpoints == 4  # 10, 20, 30 and the final one at 35


@ALL_SINKS
@pytest.mark.parametrize("attack,first_bad", [
    (lambda t: t.edit(13), 13),
    (lambda t: t.edit(13, rechain=True), 11),  # re-chained to hide it: caught by the signed checkpoint at 20
    (lambda t: t.edit(34, rechain=True), 31),  # after the last periodic checkpoint: caught by the final one
    (lambda t: t.delete(13), 13),
    (lambda t: t.delete(13, renumber=True), 11),
    (lambda t: t.insert(13), 15),  # a forged 14 links to 13; the old 14 (now 15) no longer fits
    (lambda t: t.insert(13, rechain=True), 11),
    (lambda t: t.swap(13, 17), 13),
    (lambda t: t.swap(34, 35), 34),
    (lambda t: t.truncate(25), 26),  # the tail was signed at 30 and 35
    (lambda t: t.truncate(31), 32),
    (lambda t: t.drop_mark(20), 11),  # the checkpoint at 30 names 20 as its predecessor
    (lambda t: t.forge_mark(20), 20),
])
def test_tampering_is_detected(make_store: Any, settings: Any, store_url: str, attack: Any, first_bad: int) -> None:
    store = filled(make_store)
    store.checkpoint()
    assert check(store, settings).ok
    t = tamperer(store_url)
    try:
        attack(t)
    finally:
        t.close()
    rep = check(store, settings)
    assert not rep.ok
    assert rep.first_bad_seq == first_bad, rep.reason
    assert rep.reason


@SQL_SINKS
def test_edited_index_column_is_detected(make_store: Any, settings: Any, store_url: str) -> None:
    store = filled(make_store)
    t = tamperer(store_url)
    t.set_column(8, "principal", "someone-else")  # would hide the record from --principal filters
    t.close()
    rep = check(store, settings)
    assert not rep.ok and rep.first_bad_seq == 8 and "column" in (rep.reason or "")


@SQL_SINKS
def test_truncation_that_also_rewinds_the_head_row_is_detected(make_store: Any, settings: Any, store_url: str) -> None:
    store = filled(make_store, n=30)  # last periodic checkpoint at 30
    t = tamperer(store_url)
    t.truncate(27, fix_head=True)
    t.close()
    rep = check(store, settings)
    assert not rep.ok and rep.first_bad_seq == 28 and "truncated" in (rep.reason or "")


@SQL_SINKS
def test_truncation_of_the_head_row_alone_is_detected(make_store: Any, settings: Any, store_url: str) -> None:
    store = filled(make_store, n=33)  # 31..33 not signed yet, but the head row remembers 33
    t = tamperer(store_url)
    t.truncate(32, fix_head=False)
    t.close()
    rep = check(store, settings)
    assert not rep.ok and rep.first_bad_seq == 33


def test_a_different_audit_key_cannot_verify_or_forge(make_store: Any, settings: Any, tmp_path: Any) -> None:
    from guardrails.settings import Settings

    store = filled(make_store, n=12)
    other = Settings(data_dir=tmp_path / "other", audit_key="not-the-key")
    rep = verify(store, other)
    assert not rep.ok and "no key" in (rep.reason or "")


def test_ed25519_checkpoints_verify_with_the_public_key_only(settings: Any, tmp_path: Any) -> None:
    from guardrails.audit import open_store
    from guardrails.audit.signing import PUBLIC_KEY_FILE, keygen
    from guardrails.settings import Settings

    _, pub = keygen(settings.data_dir)
    url = f"sqlite:///{tmp_path / 'ed.db'}"
    store = open_store(settings, url, checkpoint_every=5)
    store.append([body(i) for i in range(12)])
    store.checkpoint()
    marks = store.marks()
    assert marks and all('"alg":"ed25519"' in m.payload for m in marks)
    # a verifier with only the public key (no HMAC key, no private key)
    verifier_dir = tmp_path / "verifier"
    verifier_dir.mkdir()
    (verifier_dir / PUBLIC_KEY_FILE).write_bytes(pub.read_bytes())
    vs = Settings(data_dir=verifier_dir)
    rep = verify(store, vs)
    assert rep.ok, rep.reason
    t = tamperer(url)
    t.forge_mark(10)
    t.close()
    assert verify(store, vs).first_bad_seq == 10
    store.close()


@ALL_SINKS
def test_truncation_that_removes_its_checkpoints_is_caught_by_an_outside_note(make_store: Any, settings: Any,
                                                                              store_url: str) -> None:
    store = filled(make_store, n=30)
    store.checkpoint()
    noted = verify(store, settings)
    assert noted.ok and noted.last_checkpoint == 30 and noted.last_checkpoint_hash
    t = tamperer(store_url)
    t.truncate(20)
    for seq in (30,):
        t.drop_mark(seq)  # the attacker also removes the checkpoints that covered the cut
    t.close()
    assert verify(store, settings).ok  # undetectable from inside the store alone (documented) ...
    rep = verify(store, settings, expect=(30, noted.last_checkpoint_hash))
    assert not rep.ok and rep.first_bad_seq == 21 and "truncated" in (rep.reason or "")  # ... but not from outside
