"""Audit log speed: chained, signed appends per sink vs plain unchained inserts; export MB/s vs a plain dump.

    .venv/bin/python -m benchmarks.bench_audit [--quick] [--no-postgres] [--pg URL]

Append: records per second through each sink's append() (what the AuditLog writer thread calls), in
batches of 1 (a quiet server: one record per transaction) and of 256 (a busy one: the writer drains the
queue), including the hash chain and a signed checkpoint every 1,000 records. Baseline, same run,
same bodies: plain unchained inserts into a table of the same columns (SQLite, PostgreSQL) and
json.dumps lines appended to a file (JSONL).
Record building: CallRecord -> privacy-safe body (span mapping, redaction, evidence filter) per second,
vs json.dumps of the CallRecord's Decision dicts (the naive "log it all" a user might write, which
would store raw text).
End to end: records per second through AuditLog.record() into SQLite, flushed.
Export: MB/s of jsonl, csv and parquet over the SQLite store, vs reading the body column and writing
it to a file (the plain dump a user would otherwise script).
No eval data is needed: the records are synthetic (placeholder names, .test domains).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def synthetic_record(i: int) -> Any:
    from guardrails.types import (Action, CallRecord, CheckTiming, Decision, Finding, Judgement, Operator,
                                  Principal)

    text_in = (f"Hello, I am Person{i % 97} Example, mail person{i % 97}@example.test, phone +1 555 01{i % 100:02d}; "
               "please summarise the attached quarterly report in three bullet points. " * 2)
    passed = text_in.replace(f"Person{i % 97} Example", "<PERSON_1>", 1)
    js = (Judgement(Finding("pii", "PERSON", 0.85, (12, 12 + len(f"Person{i % 97} Example")), {"recognizer": "spacy"}, 0),
                    Action.REDACT, Operator.PSEUDONYMISE, "pii/PERSON"),
          Judgement(Finding("pii", "PHONE_NUMBER", 0.75, (text_in.index("+1"), text_in.index("+1") + 15), {}, 0),
                    Action.FLAG, None, "pii/PHONE_NUMBER"),
          Judgement(Finding("injection", "prompt_injection", 0.02, None, {}, 0), Action.ALLOW, None, "inj/x"))
    dec_in = Decision("input", Action.REDACT, js, (passed,), (CheckTiming("pii", "input", 12.5), CheckTiming("injection", "input", 3.1)),
                      "default", "d" * 64, f"r{i}")
    dec_out = Decision("output", Action.ALLOW, (Judgement(Finding("toxicity", "toxicity", 0.01, None, {}, 0), Action.ALLOW),),
                       ("Here are three bullet points about the report for <PERSON_1>: growth, costs, outlook." * 2,),
                       (CheckTiming("toxicity", "output", 8.0),), "default", "d" * 64, f"r{i}")
    return CallRecord(f"req-{i:08d}", Principal(f"key-{i % 13}", "user"), "/v1/chat/completions", f"model-{i % 3}", "cloud",
                      dec_in, dec_out, 1_790_000_000.0 + i, 250.0, 280.0, 200, None, 120, 60, Action.REDACT, False)


def bodies_for(n: int) -> list[dict[str, Any]]:
    from guardrails.audit.record import build_body

    return [build_body(synthetic_record(i), policy_id="default", policy_version="d" * 64, text_mode="redacted",
                       hash_key=b"k" * 32) for i in range(n)]


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# ------------------------------------------------------------------------------------------- baselines


def plain_sqlite(path: Path, bodies: list[dict[str, Any]], batch: int) -> float:
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT, ts REAL, principal TEXT, action TEXT, model TEXT, body TEXT)")
    db.execute("CREATE INDEX t_ts ON t (ts)")
    db.execute("CREATE INDEX t_p ON t (principal, ts)")

    def run() -> None:
        for s in range(0, len(bodies), batch):
            chunk = bodies[s:s + batch]
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO t (id, ts, principal, action, model, body) VALUES (?, ?, ?, ?, ?, ?)",
                           [(b["id"], b["ts"], b["principal"]["id"], b["final"], b["model"], json.dumps(b)) for b in chunk])
            db.execute("COMMIT")

    took = timed(run)
    db.close()
    return took


def plain_jsonl(path: Path, bodies: list[dict[str, Any]], batch: int) -> float:
    def run() -> None:
        for s in range(0, len(bodies), batch):
            chunk = bodies[s:s + batch]
            with open(path, "a", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(b) + "\n" for b in chunk))

    return timed(run)


def plain_pg(url: str, bodies: list[dict[str, Any]], batch: int) -> float:
    import psycopg

    from guardrails.audit.sql import _split_pg_url

    conninfo, schema = _split_pg_url(url)
    db = psycopg.connect(conninfo, autocommit=True)
    db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    db.execute(f'CREATE TABLE "{schema}".t (seq BIGSERIAL PRIMARY KEY, id TEXT, ts DOUBLE PRECISION, principal TEXT, '
               'action TEXT, model TEXT, body TEXT)')
    db.execute(f'CREATE INDEX ON "{schema}".t (ts)')
    db.execute(f'CREATE INDEX ON "{schema}".t (principal, ts)')

    def run() -> None:
        for s in range(0, len(bodies), batch):
            chunk = bodies[s:s + batch]
            with db.transaction(), db.cursor() as cur:
                cur.executemany(f'INSERT INTO "{schema}".t (id, ts, principal, action, model, body) VALUES (%s, %s, %s, %s, %s, %s)',
                                [(b["id"], b["ts"], b["principal"]["id"], b["final"], b["model"], json.dumps(b)) for b in chunk])

    took = timed(run)
    db.close()
    return took


# ------------------------------------------------------------------------------------------------ main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small sample (< 2 min)")
    ap.add_argument("--no-postgres", action="store_true")
    ap.add_argument("--pg", default=os.environ.get("TRUSTWALL_TEST_PG", PG_DEFAULT))
    args = ap.parse_args()

    from guardrails.audit import AuditLog, Filters, open_store
    from guardrails.audit.export import export_chunks
    from guardrails.audit.record import build_body
    from guardrails.audit.signing import HmacSigner
    from guardrails.settings import Settings

    n_batch = 5_000 if args.quick else 50_000
    n_single = 500 if args.quick else 5_000
    n_export = 5_000 if args.quick else 100_000
    tmp = Path(tempfile.mkdtemp(prefix="bench_audit_"))
    settings = Settings(data_dir=tmp / "data", audit_key="bench-audit-key", hash_key="bench-hash-key")
    signer = HmacSigner(b"bench-audit-key")
    rows: list[tuple[str, ...]] = []

    # record building
    recs = [synthetic_record(i) for i in range(2_000 if args.quick else 20_000)]
    t_build = timed(lambda: [build_body(r, policy_id="default", policy_version="d" * 64, text_mode="redacted",
                                        hash_key=b"k" * 32) for r in recs])
    t_naive = timed(lambda: [json.dumps({"in": r.input.to_dict(), "out": r.output.to_dict()}) for r in recs])
    rows.append(("build body (redacted)", "-", f"{rate(len(recs), t_build):,.0f}", f"{rate(len(recs), t_naive):,.0f}",
                 f"{t_build / t_naive:.2f}x slower" if t_build > t_naive else f"{t_naive / t_build:.2f}x faster",
                 "baseline: json.dumps of both Decisions (raw text!)"))

    sinks: list[tuple[str, Callable[[], Any], Callable[[list[dict[str, Any]], int], float]]] = []
    sinks.append(("sqlite", lambda: open_store(settings, f"sqlite:///{tmp / f'a{uuid.uuid4().hex[:6]}.db'}", signer=signer),
                  lambda b, k: plain_sqlite(tmp / f"p{uuid.uuid4().hex[:6]}.db", b, k)))
    sinks.append(("jsonl", lambda: open_store(settings, f"jsonl:///{tmp / f'a{uuid.uuid4().hex[:6]}.jsonl'}", signer=signer),
                  lambda b, k: plain_jsonl(tmp / f"p{uuid.uuid4().hex[:6]}.jsonl", b, k)))
    pg_schemas: list[str] = []
    if not args.no_postgres:
        try:
            import psycopg

            psycopg.connect(args.pg, connect_timeout=3).close()

            def pg_url() -> str:
                name = f"tw_bench_audit_{os.getpid()}_{uuid.uuid4().hex[:6]}"
                pg_schemas.append(name)
                return f"{args.pg}?schema={name}"

            sinks.append(("postgresql", lambda: open_store(settings, pg_url(), signer=signer),
                          lambda b, k: plain_pg(pg_url(), b, k)))
        except Exception as exc:  # noqa: BLE001
            print(f"(PostgreSQL skipped: {type(exc).__name__})")

    try:
        for name, make, baseline in sinks:
            for batch, n in ((1, n_single), (256, n_batch)):
                bodies = bodies_for(n)
                store = make()
                t_chain = timed(lambda: [store.append(bodies[s:s + batch]) for s in range(0, n, batch)])
                store.close()
                t_plain = baseline(bodies_for(n), batch)
                ratio = t_chain / t_plain
                rows.append((f"append {name}", str(batch), f"{rate(n, t_chain):,.0f}", f"{rate(n, t_plain):,.0f}",
                             f"{ratio:.2f}x time", "baseline: plain unchained inserts" if name != "jsonl"
                             else "baseline: json.dumps lines to a file"))

        # end to end through the AuditLog (build + queue + writer thread + SQLite), flushed
        async def e2e() -> float:
            store = open_store(settings, f"sqlite:///{tmp / 'e2e.db'}", signer=signer)
            log = AuditLog(store, policy_id="default", policy_version="d" * 64, queue_size=10_000)
            t0 = time.perf_counter()
            for r in recs:
                await log.record(r)
            await log.aclose()
            return time.perf_counter() - t0

        t_e2e = asyncio.run(e2e())
        rows.append(("AuditLog.record -> sqlite", "auto", f"{rate(len(recs), t_e2e):,.0f}", "-", "-",
                     "incl. body building, queue, flush, final checkpoint"))

        # export
        src = open_store(settings, f"sqlite:///{tmp / 'export.db'}", signer=signer)
        for s in range(0, n_export, 1000):
            src.append(bodies_for(min(1000, n_export - s)))
        db_path = tmp / "export.db"

        def plain_dump() -> int:
            db = sqlite3.connect(str(db_path))
            size = 0
            with open(tmp / "plain.jsonl", "w", encoding="utf-8") as fh:
                for (b,) in db.execute("SELECT body FROM audit_records ORDER BY seq"):
                    fh.write(b + "\n")
                    size += len(b) + 1
            db.close()
            return size

        def plain_csv() -> int:  # what a user would script: json.loads each body, nested fields as JSON
            import csv

            db = sqlite3.connect(str(db_path))
            with open(tmp / "plain.csv", "w", encoding="utf-8", newline="") as fh:
                w = None
                for (b,) in db.execute("SELECT body FROM audit_records ORDER BY seq"):
                    row = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in json.loads(b).items()}
                    if w is None:
                        w = csv.DictWriter(fh, fieldnames=list(row))
                        w.writeheader()
                    w.writerow(row)
            db.close()
            return (tmp / "plain.csv").stat().st_size

        def plain_parquet() -> int:  # all rows in memory, schema inferred, one write
            import pyarrow as pa
            import pyarrow.parquet as pq

            db = sqlite3.connect(str(db_path))
            rows = [json.loads(b) for (b,) in db.execute("SELECT body FROM audit_records ORDER BY seq")]
            db.close()
            pq.write_table(pa.Table.from_pylist(rows), tmp / "plain.parquet", compression="zstd")
            return (tmp / "plain.parquet").stat().st_size

        baselines = {"jsonl": (plain_dump, "SELECT body -> file"),
                     "csv": (plain_csv, "json.loads + csv.DictWriter"),
                     "parquet": (plain_parquet, "from_pylist(all rows) + write_table")}
        for fmt in ("jsonl", "csv", "parquet"):
            fn, label = baselines[fmt]
            t0 = time.perf_counter()
            plain_size = fn()
            t_plain = time.perf_counter() - t0
            size = 0
            t0 = time.perf_counter()
            with open(tmp / f"out.{fmt}", "wb") as fh:
                for chunk in export_chunks(src, fmt, Filters()):
                    fh.write(chunk)
                    size += len(chunk)
            took = time.perf_counter() - t0
            rows.append((f"export {fmt}", f"{n_export:,} rec",
                         f"{size / 1e6 / took:,.1f} MB/s ({rate(n_export, took):,.0f} rec/s)",
                         f"{plain_size / 1e6 / t_plain:,.1f} MB/s ({rate(n_export, t_plain):,.0f} rec/s)",
                         f"{took / t_plain:.2f}x time", f"output {size / 1e6:.1f} MB; baseline: {label}"))
        src.close()
    finally:
        if pg_schemas:
            import psycopg

            from guardrails.audit.sql import _split_pg_url

            with psycopg.connect(_split_pg_url(args.pg)[0], autocommit=True) as db:
                for s in pg_schemas:
                    db.execute(f'DROP SCHEMA IF EXISTS "{s}" CASCADE')

    head = ("what", "batch", "trustwall /s", "baseline /s", "ratio", "note")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    print(" | ".join(h.ljust(w) for h, w in zip(head, widths)))
    print("-+-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
