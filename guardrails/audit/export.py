"""Streaming export (JSONL, CSV, Parquet) and stats over any AuditSink, in flat memory.

`export_chunks` is the sync core (the CLI writes its chunks to a file); `iter_export` is the async
generator the proxy mounts at ``GET /v1/audit/export`` (admin role only; the proxy checks that):

    from guardrails.audit.export import FORMATS, MEDIA_TYPES, iter_export, make_filters
    filters = make_filters(since, until, principal, action)      # ValueError -> 400
    return StreamingResponse(iter_export(runtime.audit.sink, fmt, filters), media_type=MEDIA_TYPES[fmt])

JSONL lines are the stored canonical bodies with their hash (each line can be re-hashed). CSV and
Parquet rows are flat: one column per scalar field; lists and findings are JSON text in CSV and typed
lists/structs in Parquet (a finding's evidence is JSON text there).
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Literal

from guardrails.audit.base import AuditSink, Filters, Stored
from guardrails.audit.record import canonical

Format = Literal["jsonl", "csv", "parquet"]
FORMATS: tuple[str, ...] = ("jsonl", "csv", "parquet")
MEDIA_TYPES = {"jsonl": "application/x-ndjson", "csv": "text/csv; charset=utf-8",
               "parquet": "application/vnd.apache.parquet"}

COLUMNS: tuple[str, ...] = (
    "seq", "id", "time", "ts", "principal_id", "principal_role", "route", "upstream", "model", "policy_id",
    "policy_version", "final", "input_action", "output_action", "categories", "findings", "route_rule",
    "detector_errors", "status", "error", "streamed", "total_ms", "upstream_ms", "checks", "prompt_tokens",
    "completion_tokens", "text_mode", "input_text", "output_text", "v", "prev", "hash",
    "experiment", "variant", "licence", "unchecked",
)
_NESTED = ("categories", "findings", "detector_errors", "checks", "input_text", "output_text")


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)  # stateless, reused


def make_filters(since: str | float | None = None, until: str | float | None = None, principal: str | None = None,
                 actions: str | list[str] | tuple[str, ...] | None = None) -> Filters:
    """Filters from CLI or query-string values (dates as 2026-11-23, ISO 8601 or unix seconds; actions
    repeated or comma-separated). Raises ValueError with a message fit for a 400 / exit 2."""
    from guardrails.audit.record import parse_time
    from guardrails.types import Action

    raw = [actions] if isinstance(actions, str) else list(actions or [])
    acts: list[str] = []
    for a in raw:
        for part in str(a).split(","):
            if part.strip():
                try:
                    acts.append(Action.parse(part.strip()).label)
                except ValueError:
                    raise ValueError(f"unknown action {part.strip()!r} (allow, flag, redact, route, block)") from None
    return Filters(since=parse_time(since) if since not in (None, "") else None,
                   until=parse_time(until) if until not in (None, "") else None,
                   principal=principal or None, actions=tuple(dict.fromkeys(acts)))


def flat_row(body: dict[str, Any], hash_: str, *, evidence_as_text: bool = True) -> dict[str, Any]:
    """One flat row. Parquet keeps each finding's free-form evidence as JSON text (a fixed struct
    schema); CSV, where the whole findings list is JSON text anyway, keeps it as an object."""
    lat, tok, text = body.get("latency_ms") or {}, body.get("tokens") or {}, body.get("text") or {}
    findings = ([{**f, "evidence": canonical(f.get("evidence") or {})} for f in body.get("findings", [])]
                if evidence_as_text else list(body.get("findings", [])))
    return {
        "seq": body["seq"], "id": body["id"], "time": body["time"], "ts": float(body["ts"]),
        "principal_id": body["principal"]["id"], "principal_role": body["principal"]["role"],
        "route": body.get("route"), "upstream": body.get("upstream"), "model": body.get("model"),
        "policy_id": body["policy"]["id"], "policy_version": body["policy"]["version"], "final": body["final"],
        "input_action": body["actions"]["input"], "output_action": body["actions"]["output"],
        "categories": list(body.get("categories", [])), "findings": findings, "route_rule": body.get("route_rule"),
        "detector_errors": list(body.get("detector_errors", [])), "status": body.get("status"),
        "error": body.get("error"), "streamed": bool(body.get("streamed")),
        "total_ms": lat.get("total"), "upstream_ms": lat.get("upstream"), "checks": list(lat.get("checks", [])),
        "prompt_tokens": tok.get("prompt"), "completion_tokens": tok.get("completion"),
        "text_mode": text.get("mode"), "input_text": text.get("input"), "output_text": text.get("output"),
        "v": body.get("v"), "prev": body["prev"], "hash": hash_,
        "experiment": (body.get("experiment") or {}).get("name"), "variant": (body.get("experiment") or {}).get("variant"),
        "licence": body.get("licence"),
        "unchecked": canonical(body["unchecked"]) if body.get("unchecked") else None,
    }


def body_from_row(row: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The inverse of flat_row for typed rows (Parquet read back with pyarrow): (body, hash)."""
    def _num(x: Any) -> Any:
        return int(x) if isinstance(x, float) and x.is_integer() else x

    findings = []
    for f in row["findings"] or []:
        f = dict(f)
        f["evidence"] = json.loads(f["evidence"]) if f.get("evidence") else {}
        f["span"] = list(f["span"]) if f.get("span") is not None else None
        findings.append(f)
    body = {
        "v": row["v"], "id": row["id"], "time": row["time"], "ts": row["ts"],
        "principal": {"id": row["principal_id"], "role": row["principal_role"]},
        "route": row["route"], "upstream": row["upstream"], "model": row["model"],
        "policy": {"id": row["policy_id"], "version": row["policy_version"]}, "final": row["final"],
        "actions": {"input": row["input_action"], "output": row["output_action"]},
        "categories": list(row["categories"] or []), "findings": findings, "route_rule": row["route_rule"],
        "detector_errors": list(row["detector_errors"] or []), "status": row["status"], "error": row["error"],
        "streamed": row["streamed"],
        "latency_ms": {"total": row["total_ms"], "upstream": row["upstream_ms"],
                       "checks": [dict(c) for c in row["checks"] or []]},
        "tokens": {"prompt": row["prompt_tokens"], "completion": row["completion_tokens"]},
        "text": {"mode": row["text_mode"],
                 "input": None if row["input_text"] is None else list(row["input_text"]),
                 "output": None if row["output_text"] is None else list(row["output_text"])},
        "seq": row["seq"], "prev": row["prev"],
    }
    if row.get("experiment") is not None:  # optional keys: only records that had them
        body["experiment"] = {"name": row["experiment"], "variant": row.get("variant")}
    if row.get("licence") is not None:
        body["licence"] = row["licence"]
    if row.get("unchecked"):
        body["unchecked"] = json.loads(row["unchecked"])
    return body, row["hash"]


