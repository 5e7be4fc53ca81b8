"""What guarding in-process costs, next to the proxy a user would otherwise run.

Every path runs the same policy over the same prompt (a name and an e-mail address, pseudonymised and
restored) with an instant echo "model", so the table shows the guard's own overhead:

  pipeline, caller's loop   baseline: check_input + check_output + restore awaited directly (hand glue)
  @guard async              the decorator on an async function (hops to the Guard's loop and back)
  @guard sync               the decorator on a plain function, called from a thread with no loop
  @guard sync, N threads    the same from N threads at once (throughput)
  proxy, HTTP               POST /v1/chat/completions to the proxy (uvicorn, echo upstream) with httpx

    python -m benchmarks.bench_decorator [--quick] [--policy default|PATH] [--threads 8]

The default policy file is a keyword policy (cheap, exact detectors) so the overhead is not hidden by
detector time; `--policy default` runs the embedded default policy with the real detectors.
"""

from __future__ import annotations

import argparse
import asyncio
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

POLICY = r"""
policy: {id: bench-decorator}
detectors:
  - name: pii
    type: keywords
    stages: [input, output]
    options:
      terms: {PERSON: [Ada Lovelace, Alan Turing, Grace Hopper]}
      patterns: {EMAIL_ADDRESS: ['[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}']}
    rules: {"*": {action: pseudonymise}}
    output_rules: {"*": {action: flag}}
  - name: secrets
    type: keywords
    stages: [input, output]
    options: {patterns: {api_key: ['\bsk-[A-Za-z0-9]{20,}\b']}}
    rules: {"*": {action: block}}
  - name: toxicity
    type: keywords
    stages: [output]
    options: {terms: {toxicity: [idiot, moron]}}
    rules: {"*": {action: block}}
"""

PROMPT = "Hello, I am Ada Lovelace (ada@example.com). Please summarise the attached notes on the engine."


def echo(prompt: str) -> str:
    return f"Reply to: {prompt}"


def timed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


async def atimed(fn: Callable[[], object], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        await fn()  # type: ignore[misc]
        out.append((time.perf_counter() - t) * 1000)
    return out


def p95(xs: list[float]) -> float:
    return sorted(xs)[max(0, int(len(xs) * 0.95) - 1)]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sample (well under 2 minutes)")
    ap.add_argument("--policy", default=None, help="'default' (the embedded policy, real detectors) or a YAML path")
    ap.add_argument("--threads", type=int, default=8)
    args = ap.parse_args(argv)

    from guardrails.inprocess import Guard
    from guardrails.proxy import create_app
    from guardrails.runtime import build_runtime
    from guardrails.settings import Settings
    from guardrails.types import CallContext

    real = args.policy is not None
    n = (40 if args.quick else 300) if real else (300 if args.quick else 3000)
    tmp = Path(tempfile.mkdtemp(prefix="bench-decorator-"))
    if args.policy is None:
        policy_path = tmp / "policy.yaml"
        policy_path.write_text(POLICY)
    elif args.policy == "default":
        policy_path = None
    else:
        policy_path = Path(args.policy)
    settings = Settings(data_dir=tmp / "data", policy=policy_path)
    runtime = build_runtime(settings, audit=False)
    pipeline = runtime.pipeline
    guard = Guard(runtime)

    # warm up every path once (first-call costs are not what this measures)
    async def direct() -> str:
        ctx = CallContext(route="bench")
        dec_in = await pipeline.check_input([PROMPT], ctx)
        dec_out = await pipeline.check_output([echo(dec_in.text)], ctx)
        return pipeline.restore(dec_out.text, ctx)

    @guard.guard
    async def guarded_async(prompt: str) -> str:
        return echo(prompt)

    @guard.guard
    def guarded_sync(prompt: str) -> str:
        return echo(prompt)

    assert asyncio.run(direct()) == echo(PROMPT)
    assert guarded_sync(PROMPT) == echo(PROMPT)

    rows: list[tuple[str, int, float, float, float]] = []  # name, calls, median, p95, calls/s

    async def run_async() -> tuple[list[float], list[float]]:
        return await atimed(direct, n), await atimed(lambda: guarded_async(PROMPT), n)

    base, dec_async = asyncio.run(run_async())
    rows.append(("pipeline, caller's loop (baseline)", n, statistics.median(base), p95(base), 1000 / statistics.mean(base)))
    rows.append(("@guard async", n, statistics.median(dec_async), p95(dec_async), 1000 / statistics.mean(dec_async)))
    dec_sync = timed(lambda: guarded_sync(PROMPT), n)
    rows.append(("@guard sync", n, statistics.median(dec_sync), p95(dec_sync), 1000 / statistics.mean(dec_sync)))

    per_thread = max(1, n // args.threads)
    lat: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        xs = timed(lambda: guarded_sync(PROMPT), per_thread)
        with lock:
            lat.extend(xs)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(args.threads) as ex:
        for f in [ex.submit(worker) for _ in range(args.threads)]:
            f.result()
    wall = time.perf_counter() - t0
    rows.append((f"@guard sync, {args.threads} threads", len(lat), statistics.median(lat), p95(lat), len(lat) / wall))

    # the proxy, over HTTP, with the policy's echo upstream
    import httpx
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(create_app(runtime, host="127.0.0.1"), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    th = threading.Thread(target=server.run, daemon=True)
    th.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    body = {"model": "echo", "messages": [{"role": "user", "content": PROMPT}]}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        r = http.post("/v1/chat/completions", json=body)
        r.raise_for_status()
        via_proxy = timed(lambda: http.post("/v1/chat/completions", json=body).raise_for_status(), n)
    server.should_exit = True
    th.join(10)
    rows.append(("proxy, HTTP (echo upstream)", n, statistics.median(via_proxy), p95(via_proxy),
                 1000 / statistics.mean(via_proxy)))
    guard.close()
    asyncio.run(runtime.aclose())

    base_med = rows[0][2]
    proxy_med = rows[-1][2]
    print(f"policy: {'embedded default (real detectors)' if args.policy == 'default' else (args.policy or 'keyword policy')}"
          f"; prompt {len(PROMPT)} chars; {platform.machine()}, {platform.python_version()}")
    print(f"{'path':40s} {'calls':>6s} {'median ms':>10s} {'p95 ms':>8s} {'calls/s':>9s} {'vs baseline':>12s} {'vs proxy':>9s}")
    for name, calls, med, q95, rate in rows:
        print(f"{name:40s} {calls:6d} {med:10.3f} {q95:8.3f} {rate:9.0f} {med / base_med:11.2f}x {med / proxy_med:8.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
