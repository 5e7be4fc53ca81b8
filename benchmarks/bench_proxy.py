"""What the proxy costs: the same requests sent directly to an OpenAI-compatible test upstream and
through the trustwall proxy in front of it, in the same run, on loopback.

    python -m benchmarks.bench_proxy [--quick] [--rate 500] [--no-audit]

Three separate processes (upstream, proxy, load generator), so the proxy gets a core of its own as far
as the machine allows. The load generator is open-loop (requests start on a fixed schedule at --rate,
latency counted from the scheduled start, so queueing is not hidden) over keep-alive connections of a
minimal HTTP/1.1 client. Phases:

  1. no detectors: overhead p50/p99 at --rate requests/s (goal: p50 <= 2 ms at 500 req/s);
  2. the embedded default policy (real detectors), a 1,000-character prompt and a 1,000-character answer,
     one request at a time (goal: p50 overhead <= 40 ms on a 2-core CPU);
  3. streaming: time to first token and to the last byte, directly and through the proxy, with no
     detectors and with the default policy (guarded streaming holds text back until it is checked).
  4. every route (issue 17, benchmarks/proxy_routes.py): /v1/embeddings, /v1/messages (Anthropic) and
     /v1/responses beside a /v1/chat/completions reference row, one at a time, with no detectors and
     with the default policy.

The baseline is the same client talking straight to the upstream. No eval data is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.proxy_routes import route_rows

ROOT = Path(__file__).resolve().parents[1]
UPSTREAM_MODULE = ROOT / "tests" / "guardrails" / "proxy" / "proxy_upstream.py"

PROMPT_1K = (
    "Hello, my name is Maria Gonzalez and I manage the accounts team at a mid-sized logistics company. "
    "You can reach me at maria.gonzalez@example.com if anything is unclear. We are preparing the quarterly "
    "review of our shipping contracts and I would like help drafting a short summary for the board. The main "
    "points are: fuel costs rose by about eight percent over the quarter, two of our regional carriers "
    "renegotiated their rates, and the new warehouse in the north opened three weeks late because of "
    "permit delays. On the positive side, on-time delivery improved from 91 to 94 percent and customer "
    "complaints fell by a fifth. Please write the summary in a neutral, factual tone, keep it under two "
    "hundred words, and end with two or three concrete recommendations for the next quarter, such as "
    "hedging fuel purchases or reviewing the permit process earlier. Avoid jargon; several board members "
    "are new. Thank you very much for your help with this, it is much appreciated by the whole team here."
)[:1000]
ANSWER_1K = (
    "Quarterly summary for the board. Over the last quarter our shipping operation faced higher costs but "
    "delivered better service. Fuel prices rose by roughly eight percent, which was the largest single "
    "driver of the increase in operating expenses. Two regional carriers renegotiated their contracts, "
    "adding a smaller but lasting increase to our base rates. The new northern warehouse opened three "
    "weeks later than planned because permits took longer than expected, which delayed the planned shift "
    "of volume away from the central hub. Service quality improved: on-time delivery rose from 91 to 94 "
    "percent and customer complaints fell by about a fifth, a sign that the routing changes made earlier "
    "in the year are working. Recommendations for the next quarter: first, hedge part of our expected "
    "fuel purchases to reduce exposure to price swings; second, start permit applications for future "
    "sites at least three months earlier; third, review carrier contracts together so that renewals can "
    "be negotiated as a package rather than one at a time."
)[:1000]
# The same kind of answer, but mentioning people and groups (neutrally): the bias check's parser runs.
ANSWER_1K_GROUPS = (
    "Staff survey summary for the board. This year 412 employees answered, of whom 230 were women and 182 "
    "were men; older workers and younger staff took part in similar numbers. She who led the survey, our "
    "head of people, noted that response rates rose in every office. Parents asked for more flexible "
    "hours, and several employees with disabilities asked for better step-free access at the northern "
    "warehouse, which is now planned for spring. Immigrants who joined the company in the last two years "
    "rated the onboarding programme highly, and many asked for more language classes. Catholic and Muslim "
    "colleagues both welcomed the new quiet room. Managers said the main concern across the teams is "
    "workload during the peak season. Recommendations: first, extend flexible hours to the warehouse "
    "teams; second, fund the access works in the spring budget; third, repeat the survey in six months so "
    "that the board can see whether the changes are working for everyone across all of our offices."
)[:1000]


# ------------------------------------------------------------------------------------------ servers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve_upstream(port: int) -> None:
    import importlib.util

    import uvicorn

    spec = importlib.util.spec_from_file_location("proxy_upstream", UPSTREAM_MODULE)
    mod = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    assert spec is not None and spec.loader is not None
    sys.modules["proxy_upstream"] = mod
    spec.loader.exec_module(mod)
    app, _ = mod.make_upstream_app("bench", record=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


STEERING = ["test_reply", "test_chunks", "test_mode", "test_delay", "test_prefix"]


def old_default_policy() -> Any:
    """The default policy as it was before the trained model: no injection check, lexical toxicity."""
    import yaml

    from detectors.registry import builtin_registry
    from guardrails.policy import parse_policy
    from guardrails.settings import default_policy_path

    doc = yaml.safe_load(default_policy_path().read_text())
    doc["detectors"] = [d for d in doc["detectors"] if d["type"] != "injection"]
    for d in doc["detectors"]:
        if d["type"] == "toxicity":
            d["options"] = {**d.get("options", {}), "model": "lexical"}
            d["rules"] = {"*": {"action": "block", "threshold": 0.8}, "identity_attack": {"action": "block",
                          "threshold": 0.7}, "threat": {"action": "block", "threshold": 0.7}}
    doc["policy"]["id"] = "default-before-minilm"
    return parse_policy(yaml.safe_dump(doc), registry=builtin_registry())


def _serve_proxy(port: int, mode: str, upstream_url: str, data_dir: str, audit: bool) -> None:
    import uvicorn

    from detectors.registry import builtin_registry
    from guardrails.policy import load_policy, parse_policy
    from guardrails.proxy import create_app
    from guardrails.runtime import build_runtime
    from guardrails.settings import Settings, default_policy_path

    settings = Settings(data_dir=Path(data_dir), blas_threads=1)  # as `trustwall serve` (the proxy's default)
    if mode == "none":
        policy = parse_policy(f"policy: {{id: bench-none}}\nupstreams: [{{name: up, kind: openai, url: '{upstream_url}'}}]")
        override = None
    elif mode == "old-default":
        policy = old_default_policy()
        override = upstream_url
    else:
        policy = load_policy(default_policy_path(), builtin_registry())
        override = upstream_url
    if hasattr(policy, "wire"):  # the test upstream's steering fields (test_reply, ...) are no model text
        policy = policy.model_copy(update={"wire": policy.wire.model_copy(update={"pass_fields": STEERING})})
    runtime = build_runtime(settings, policy=policy, audit=audit)
    app = create_app(runtime, upstream=override)
    from guardrails.proxy.protocol import http_protocol

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, http=http_protocol())


class Server:
    def __init__(self, *args: str):
        self.port = _free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bench_proxy", "--_serve", *args, "--_port", str(self.port)],
                                     cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    async def wait_ready(self, path: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"server exited: {err[-2000:]}")
            try:
                conn = await Conn.open(self.port)
                status, _ = await conn.request("GET", path)
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            await asyncio.sleep(0.2)
        raise RuntimeError("server did not become ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


# ------------------------------------------------------------------------------------------- client


_CONTENT_RE = re.compile(rb'"content":\s*"[^"]')


class Conn:
    """A minimal keep-alive HTTP/1.1 client: Content-Length and chunked bodies."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int):
        self.r, self.w, self.port = reader, writer, port

    @classmethod
    async def open(cls, port: int) -> Conn:
        r, w = await asyncio.open_connection("127.0.0.1", port)
        return cls(r, w, port)

    def close(self) -> None:
        self.w.close()

    async def request(self, method: str, path: str, body: bytes = b"", first_token: list[float] | None = None,
                      want_headers: bool = False) -> tuple[int, bytes] | tuple[int, bytes, dict[str, str]]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nAuthorization: Bearer bench\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
        self.w.write(head + body)
        await self.w.drain()
        raw = await self.r.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ")[1])
        headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        if "content-length" in headers:
            data = await self.r.readexactly(int(headers["content-length"]))
        else:
            parts = []
            while True:
                size = int((await self.r.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.r.readuntil(b"\r\n")
                    break
                chunk = (await self.r.readexactly(size + 2))[:-2]
                if first_token is not None and not first_token and _CONTENT_RE.search(chunk):
                    first_token.append(time.perf_counter())
                parts.append(chunk)
            data = b"".join(parts)
        return (status, data, headers) if want_headers else (status, data)


class Pool:
    """Idle keep-alive connections, most recent first; ones idle for more than 2 s are dropped (uvicorn
    closes keep-alive connections after 5 s idle, and a reused closed one would count as an error)."""

    def __init__(self, port: int):
        self.port = port
        self.free: list[tuple[float, Conn]] = []

    async def get(self) -> Conn:
        now = time.monotonic()
        while self.free:
            t, c = self.free.pop()
            if now - t < 2.0:
                return c
            c.close()
        return await Conn.open(self.port)

    def put(self, c: Conn) -> None:
        self.free.append((time.monotonic(), c))

    def close(self) -> None:
        for _, c in self.free:
            c.close()


@dataclass
class Sample:
    lat_ms: list[float] = field(default_factory=list)
    ttft_ms: list[float] = field(default_factory=list)
    checks_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)

    def fail(self, kind: str) -> None:
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1
    wall_s: float = 0.0

    def p(self, q: float, which: str = "lat") -> float:
        xs = sorted({"lat": self.lat_ms, "ttft": self.ttft_ms, "checks": self.checks_ms}[which])
        if not xs:
            return float("nan")
        return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]

    @property
    def rps(self) -> float:
        return len(self.lat_ms) / self.wall_s if self.wall_s else 0.0


