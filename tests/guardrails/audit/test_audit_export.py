"""Export round trips (JSONL, CSV, Parquet), filters, the async HTTP generator, stats, prune."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pyarrow.parquet as pq
from audit_helpers import ALL_SINKS, body

from guardrails.audit import Filters, iter_export, verify
from guardrails.audit.export import COLUMNS, body_from_row, export_chunks, flat_row, stats
from guardrails.audit.record import canonical, entry_hash

T0 = 1_790_000_000.0  # 2026-09-21


def rich_body(i: int) -> dict[str, Any]:
    b = body(i, ts=T0 + i * 3600.0 - i)  # one record an hour
    b["final"] = ["allow", "redact", "block", "flag"][i % 4]
    b["categories"] = [] if b["final"] == "allow" else ["EMAIL_ADDRESS", "PERSON"][: 1 + i % 2]
    b["findings"] = [{"stage": "input", "detector": "pii", "category": "PERSON", "score": 0.85, "span": [3, 9],
                      "message_index": 0, "action": "redact", "operator": "pseudonymise", "rule": "pii/PERSON",
                      "evidence": {"similarity": 0.5}},
                     {"stage": "output", "detector": "tox", "category": "toxicity", "score": 0.125, "span": None,
                      "message_index": None, "action": "allow", "operator": None, "rule": "tox/toxicity", "evidence": {}}]
    b["latency_ms"]["checks"] = [{"stage": "input", "detector": "pii", "ms": 1.25, "status": "ok"}]
    b["text"] = {"mode": "redacted", "input": ["hi <PERSON_1>, \"quoted\", comma", "two\nlines"], "output": None}
    b["model"] = ["gpt-a", "gpt-b"][i % 2]
    return b


def fill(make_store: Any, n: int = 40, every: int = 10) -> Any:
    store = make_store(every=every)
    for s in range(0, n, 9):
        store.append([rich_body(i) for i in range(s, min(n, s + 9))])
    return store


@ALL_SINKS
def test_parquet_round_trip_equals_the_records(make_store: Any) -> None:
    store = fill(make_store)
    data = b"".join(export_chunks(store, "parquet", rows_per_group=7))
    table = pq.read_table(io.BytesIO(data))
    assert table.num_rows == 40 and table.column_names == list(COLUMNS)
    assert pq.ParquetFile(io.BytesIO(data)).num_row_groups == 6  # streamed in row groups
    stored = list(store.records())
    for row, rec in zip(table.to_pylist(), stored):
        got, h = body_from_row(row)
        assert got == json.loads(rec.body)
        assert canonical(got) == rec.body and h == rec.hash == entry_hash(canonical(got))


@ALL_SINKS
def test_jsonl_and_csv_round_trip(make_store: Any) -> None:
    store = fill(make_store)
    stored = list(store.records())
    lines = b"".join(export_chunks(store, "jsonl", chunk_bytes=1000)).decode().splitlines()
    assert len(lines) == 40
    for line, rec in zip(lines, stored):
        obj = json.loads(line)
        h = obj.pop("hash")
        assert obj == json.loads(rec.body) and h == entry_hash(canonical(obj))  # each line re-hashes
    rows = list(csv.DictReader(io.StringIO(b"".join(export_chunks(store, "csv", chunk_bytes=1000)).decode())))
    assert len(rows) == 40
    for row, rec in zip(rows, stored):
        want = flat_row(json.loads(rec.body), rec.hash, evidence_as_text=False)
        for col in COLUMNS:
            w = want[col]
            if col in ("categories", "findings", "detector_errors", "checks", "input_text", "output_text"):
                assert (json.loads(row[col]) if row[col] else None) == w, col
            elif isinstance(w, bool):
                assert row[col] == ("true" if w else "false")
            else:
                assert row[col] == ("" if w is None else str(w)), col


@ALL_SINKS
def test_filters(make_store: Any) -> None:
    store = fill(make_store)

    def seqs(f: Filters) -> list[int]:
        return [json.loads(x)["seq"] for x in b"".join(export_chunks(store, "jsonl", f)).decode().splitlines()]

    assert seqs(Filters(actions=("block",))) == [i + 1 for i in range(40) if i % 4 == 2]
    assert seqs(Filters(principal="p1")) == [i + 1 for i in range(40) if i % 3 == 1]
    since, until = T0 + 10 * 3599, T0 + 20 * 3599
    assert seqs(Filters(since=since, until=until)) == list(range(11, 21))
    assert store.count(Filters(actions=("block", "flag"), principal="p0")) == len(
        [i for i in range(40) if i % 4 in (2, 3) and i % 3 == 0])


@ALL_SINKS
async def test_iter_export_streams_chunks_for_http(make_store: Any, settings: Any, store_url: str) -> None:
    store = fill(make_store)
    chunks = [c async for c in iter_export(store, "parquet", Filters(actions=("redact",)))]
    assert len(chunks) >= 1
    assert pq.read_table(io.BytesIO(b"".join(chunks))).num_rows == 10
    by_url = b"".join([c async for c in iter_export(store_url, "jsonl", None, settings=settings)])
    assert len(by_url.splitlines()) == 40


@ALL_SINKS
def test_stats_by_day_principal_model(make_store: Any) -> None:
    store = fill(make_store, n=48)
    s = stats(store)
    assert s["total"] == 48
    days: dict[str, int] = {}
    for r in store.records():
        days[r.parsed()["time"][:10]] = days.get(r.parsed()["time"][:10], 0) + 1
    assert len(days) >= 2 and {d: sum(v["actions"].values()) for d, v in s["by_day"].items()} == days
    assert set(s["by_model"]) == {"gpt-a", "gpt-b"} and set(s["by_principal"]) == {"p0", "p1", "p2"}
    assert s["by_model"]["gpt-b"]["actions"] == {"redact": 12, "flag": 12}
    assert s["by_model"]["gpt-a"]["categories"] == {"EMAIL_ADDRESS": 12}


@ALL_SINKS
def test_prune_keeps_the_rest_verifiable(make_store: Any, settings: Any) -> None:
    store = fill(make_store, n=45, every=10)
    res = store.prune(T0 + 25 * 3599 + 1)  # records 1..26 are older; the last checkpoint before is 20
    assert res.anchor_seq == 20 and res.deleted == 20
    rep = verify(store, settings)
    assert rep.ok, rep.reason
    assert (rep.anchor_seq, rep.first_seq, rep.last_seq, rep.records) == (20, 21, 45, 25)
    store.append([rich_body(100)])  # appends continue on the same chain
    store.checkpoint()
    assert verify(store, settings).ok
    nothing = store.prune(T0)  # nothing older than the anchor's successor
    assert nothing.anchor_seq is None
    assert verify(store, settings).ok


@ALL_SINKS
def test_deleting_records_without_a_signed_prune_is_detected(make_store: Any, settings: Any, store_url: str) -> None:
    from audit_tamper import tamperer

    store = fill(make_store, n=30, every=10)
    t = tamperer(store_url)
    for seq in range(1, 11):
        t.delete(seq)  # an attacker "prunes" without the key
    t.close()
    rep = verify(store, settings)
    assert not rep.ok and rep.first_bad_seq == 1


def test_make_filters_parses_query_values() -> None:
    import pytest

    from guardrails.audit.export import make_filters

    f = make_filters("2026-11-23", "2026-11-24T00:00:00Z", "key-1", ["block,flag", "BLOCK"])
    assert f.since == 1_795_392_000.0 and f.until == f.since + 86_400 and f.actions == ("block", "flag")
    assert make_filters(None, "", None, None) == Filters()
    with pytest.raises(ValueError):
        make_filters(actions="nuke")
    with pytest.raises(ValueError):
        make_filters(since="last tuesday")


async def test_iter_export_as_a_streaming_http_response(settings: Any, tmp_path: Any) -> None:
    """How the proxy mounts it: GET /v1/audit/export -> StreamingResponse(iter_export(...))."""
    import httpx
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import StreamingResponse

    from guardrails.audit import open_store
    from guardrails.audit.export import FORMATS, MEDIA_TYPES, make_filters

    store = open_store(settings, f"sqlite:///{tmp_path / 'h.db'}", checkpoint_every=10)
    store.append([rich_body(i) for i in range(25)])
    app = FastAPI()

    @app.get("/v1/audit/export")
    async def export(format: str = "jsonl", since: str | None = None, until: str | None = None,
                     principal: str | None = None, action: str | None = None) -> StreamingResponse:
        if format not in FORMATS:
            raise HTTPException(400, f"format must be one of {FORMATS}")
        try:
            filters = make_filters(since, until, principal, action)
        except ValueError as exc:
            raise HTTPException(400, str(exc)) from None
        return StreamingResponse(iter_export(store, format, filters), media_type=MEDIA_TYPES[format])

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get("/v1/audit/export", params={"format": "parquet", "action": "block"})
        assert r.status_code == 200 and r.headers["content-type"] == MEDIA_TYPES["parquet"]
        assert pq.read_table(io.BytesIO(r.content)).column("final").to_pylist() == ["block"] * 6
        r = await client.get("/v1/audit/export", params={"format": "csv", "principal": "p2"})
        assert len(r.text.splitlines()) == 1 + 8
        assert (await client.get("/v1/audit/export", params={"since": "whenever"})).status_code == 400
    store.close()