def parquet_schema() -> Any:
    import pyarrow as pa

    finding = pa.struct([("stage", pa.string()), ("detector", pa.string()), ("category", pa.string()),
                         ("score", pa.float64()), ("span", pa.list_(pa.int64())), ("message_index", pa.int64()),
                         ("action", pa.string()), ("operator", pa.string()), ("rule", pa.string()),
                         ("evidence", pa.string())])
    check = pa.struct([("stage", pa.string()), ("detector", pa.string()), ("ms", pa.float64()), ("status", pa.string())])
    s, i, f = pa.string(), pa.int64(), pa.float64()
    types = {"seq": i, "ts": f, "categories": pa.list_(s), "findings": pa.list_(finding), "detector_errors": pa.list_(s),
             "status": i, "streamed": pa.bool_(), "total_ms": f, "upstream_ms": f, "checks": pa.list_(check),
             "prompt_tokens": i, "completion_tokens": i, "input_text": pa.list_(s), "output_text": pa.list_(s), "v": i}
    return pa.schema([(c, types.get(c, s)) for c in COLUMNS])


class _Spool:
    """A write-only file that hands its bytes out as chunks (what ParquetWriter writes into)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._pos = 0
        self.closed = False

    def write(self, data: Any) -> int:
        b = bytes(data)
        self._parts.append(b)
        self._pos += len(b)
        return len(b)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _csv_value(col: str, v: Any) -> Any:
    if col in _NESTED:
        return "" if v is None else _COMPACT.encode(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def export_chunks(store: AuditSink, fmt: str, filters: Filters | None = None, *,
                  on_progress: Callable[[int], None] | None = None, chunk_bytes: int = 256 * 1024,
                  rows_per_group: int = 5000) -> Iterator[bytes]:
    """Encoded chunks of the matching records, in seq order. Memory stays flat (one chunk / row group)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; use one of {', '.join(FORMATS)}")
    records = store.records(filters)
    if fmt == "jsonl":
        yield from _jsonl(records, on_progress, chunk_bytes)
    elif fmt == "csv":
        yield from _csv(records, on_progress, chunk_bytes)
    else:
        yield from _parquet(records, on_progress, rows_per_group)


