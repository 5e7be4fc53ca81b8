"""AuditLog: off the request path, bounded, never drops, flushes and signs at shutdown; runtime and CLI."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from audit_helpers import body, make_policy, traffic
from typer.testing import CliRunner

from guardrails.audit import AuditLog, AuditUnavailable, open_store, verify
from guardrails.audit.base import Head
from guardrails.errors import TrustwallError
from guardrails.settings import Settings


class GateSink:
    """A store that blocks until released and can fail its first appends."""

    url = "memory://gate"

    def __init__(self, fail_first: int = 0):
        self.gate = threading.Event()
        self.rows: list[dict[str, Any]] = []
        self.fail_first = fail_first
        self.checkpoints = 0
        self.closed = False
        self.entered = threading.Event()  # set once the writer is inside append()

    def append(self, bodies: list[dict[str, Any]]) -> int:
        self.entered.set()
        self.gate.wait(10)
        if self.fail_first:
            self.fail_first -= 1
            raise OSError("disk full")
        self.rows.extend(bodies)
        return len(self.rows)

    def checkpoint(self) -> None:
        self.checkpoints += 1

    def head(self) -> Head:  # pragma: no cover - unused
        return Head(len(self.rows), "", 0, "")

    def close(self) -> None:
        self.closed = True


async def records(n: int) -> list[Any]:
    t = traffic(make_policy())
    return [await t.call(i) for i in range(n)]


async def test_refuse_when_full_raises_a_503_error_and_drops_nothing_accepted() -> None:
    sink = GateSink()
    log = AuditLog(sink, queue_size=2, on_full="refuse", batch=1)  # type: ignore[arg-type]
    recs = await records(6)
    accepted = 0
    with pytest.raises(AuditUnavailable) as err:
        for r in recs:
            await log.record(r)
            accepted += 1
            if accepted == 1:  # the writer takes the first one and blocks on the gate
                assert await asyncio.to_thread(sink.entered.wait, 5)
    assert isinstance(err.value, TrustwallError) and err.value.status == 503
    assert accepted == 3  # one in the writer's hands, two queued
    sink.gate.set()
    await log.aclose()
    assert len(sink.rows) == accepted and sink.checkpoints == 1 and sink.closed


async def test_wait_when_full_waits_without_blocking_the_loop() -> None:
    sink = GateSink()
    log = AuditLog(sink, queue_size=1, on_full="wait", batch=1)  # type: ignore[arg-type]
    recs = await records(5)
    task = asyncio.ensure_future(asyncio.gather(*(log.record(r) for r in recs)))
    assert await asyncio.to_thread(sink.entered.wait, 5)  # the writer holds one, blocked on the gate
    await asyncio.sleep(0)
    assert not task.done()  # callers wait for room; the loop still runs this coroutine
    sink.gate.set()
    await asyncio.wait_for(task, 10)
    await log.aclose()
    assert len(sink.rows) == 5


async def test_wait_when_full_gives_up_after_its_timeout_instead_of_hanging() -> None:
    sink = GateSink()  # the store never takes anything: the queue stays full
    log = AuditLog(sink, queue_size=1, on_full="wait", batch=1, wait_timeout_s=0.3)  # type: ignore[arg-type]
    recs = await records(4)
    accepted = 0
    with pytest.raises(AuditUnavailable, match="still full") as err:
        for r in recs:
            await asyncio.wait_for(log.record(r), 5)
            accepted += 1
    assert err.value.status == 503 and accepted == 2  # one in the writer's hands, one queued
    sink.gate.set()
    await log.aclose()
    assert len(sink.rows) == accepted


async def test_a_failing_store_is_retried_until_it_recovers() -> None:
    sink = GateSink(fail_first=3)
    sink.gate.set()
    log = AuditLog(sink, queue_size=100)  # type: ignore[arg-type]
    for r in await records(10):
        await log.record(r)
    await log.aclose()
    assert len(sink.rows) == 10 and [b["id"] for b in sink.rows] == list(dict.fromkeys(b["id"] for b in sink.rows))


async def test_closed_log_refuses() -> None:
    sink = GateSink()
    sink.gate.set()
    log = AuditLog(sink)  # type: ignore[arg-type]
    await log.aclose()
    with pytest.raises(AuditUnavailable):
        await log.record((await records(1))[0])


async def test_shutdown_flushes_and_signs_the_tail(settings: Settings) -> None:
    store = open_store(settings, checkpoint_every=5)
    log = AuditLog(store, queue_size=1000)
    for r in await records(7):
        await log.record(r)
    await log.aclose()
    reader = open_store(settings)
    rep = verify(reader, settings)
    reader.close()
    assert rep.ok and rep.records == 7 and rep.last_checkpoint == 7 and rep.unsigned_tail == 0


async def test_build_runtime_opens_the_configured_sink(tmp_path: Path) -> None:
    from guardrails.runtime import build_runtime

    settings = Settings(data_dir=tmp_path / "d")
    rt = build_runtime(settings, policy=make_policy(text="hash"))
    assert isinstance(rt.audit, AuditLog) and rt.audit.text_mode == "hash"
    for r in await records(3):
        await rt.record(r)
    await rt.aclose()
    store = open_store(settings)
    rows = [r.parsed() for r in store.records()]
    store.close()
    assert len(rows) == 3 and rows[0]["policy"] == {"id": "audit-test", "version": rt.policy.digest}
    assert all(len(h) == 64 for h in rows[0]["text"]["input"])  # keyed hashes, not text


# ------------------------------------------------------------------------------------------------ CLI


def cli(args: list[str], data_dir: Path) -> Any:
    from guardrails.cli import app

    return CliRunner().invoke(app, ["--data-dir", str(data_dir), "audit", *args])


def test_cli_verify_export_stats_prune(tmp_path: Path) -> None:
    data = tmp_path / "d"
    store = open_store(Settings(data_dir=data), checkpoint_every=4)
    store.append([body(i) for i in range(10)])
    store.checkpoint()
    store.close()

    ok = cli(["verify"], data)
    assert ok.exit_code == 0 and "OK: chain intact, 10 records" in ok.output
    out = tmp_path / "x.csv"
    exp = cli(["export", "--format", "csv", "--out", str(out), "--action", "redact"], data)
    assert exp.exit_code == 0, exp.output
    assert len(out.read_text().splitlines()) == 1 + 5
    st = cli(["stats", "--json"], data)
    assert st.exit_code == 0 and json.loads(st.stdout)["total"] == 10
    assert cli(["stats"], data).exit_code == 0
    pr = cli(["prune", "--before", "1790000008.5"], data)  # records 10.. are newer; last checkpoint before: 8
    assert pr.exit_code == 0 and "anchored at the signed checkpoint of record 8" in pr.output
    assert cli(["verify"], data).exit_code == 0

    import sqlite3

    db = sqlite3.connect(data / "audit.sqlite3")
    db.execute("UPDATE audit_records SET body = replace(body, '\"final\":\"allow\"', '\"final\":\"block\"') WHERE seq = 9")
    db.commit()
    db.close()
    bad = cli(["verify"], data)
    assert bad.exit_code == 1 and "BROKEN at record 9" in bad.output


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    data = tmp_path / "d"
    for args in (["export", "--format", "xml"], ["export", "--since", "yesterday-ish"], ["export", "--action", "nuke"],
                 ["prune", "--before", "soon"], ["verify", "--url", "mysql://x"]):
        r = cli(args, data)
        assert r.exit_code == 2, (args, r.output)
        assert "Traceback" not in r.output


async def test_idle_writer_signs_the_tail(settings: Settings) -> None:
    store = open_store(settings, checkpoint_every=1000)
    log = AuditLog(store, idle_checkpoint_s=0.05)
    for r in await records(3):
        await log.record(r)
    for _ in range(200):
        await asyncio.sleep(0.02)
        if store.head().cp_seq == 3:
            break
    assert store.head().cp_seq == 3  # signed while the log was still open
    await log.aclose()


@pytest.mark.postgres
def test_postgres_sink_reconnects_after_the_server_drops_it(settings: Settings) -> None:
    import psycopg
    from conftest import drop_pg, pg_url

    from guardrails.audit.sql import _split_pg_url

    url = pg_url()
    store = open_store(settings, url, checkpoint_every=1000)
    try:
        store.append([body(0)])
        pid = store._db.info.backend_pid  # type: ignore[attr-defined]
        with psycopg.connect(_split_pg_url(url)[0], autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(psycopg.OperationalError):
            store.append([body(1)])  # the writer's retry loop sees this once ...
        assert store.append([body(1)]) == 2  # ... and the next attempt reconnects
        assert verify(store, settings).ok
    finally:
        store.close()
        drop_pg(url)
