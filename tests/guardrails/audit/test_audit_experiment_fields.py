"""Issue 18's audit fields (experiment, variant, licence) on every sink: stored, exported in every format,
read back exactly (hashes unchanged), and the experiment report is the same from the store and its exports.
Records without them keep their old form."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from audit_helpers import ALL_SINKS, body

from guardrails.audit.export import body_from_row, export_chunks
from guardrails.audit.record import build_body, canonical, entry_hash
from guardrails.audit.rows import rows_from_file, rows_from_store
from guardrails.experiment_report import build_report
from guardrails.types import Action, CallRecord, Principal


def exp_body(i: int) -> dict[str, Any]:
    b = body(i)
    if i % 4:  # every fourth record is outside the experiment (no keys at all)
        b["experiment"] = {"name": "ab", "variant": "control" if i % 2 else "llama"}
        b["licence"] = "MIT" if i % 2 else "llama3.1-community"
        b["final"] = "block" if i % 3 == 0 else "allow"
        b["error"] = "upstream_error" if i % 7 == 0 else None
    return b


def test_build_body_adds_the_keys_only_when_set() -> None:
    rec = CallRecord(request_id="r", principal=Principal("p", "user"), route="/v1/chat/completions", model="gpt-ab",
                     upstream="b", input=None, output=None, started_at=1_790_000_000.0, final_action=Action.ALLOW,
                     experiment="ab", variant="llama", licence="llama3.1-community")
    b = build_body(rec, policy_id="t", policy_version="x", text_mode="none", hash_key=b"")
    assert b["experiment"] == {"name": "ab", "variant": "llama"} and b["licence"] == "llama3.1-community"
    plain = build_body(CallRecord(request_id="r", principal=Principal("p", "user"), route="x", model=None, upstream=None,
                                  input=None, output=None, started_at=1.0), policy_id="t", policy_version="x",
                       text_mode="none", hash_key=b"")
    assert "experiment" not in plain and "licence" not in plain


@ALL_SINKS
def test_experiment_fields_round_trip_and_report_matches_exports(make_store: Any, tmp_path: Path) -> None:
    store = make_store()
    store.append([exp_body(i) for i in range(60)])
    stored = list(store.records())
    data = b"".join(export_chunks(store, "parquet"))
    for row, rec in zip(pq.read_table(io.BytesIO(data)).to_pylist(), stored):
        got, h = body_from_row(row)
        assert canonical(got) == rec.body and h == rec.hash == entry_hash(canonical(got))
    direct = build_report("ab", rows_from_store(store))
    assert direct["calls"] == sum(1 for i in range(60) if i % 4)
    counts = {v["variant"]: v["calls"] for v in direct["variants"]}
    assert counts == {"control": sum(1 for i in range(60) if i % 4 and i % 2),
                      "llama": sum(1 for i in range(60) if i % 4 and not i % 2)}
    for fmt in ("jsonl", "csv", "parquet"):
        path = tmp_path / f"audit.{fmt}"
        path.write_bytes(b"".join(export_chunks(store, fmt)))
        rows = list(rows_from_file(path))
        assert sum(1 for r in rows if r["licence"] == "MIT") == sum(1 for i in range(60) if i % 4 and i % 2)
        assert json.dumps(build_report("ab", rows), sort_keys=True) == json.dumps(direct, sort_keys=True), fmt