def _jsonl(records: Iterator[Stored], on_progress: Callable[[int], None] | None, chunk_bytes: int) -> Iterator[bytes]:
    buf: list[str] = []
    size = n = 0
    for r in records:
        line = r.json_line()
        buf.append(line)
        size += len(line) + 1
        n += 1
        if size >= chunk_bytes:
            yield ("\n".join(buf) + "\n").encode("utf-8")
            if on_progress:
                on_progress(n)
            buf, size, n = [], 0, 0
    if buf:
        yield ("\n".join(buf) + "\n").encode("utf-8")
    if on_progress and n:
        on_progress(n)


def _csv(records: Iterator[Stored], on_progress: Callable[[int], None] | None, chunk_bytes: int) -> Iterator[bytes]:
    sio = io.StringIO()
    w = csv.writer(sio, lineterminator="\n")
    w.writerow(COLUMNS)
    n = 0
    for r in records:
        row = flat_row(json.loads(r.body), r.hash, evidence_as_text=False)
        w.writerow([_csv_value(c, row[c]) for c in COLUMNS])
        n += 1
        if sio.tell() >= chunk_bytes:
            yield sio.getvalue().encode("utf-8")
            if on_progress:
                on_progress(n)
            sio.seek(0)
            sio.truncate()
            n = 0
    if sio.tell():
        yield sio.getvalue().encode("utf-8")
    if on_progress and n:
        on_progress(n)


def _parquet(records: Iterator[Stored], on_progress: Callable[[int], None] | None, rows_per_group: int) -> Iterator[bytes]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = parquet_schema()
    spool = _Spool()
    writer = pq.ParquetWriter(spool, schema, compression="zstd")
    rows: list[dict[str, Any]] = []

    def flush() -> bytes:
        writer.write_table(pa.Table.from_pylist(rows, schema=schema), row_group_size=len(rows))
        return spool.take()

    for r in records:
        rows.append(flat_row(json.loads(r.body), r.hash))
        if len(rows) >= rows_per_group:
            yield flush()
            if on_progress:
                on_progress(len(rows))
            rows = []
    if rows:
        chunk = flush()
        if on_progress:
            on_progress(len(rows))
        yield chunk
    writer.close()
    tail = spool.take()
    if tail:
        yield tail


async def iter_export(source: AuditSink | str, fmt: str = "jsonl", filters: Filters | None = None, *,
                      settings: Any = None) -> AsyncIterator[bytes]:
    """Async generator of encoded export chunks, produced off the event loop (one chunk at a time, so
    a slow client applies back-pressure and memory stays flat). `source`: a sink or an audit URL."""
    own = isinstance(source, str)
    if own:
        from guardrails.audit.stores import open_store
        from guardrails.settings import Settings

        store: AuditSink = open_store(settings or Settings(), source)
    else:
        store = source  # type: ignore[assignment]
    gen = export_chunks(store, fmt, filters)
    done = object()
    try:
        while True:
            chunk = await asyncio.to_thread(next, gen, done)
            if chunk is done:
                break
            yield chunk  # type: ignore[misc]
    finally:
        await asyncio.to_thread(gen.close)
        if own:
            store.close()


# ------------------------------------------------------------------------------------------------ stats


def stats(store: AuditSink, filters: Filters | None = None) -> dict[str, Any]:
    """Actions and categories by day, principal and model (one streamed pass)."""
    groups: dict[str, dict[str, dict[str, Counter[str]]]] = {
        g: defaultdict(lambda: {"actions": Counter(), "categories": Counter()}) for g in ("day", "principal", "model")
    }
    total = 0
    for r in store.records(filters):
        body = json.loads(r.body)
        total += 1
        keys = {"day": body["time"][:10], "principal": body["principal"]["id"], "model": body.get("model") or "-"}
        for g, k in keys.items():
            slot = groups[g][k]
            slot["actions"][body["final"]] += 1
            for c in body.get("categories", []):
                slot["categories"][c] += 1
    return {"total": total, **{f"by_{g}": {k: {"actions": dict(v["actions"]), "categories": dict(v["categories"])}
                                             for k, v in sorted(groups[g].items())} for g in groups}}