async def open_loop(port: int, body: bytes, rate: float, duration: float, path: str = "/v1/chat/completions") -> Sample:
    """Start requests on a fixed schedule; latency from the scheduled start."""
    pool = Pool(port)
    out = Sample()
    n = int(rate * duration)
    t0 = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        start = t0 + i / rate
        delay = start - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        try:
            c = await pool.get()
        except OSError as exc:
            out.fail(f"connect {type(exc).__name__}")
            return
        try:
            status, _ = await c.request("POST", path, body)
        except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
            out.fail(type(exc).__name__)
            c.close()
            return
        pool.put(c)
        if status != 200:
            out.fail(f"HTTP {status}")
            return
        out.lat_ms.append((time.perf_counter() - start) * 1000)

    await asyncio.gather(*(one(i) for i in range(n)))
    out.wall_s = time.perf_counter() - t0
    pool.close()
    return out


async def sequential(port: int, body: bytes, n: int, stream: bool = False, concurrency: int = 1,
                     path: str = "/v1/chat/completions") -> Sample:
    out = Sample()
    pool = Pool(port)
    t0 = time.perf_counter()
    it = iter(range(n))

    async def worker() -> None:
        for _ in it:
            c = await pool.get()
            first: list[float] = []
            s = time.perf_counter()
            try:
                status, data, headers = await c.request("POST", path, body,  # type: ignore[misc]
                                                        first_token=first if stream else None, want_headers=True)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                out.fail(type(exc).__name__)
                c.close()
                continue
            pool.put(c)
            if status != 200 or b"content_filter" in data:
                out.fail(f"HTTP {status}" if status != 200 else "content_filter")
                continue
            timing = dict(re.findall(r"(\w+);dur=([\d.]+)", headers.get("server-timing", "")))
            if timing:
                out.checks_ms.append(float(timing.get("input", 0)) + float(timing.get("output", 0)))
            e = time.perf_counter()
            out.lat_ms.append((e - s) * 1000)
            if stream and first:
                out.ttft_ms.append((first[0] - s) * 1000)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    out.wall_s = time.perf_counter() - t0
    pool.close()
    return out


