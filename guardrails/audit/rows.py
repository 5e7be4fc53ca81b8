"""Flat audit rows (the export's columns) from any source: a live store (SQLite, PostgreSQL, JSONL) or an
export file (.jsonl, .csv, .parquet). Reports and the dashboard read these, so a figure computed from
the database equals the one computed from its export.

`findings` is always a list of dicts; numbers are numbers; CSV's empty cells are None.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from guardrails.audit.base import AuditSink, Filters
from guardrails.audit.export import COLUMNS, flat_row

_INTS = ("seq", "status", "prompt_tokens", "completion_tokens", "v")
_FLOATS = ("ts", "total_ms", "upstream_ms")
_JSON = ("categories", "findings", "detector_errors", "checks", "input_text", "output_text")


def rows_from_store(store: AuditSink, filters: Filters | None = None) -> Iterator[dict[str, Any]]:
    for r in store.records(filters):
        yield flat_row(json.loads(r.body), r.hash, evidence_as_text=False)


def _csv_row(raw: dict[str, str]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for col in COLUMNS:
        v: Any = raw.get(col, "")
        if v == "":
            v = None
        elif col in _INTS:
            v = int(v)
        elif col in _FLOATS:
            v = float(v)
        elif col in _JSON:
            v = json.loads(v)
        elif col == "streamed":
            v = v == "true"
        row[col] = v
    return row


def _match(row: dict[str, Any], filters: Filters | None) -> bool:
    if filters is None:
        return True
    return filters.match(float(row["ts"]), row["principal_id"], row["final"])


def rows_from_file(path: str | Path, filters: Filters | None = None) -> Iterator[dict[str, Any]]:
    """Rows of an export file, by its extension: .jsonl (or .ndjson), .csv, .parquet."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        with p.open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    body = json.loads(line)
                    row = flat_row(body, body.get("hash", ""), evidence_as_text=False)
                    if _match(row, filters):
                        yield row
    elif suffix == ".csv":
        with p.open(encoding="utf-8", newline="") as fh:
            for raw in csv.DictReader(fh):
                row = _csv_row(raw)
                if _match(row, filters):
                    yield row
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(str(p))
        for batch in pf.iter_batches():
            for row in batch.to_pylist():
                row = {c: row.get(c) for c in COLUMNS}
                row["findings"] = [{**f, "evidence": json.loads(f["evidence"]) if f.get("evidence") else {}}
                                   for f in row.get("findings") or []]
                if _match(row, filters):
                    yield row
    else:
        raise ValueError(f"unknown export file type {p.suffix!r}: use .jsonl, .csv or .parquet")
