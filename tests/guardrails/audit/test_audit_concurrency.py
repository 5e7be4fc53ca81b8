"""1,000 records from 50 concurrent writers form one valid chain (SQLite and the real PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from audit_helpers import SQL_SINKS, body, make_policy, traffic

from guardrails.audit import AuditLog, open_store, verify

WRITERS = 50
PER_WRITER = 20


def _check(settings: Any, url: str, expect: int) -> None:
    store = open_store(settings, url)
    try:
        rep = verify(store, settings)
        assert rep.ok, rep.reason
        assert rep.records == expect and rep.first_seq == 1 and rep.last_seq == expect
        ids = [r.id for r in store.records()]
        assert len(set(ids)) == expect
    finally:
        store.close()


@SQL_SINKS
def test_fifty_threads_on_separate_connections_form_one_chain(settings: Any, store_url: str) -> None:
    """Fifty writers, each appending through its own connection (replicas), batches of 1-3."""
    replicas = 50 if store_url.startswith("sqlite") else 10  # PostgreSQL: stay well under max_connections
    stores = [open_store(settings, store_url, checkpoint_every=100) for _ in range(replicas)]
    errors: list[BaseException] = []
    start = threading.Barrier(WRITERS)

    def writer(w: int) -> None:
        try:
            store = stores[w % replicas]
            start.wait()
            i = 0
            while i < PER_WRITER:
                n = min(1 + (w + i) % 3, PER_WRITER - i)
                store.append([dict(body(w * 1000 + i + k), id=f"w{w}-{i + k}") for k in range(n)])
                i += n
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == []
    _check(settings, store_url, WRITERS * PER_WRITER)


@SQL_SINKS
async def test_fifty_tasks_through_two_audit_logs_form_one_chain(settings: Any, store_url: str) -> None:
    """Fifty concurrent guarded calls recording through two AuditLogs (two replicas) on one store."""
    policy = make_policy(every=100)
    t = traffic(policy)
    logs = [AuditLog(open_store(settings, store_url, checkpoint_every=100), policy_id=policy.id,
                     policy_version=policy.digest, queue_size=64) for _ in range(2)]

    async def writer(w: int) -> None:
        for i in range(PER_WRITER):
            rec = await t.call(w * PER_WRITER + i)
            await logs[w % 2].record(rec)
            await asyncio.sleep(0)

    await asyncio.gather(*(writer(w) for w in range(WRITERS)))
    for log in logs:
        await log.aclose()
    _check(settings, store_url, WRITERS * PER_WRITER)