def _body(prompt: str, answer: str | None = None, stream: bool = False, chunks: list[str] | None = None) -> bytes:
    b: dict = {"model": "bench-model", "messages": [{"role": "user", "content": prompt}]}
    if answer is not None:
        b["test_reply"] = answer
    if stream:
        b["stream"] = True
    if chunks is not None:
        b["test_chunks"] = chunks
    return json.dumps(b).encode()


# --------------------------------------------------------------------------------------------- main


def _row(name: str, direct: Sample, proxied: Sample, which: str = "lat", errs: list[str] | None = None) -> str:
    if errs is not None:
        for who, smp in (("direct", direct), ("proxy", proxied)):
            if smp.error_kinds:
                errs.append(f"{name} / {who}: " + ", ".join(f"{k} x{v}" for k, v in smp.error_kinds.items()))
    d50, d99 = direct.p(0.5, which), direct.p(0.99, which)
    p50, p99 = proxied.p(0.5, which), proxied.p(0.99, which)
    n = len(proxied.lat_ms if which == "lat" else proxied.ttft_ms)
    return (f"| {name} | {n} | {d50:.2f} | {d99:.2f} | {p50:.2f} | {p99:.2f} | **{p50 - d50:+.2f}** | {p99 - d99:+.2f} | "
            f"{proxied.rps:.0f} | {direct.errors}/{proxied.errors} |")


