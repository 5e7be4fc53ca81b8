"""Issue 17's audit key `unchecked` (images, audio, files forwarded without a text check, by kind): only
present when set, and read back exactly from a Parquet export (hashes unchanged)."""

from __future__ import annotations

import io
from typing import Any

import pyarrow.parquet as pq
from audit_helpers import ALL_SINKS, body

from guardrails.audit.export import body_from_row, export_chunks
from guardrails.audit.record import build_body, canonical, entry_hash
from guardrails.types import CallRecord, Principal


def test_build_body_adds_unchecked_only_when_set() -> None:
    def rec(**kw: Any) -> CallRecord:
        return CallRecord(request_id="r", principal=Principal("p", "user"), route="/v1/messages", model="m",
                          upstream="u", input=None, output=None, started_at=1.0, **kw)

    b = build_body(rec(unchecked=(("file", 1), ("image_url", 2))), policy_id="t", policy_version="x",
                   text_mode="none", hash_key=b"")
    assert b["unchecked"] == {"file": 1, "image_url": 2}
    assert "unchecked" not in build_body(rec(), policy_id="t", policy_version="x", text_mode="none", hash_key=b"")


@ALL_SINKS
def test_unchecked_round_trips_through_parquet(make_store: Any) -> None:
    store = make_store()
    bodies = [body(i) for i in range(12)]
    for i, b in enumerate(bodies):
        if i % 3 == 0:
            b["unchecked"] = {"image_url": i + 1}
    store.append(bodies)
    stored = list(store.records())
    data = b"".join(export_chunks(store, "parquet"))
    rows = pq.read_table(io.BytesIO(data)).to_pylist()
    assert sum(1 for r in rows if r["unchecked"]) == 4
    for row, rec in zip(rows, stored):
        got, h = body_from_row(row)
        assert canonical(got) == rec.body and h == rec.hash == entry_hash(canonical(got))
