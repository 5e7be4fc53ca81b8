"""What the shared audit chain head costs with 1, 2 and 4 replicas (PostgreSQL).

    .venv/bin/python -m benchmarks.bench_replicas [--quick] [--seconds S] [--pg URL]

Each replica is a process with its own connection appending to one PostgreSQL chain through the real
`PostgresSink.append` (SELECT ... FOR UPDATE on the head row, INSERT the records, UPDATE the head, one
transaction), as `trustwall serve` replicas sharing TRUSTWALL_AUDIT_URL do. Lock wait is measured
directly: the time each append spends in the head-row SELECT ... FOR UPDATE (the row lock), timed
inside the append. Batch sizes: 1 record per append (the worst case: the AuditLog writes each record
on its own only when calls arrive one at a time) and 16 (under load the AuditLog's queue batches).

Baseline in the same run: the same replicas each appending to its own chain (its own schema, no shared
head), the alternative design (per-replica chains). Ratios compare shared vs separate at the same N.
The machine has 2 cores shared by the replicas and PostgreSQL itself, so 4 replicas also compete for
CPU; the lock-wait column separates the two.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PG = os.environ.get("TRUSTWALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def body(i: int, w: int) -> dict[str, Any]:
    ts = time.time()
    return {"v": 1, "id": f"r{w}-{i}", "time": "2026-12-06T00:00:00Z", "ts": ts,
            "principal": {"id": f"key:{w}", "role": "user"}, "route": "/v1/chat/completions", "upstream": "echo",
            "model": "m", "policy": {"id": "bench", "version": "x"}, "final": "allow",
            "actions": {"input": "allow", "output": "allow"}, "categories": [], "findings": [], "route_rule": None,
            "detector_errors": [], "status": 200, "error": None, "streamed": False,
            "latency_ms": {"total": 5.0, "upstream": 2.0, "checks": []}, "tokens": {"prompt": 12, "completion": 30},
            "text": {"mode": "none", "input": None, "output": None}}


def worker(url: str, w: int, batch: int, seconds: float, start: Any, out: Any) -> None:
    from guardrails.audit import open_store
    from guardrails.settings import Settings

    settings = Settings(data_dir=Path(f"/tmp/tw-bench-replicas-{os.getpid()}"), audit_key="bench-audit-key")
    store = open_store(settings, url, checkpoint_every=1000)
    waits: list[float] = []
    orig = store._head  # the head-row SELECT ... FOR UPDATE: timing it is the lock wait

    def timed_head(cur: Any, lock: bool = True) -> Any:
        t0 = time.perf_counter()
        try:
            return orig(cur, lock)
        finally:
            if lock:
                waits.append(time.perf_counter() - t0)

    store._head = timed_head  # type: ignore[method-assign]
    lat: list[float] = []
    start.wait()
    end = time.perf_counter() + seconds
    i = 0
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        store.append([body(i + k, w) for k in range(batch)])
        lat.append(time.perf_counter() - t0)
        i += batch
    store.close()
    out.put({"appends": len(lat), "records": i, "lat": lat, "waits": waits})


def run(n: int, batch: int, seconds: float, shared: bool) -> dict[str, Any]:
    from guardrails.audit import open_store, verify
    from guardrails.settings import Settings

    tag = uuid.uuid4().hex[:8]
    urls = [f"{PG}?schema=twb_{tag}" if shared else f"{PG}?schema=twb_{tag}_{w}" for w in range(n)]
    settings = Settings(data_dir=Path("/tmp/tw-bench-replicas"), audit_key="bench-audit-key")
    for u in set(urls):
        open_store(settings, u).close()  # create schema and head once, before the clock starts
    ctx = mp.get_context("fork")
    start, out = ctx.Barrier(n + 1), ctx.Queue()
    procs = [ctx.Process(target=worker, args=(urls[w], w, batch, seconds, start, out)) for w in range(n)]
    for p in procs:
        p.start()
    start.wait()
    res = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    lat = sorted(x for r in res for x in r["lat"])
    waits = [x for r in res for x in r["waits"]]
    store = open_store(settings, urls[0])
    ok = verify(store, settings).ok
    store.close()
    _drop(urls)
    return {"n": n, "batch": batch, "shared": shared, "appends_s": sum(r["appends"] for r in res) / seconds,
            "records_s": sum(r["records"] for r in res) / seconds, "p50_ms": statistics.median(lat) * 1000,
            "p95_ms": lat[int(0.95 * (len(lat) - 1))] * 1000, "wait_ms": statistics.mean(waits) * 1000,
            "wait_share": sum(waits) / sum(lat), "chain_ok": ok}


def _drop(urls: list[str]) -> None:
    import psycopg

    from guardrails.audit.sql import _split_pg_url

    with psycopg.connect(PG, autocommit=True) as db:
        for u in set(urls):
            db.execute(f'DROP SCHEMA IF EXISTS "{_split_pg_url(u)[1]}" CASCADE')


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 s per row instead of 6")
    ap.add_argument("--seconds", type=float, default=None)
    args = ap.parse_args(argv)
    seconds = args.seconds or (2.0 if args.quick else 6.0)
    rows = []
    for batch in (1, 16):
        for n in (1, 2, 4):
            for shared in (True, False):
                if n == 1 and not shared:
                    continue  # one replica: the same thing
                r = run(n, batch, seconds, shared)
                rows.append(r)
                print(f"  batch {batch:>2} replicas {n} {'shared' if shared else 'separate'}: "
                      f"{r['appends_s']:.0f} appends/s, wait {r['wait_ms']:.2f} ms", flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; PostgreSQL on loopback; {seconds:g} s per row\n")
    print("| records/append | replicas | chain | appends/s | records/s | append p50 ms | p95 ms | head-lock wait "
          "ms (mean) | share of append time | appends/s vs separate chains | chain verifies |")
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        sep = next((x for x in rows if x["n"] == r["n"] and x["batch"] == r["batch"] and not x["shared"]), None)
        ratio = f"{r['appends_s'] / sep['appends_s']:.2f}x" if (r["shared"] and sep) else ""
        print(f"| {r['batch']} | {r['n']} | {'shared' if r['shared'] else 'one per replica'} | {r['appends_s']:.0f} | "
              f"{r['records_s']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['wait_ms']:.2f} | "
              f"{100 * r['wait_share']:.0f}% | {ratio} | {'yes' if r['chain_ok'] else 'NO'} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