async def run(args: argparse.Namespace) -> int:
    quick = args.quick
    rate = args.rate
    dur = 3.0 if quick else 15.0
    n_default = 20 if quick else 200
    n_stream = 20 if quick else 200
    data_dir = tempfile.mkdtemp(prefix="trustwall-bench-proxy-")
    rows: list[str] = []
    notes: list[str] = []
    errs: list[str] = []
    up = Server("upstream")
    await up.wait_ready("/v1/models")
    upstream_url = f"http://127.0.0.1:{up.port}/v1"
    small = _body("Hello there, please answer briefly: what is the capital of France?", "Paris.")
    chunks = [ANSWER_1K[i:i + 25] for i in range(0, len(ANSWER_1K), 25)]
    stream_body = _body("Summarise the quarter in a few sentences.", stream=True, chunks=chunks)
    try:
        # ---- 1 + 3a: no detectors
        px = Server("proxy", "--_mode", "none", "--_upstream", upstream_url, "--_data", data_dir,
                    *(["--no-audit"] if args.no_audit else []))
        await px.wait_ready("/readyz")
        try:
            for port in (up.port, px.port):  # warm-up
                await open_loop(port, small, min(rate, 200), 1.0)
            direct = await open_loop(up.port, small, rate, dur)
            proxied = await open_loop(px.port, small, rate, dur)
            rows.append(_row(f"no detectors, {rate:.0f} req/s open loop, short prompt", direct, proxied, errs=errs))
            for port in (up.port, px.port):
                await sequential(port, stream_body, 5, stream=True)
            sd = await sequential(up.port, stream_body, n_stream, stream=True)
            sp = await sequential(px.port, stream_body, n_stream, stream=True)
            rows.append(_row("no detectors, stream 1,000 chars in 40 chunks: time to first token", sd, sp, "ttft"))
            rows.append(_row("no detectors, stream: to the last byte", sd, sp))
            rows += await route_rows(sequential, _row, up.port, px.port, n_default, "no detectors",  # issue 17
                                     "Hello there, please answer briefly: what is the capital of France?", "Paris.", errs)
        finally:
            px.stop()
        # ---- 2a: the previous default policy (lexical toxicity, no injection check), the baseline of 2
        po = Server("proxy", "--_mode", "old-default", "--_upstream", upstream_url, "--_data", data_dir,
                    *(["--no-audit"] if args.no_audit else []))
        try:
            await po.wait_ready("/readyz", timeout=600)
            big = _body(PROMPT_1K, ANSWER_1K)
            for port in (up.port, po.port):
                await sequential(port, big, 5)
            od = await sequential(up.port, big, n_default)
            op = await sequential(po.port, big, n_default)
            rows.append(_row("previous default policy (lexical toxicity, no injection check), 1,000 + 1,000 chars",
                             od, op))
        except RuntimeError as exc:
            notes.append(f"previous default policy: could not start ({str(exc)[:300]})")
        finally:
            po.stop()
        # ---- 2 + 3b: the default policy with its real detectors
        pd = Server("proxy", "--_mode", "default", "--_upstream", upstream_url, "--_data", data_dir,
                    *(["--no-audit"] if args.no_audit else []))
        try:
            await pd.wait_ready("/readyz", timeout=600)
        except RuntimeError as exc:
            notes.append(f"default policy: pending, the proxy could not start with it ({str(exc)[:300]})")
            pd.stop()
            pd = None  # type: ignore[assignment]
        if pd is not None:
            try:
                big = _body(PROMPT_1K, ANSWER_1K)
                for port in (up.port, pd.port):
                    await sequential(port, big, 5)
                dd = await sequential(up.port, big, n_default)
                dp = await sequential(pd.port, big, n_default)
                rows.append(_row("default policy, 1,000-char prompt + 1,000-char answer, 1 at a time", dd, dp))
                grp = _body(PROMPT_1K, ANSWER_1K_GROUPS)
                gd = await sequential(up.port, grp, n_default)
                gp = await sequential(pd.port, grp, n_default)
                rows.append(_row("default policy, same but the answer mentions groups (bias parser runs)", gd, gp))
                sdd = await sequential(up.port, stream_body, n_stream, stream=True)
                sdp = await sequential(pd.port, stream_body, n_stream, stream=True)
                rows.append(_row("default policy, stream 1,000 chars in 40 chunks: time to first token", sdd, sdp, "ttft"))
                rows.append(_row("default policy, stream: to the last byte", sdd, sdp))
                rows += await route_rows(sequential, _row, up.port, pd.port, n_default, "default policy",  # issue 17
                                         PROMPT_1K, ANSWER_1K, errs)
            finally:
                pd.stop()
            # the proxy reports its check time per call (Server-Timing): the rest of the overhead is its own
            rows.append(f"| default policy: of which input + output checks (the proxy's Server-Timing) | "
                        f"{len(dp.checks_ms)} | | | {dp.p(0.5, 'checks'):.2f} | {dp.p(0.99, 'checks'):.2f} | | | | |")
            own = sorted(lat - chk for lat, chk in zip(dp.lat_ms, dp.checks_ms))
            if own:
                notes.append(f"default policy: the proxy's own share (latency minus check time, per call) p50 "
                             f"{own[len(own) // 2] - dd.p(0.5):.2f} ms over direct")
    finally:
        up.stop()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nbench_proxy ({'quick' if quick else 'full'}), {platform.machine()}, {os.cpu_count()} CPUs, "
          f"load average {load:.1f}, audit {'off' if args.no_audit else 'on (SQLite)'}")
    print("Latencies in ms. 'direct' = the same client straight to the test upstream (baseline); overhead = "
          "proxy minus direct.\n")
    print("| phase | n | direct p50 | direct p99 | proxy p50 | proxy p99 | overhead p50 | overhead p99 | proxy req/s "
          "| errors d/p |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(r)
    for n in notes:
        print(f"\nNOTE: {n}")
    if errs:
        print("\nerrors: " + "; ".join(errs))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small samples (< 2 min)")
    ap.add_argument("--rate", type=float, default=500.0, help="open-loop request rate of phase 1 (req/s)")
    ap.add_argument("--no-audit", action="store_true", help="run the proxy without its audit log")
    ap.add_argument("--_serve", choices=["upstream", "proxy"], help=argparse.SUPPRESS)
    ap.add_argument("--_port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--_mode", choices=["none", "default", "old-default"], help=argparse.SUPPRESS)
    ap.add_argument("--_upstream", help=argparse.SUPPRESS)
    ap.add_argument("--_data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args._serve == "upstream":
        _serve_upstream(args._port)
        return 0
    if args._serve == "proxy":
        _serve_proxy(args._port, args._mode, args._upstream, args._data, not args.no_audit)
        return 0
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
