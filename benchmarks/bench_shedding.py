"""Load shedding under open-loop overload: max_inflight vs no bound, same proxy, same arrivals.

    .venv/bin/python -m benchmarks.bench_shedding [--quick] [--rate R] [--seconds S] [--bound N]

A `trustwall serve` process (keyword policy, SQLite audit) in front of an upstream with a fixed
capacity (2 calls at a time, 100 ms each: 20 calls/s), both separate processes. An open-loop client
sends calls at a fixed rate (default 3x the capacity) whatever the answers, each with a 5 s deadline
(whole call), as a load balancer's clients would. The capacity is kept low on purpose: on this 2-core
machine the load generator, the proxy and the upstream share the cores, and the proxy's own CPU must
not be what saturates first (that is a different overload: see the Proxy section of RESULTS.md). Rows: no bound (what a user has today) and --bound N in flight.
Reports what came back: 200s, 503s (shed, with Retry-After), client timeouts, and the latency of the
200s. Without a bound the backlog grows by (rate - capacity) calls a second and every caller waits;
with one, excess calls are refused in milliseconds and admitted ones see bounded latency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

POLICY = """
policy: {{id: shed-bench}}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options: {{terms: {{secret: [bluebird]}}}}
    rules: {{secret: {{action: block}}}}
upstreams:
  - {{name: up, kind: openai, url: "http://127.0.0.1:{port}/v1", timeout_s: 60}}
"""


def upstream_app(slots: int, service_s: float) -> Any:
    app = FastAPI()
    sem = asyncio.Semaphore(slots)

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> JSONResponse:
        body = await request.json()
        async with sem:
            await asyncio.sleep(service_s)
        return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": "ok"}}],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

    return app


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 60) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


async def open_loop(url: str, rate: float, seconds: float, timeout_s: float) -> dict[str, Any]:
    import httpx

    body = {"model": "m", "messages": [{"role": "user", "content": "hello there"}]}
    out: list[tuple[str, float]] = []
    limits = httpx.Limits(max_connections=4000, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=url, timeout=timeout_s, limits=limits) as c:
        async def one() -> None:
            t0 = time.perf_counter()
            try:
                r = await asyncio.wait_for(c.post("/v1/chat/completions", json=body), timeout_s)
                kind = str(r.status_code)
            except (httpx.TimeoutException, asyncio.TimeoutError):
                kind = "timeout"
            except httpx.HTTPError:
                kind = "error"
            out.append((kind, time.perf_counter() - t0))

        tasks = []
        start = time.perf_counter()
        n = int(rate * seconds)
        for i in range(n):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    ok = sorted(d for k, d in out if k == "200")
    shed = sorted(d for k, d in out if k == "503")
    return {"sent": len(out), "200": len(ok), "503": len(shed), "timeout": sum(k == "timeout" for k, _ in out),
            "other": sum(k not in ("200", "503", "timeout") for k, _ in out),
            "p50_ms": statistics.median(ok) * 1000 if ok else float("nan"),
            "p99_ms": ok[int(0.99 * (len(ok) - 1))] * 1000 if ok else float("nan"),
            "shed_p50_ms": statistics.median(shed) * 1000 if shed else float("nan"),
            "goodput": len(ok) / seconds}


def start_upstream() -> tuple[subprocess.Popen[bytes], int]:
    """A fresh upstream per row: an abandoned backlog of the previous row must not delay this one."""
    up_port = free_port()
    up = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_shedding", "--upstream", str(up_port)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{up_port}/docs")
    return up, up_port


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()  # the unbounded row leaves a backlog that graceful shutdown would drain for long
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def run_row(bound: int | None, rate: float, seconds: float, tmp: Path) -> dict[str, Any]:
    up, up_port = start_upstream()
    port = free_port()
    pol = tmp / "policy.yaml"
    pol.write_text(POLICY.format(port=up_port))
    env = {**os.environ, "TRUSTWALL_DATA_DIR": str(tmp / f"data-{bound}"), "TRUSTWALL_POLICY": str(pol),
           "PYTHONPATH": str(ROOT)}
    env.pop("TRUSTWALL_MAX_INFLIGHT", None)
    if bound:
        env["TRUSTWALL_MAX_INFLIGHT"] = str(bound)
    proc = subprocess.Popen([sys.executable, "-m", "guardrails.cli", "serve", "--port", str(port), "--log-level",
                             "error"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz")
        return asyncio.run(open_loop(f"http://127.0.0.1:{port}", rate, seconds, 5.0))
    finally:
        stop(proc)
        stop(up)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="8 s of arrivals instead of 20")
    ap.add_argument("--rate", type=float, default=60.0, help="arrivals per second (capacity: 20)")
    ap.add_argument("--seconds", type=float, default=None)
    ap.add_argument("--bound", type=int, default=8, help="max_inflight of the shedding row")
    ap.add_argument("--upstream", type=int, default=None, help=argparse.SUPPRESS)  # internal: run the upstream
    args = ap.parse_args(argv)
    if args.upstream:
        import uvicorn

        uvicorn.run(upstream_app(2, 0.100), host="127.0.0.1", port=args.upstream, log_level="error")
        return 0
    seconds = args.seconds or (8.0 if args.quick else 20.0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bound in (None, args.bound):
            r = run_row(bound, args.rate, seconds, Path(tmp))
            rows.append((bound, r))
            print(f"  bound {bound}: {r}", flush=True)
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores; upstream capacity 20 calls/s (2 x 100 ms); "
          f"open-loop arrivals {args.rate:g}/s for {seconds:g} s; client timeout 5 s\n")
    print("| proxy | sent | 200 | 503 (shed) | client timeouts | other | 200 p50 ms | 200 p99 ms | 503 p50 ms | "
          "goodput calls/s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for bound, r in rows:
        name = "no bound (baseline)" if bound is None else f"max_inflight {bound}"
        print(f"| {name} | {r['sent']} | {r['200']} | {r['503']} | {r['timeout']} | {r['other']} | {r['p50_ms']:.0f} | "
              f"{r['p99_ms']:.0f} | {r['shed_p50_ms']:.1f} | {r['goodput']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
