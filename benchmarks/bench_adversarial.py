"""Adversarial benchmark (issues 20 and 21): per class of attack, cases tried and cases that got through,
against the default policy (real detectors) on loopback.

Classes:
- answer_fields/<way>: a hostile upstream hides an SSN, an API key or an insult in one answer field
  (content, refusal, reasoning, tool-call name or arguments, function_call, audio transcript, annotations,
  content parts, an unknown field, the second of n choices, a choice-level field), plain and streamed in
  3-character fragments; through the proxy (raw HTTP) and wrap_openai (SDK objects). Through = the raw
  value is readable by the caller in any field (fragments joined).
- request_fields/<way>: an SSN in a request field that is not message content (name, assistant refusal,
  metadata, stop, response_format, tool description, unknown field, user, earlier tool-call arguments).
  Through = the raw value reached the upstream.
- upstream_errors: an upstream error message quoting an SSN. Through = it reached the caller.
- placeholders: the caller types placeholders next to a real name, and 50 concurrent calls each send a
  different name while the model echoes placeholders. Through = a value restored that the call's own
  vault does not hold for that placeholder.
- protocol_errors: malformed HTTP (negative Content-Length, two Content-Lengths, CL+TE, a bad chunk, a NUL
  in a header, a garbled request line). Through = an answer that is not an OpenAI-style JSON error.
- audit: guarded calls vs audit records over all of the above. Through = |records - calls|.
- hostile inputs and obfuscated text: run `python -m benchmarks.adversarial.hostile` and
  `python -m benchmarks.adversarial.obfuscation` (they load the models separately; figures in RESULTS.md).

    python -m benchmarks.bench_adversarial [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import platform
import socket
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str, rel: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, ROOT / rel)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


@contextmanager
def serve(app: Any, *, http: Any = "auto", lifespan: str = "on") -> Iterator[int]:
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan=lifespan,
                                           http=http))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.05)
    assert server.started
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(20)


PROTOCOL_CASES = {
    "negative_content_length": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "two_content_lengths": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
    "cl_and_te": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad_chunk": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",
    "nul_in_header": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n{}",
    "garbled_request_line": b"PO\x01ST /v1 HTTP/9.9 extra\r\n\r\n",
}


def raw_http(port: int, payload: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(payload)
        data = b""
        try:
            while True:
                part = s.recv(65536)
                if not part:
                    break
                data += part
        except socket.timeout:
            pass
    return data


def openai_error_body(resp: bytes) -> bool:
    head, _, body = resp.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 4") or b"application/json" not in head.lower():
        return False
    try:
        err = json.loads(body.decode("utf-8", "replace").split("\r\n")[-1] if b"chunked" in head.lower() else body)
    except ValueError:
        return False
    return isinstance(err, dict) and isinstance(err.get("error"), dict) and "message" in err["error"]


def run(quick: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    import httpx
    import openai

    from guardrails.inprocess import Guard
    from guardrails.policy import load_policy
    from guardrails.proxy import create_app
    from guardrails.proxy.protocol import http_protocol
    from guardrails.runtime import build_runtime
    from guardrails.settings import Settings

    hostile = _load("hostile_upstream", "tests/support/hostile_upstream.py")
    log: list[dict[str, Any]] = []
    rows: list[dict[str, Any]] = []
    info: dict[str, Any] = {}

    class Counting:
        def __init__(self) -> None:
            self.records: list[Any] = []

        async def record(self, rec: Any) -> None:
            self.records.append(rec)

        async def aclose(self) -> None:
            pass

    with serve(hostile.make_app(log), lifespan="off") as up_port:
        up = f"http://127.0.0.1:{up_port}/v1"
        import tempfile

        tmp = Path(tempfile.mkdtemp(prefix="tw-adv-"))
        import yaml

        doc = yaml.safe_load((ROOT / "rules" / "default.yaml").read_text())
        doc["upstreams"] = [{"name": "h", "kind": "openai", "url": up}]
        doc["default_upstream"] = "h"
        (tmp / "policy.yaml").write_text(yaml.safe_dump(doc))
        settings = Settings(data_dir=tmp, hash_key="bench-key")
        t0 = time.perf_counter()
        policy = load_policy(tmp / "policy.yaml")
        proxy_rec, guard_rec = Counting(), Counting()
        rt_p = build_runtime(settings, policy=policy, audit=proxy_rec)
        rt_g = build_runtime(settings, policy=policy, audit=guard_rec)
        info["startup_s"] = time.perf_counter() - t0
        guard = Guard(rt_g, owns_runtime=True, on_block="refuse")
        wrapped = guard.wrap_openai(openai.OpenAI(base_url=up, api_key="x", max_retries=0))
        calls = {"proxy": 0, "wrap_openai": 0}
        with serve(create_app(rt_p, host="127.0.0.1"), http=http_protocol()) as port:
            base = f"http://127.0.0.1:{port}/v1"
            hc = httpx.Client(base_url=base, timeout=60)

            def via(way: str, body: dict[str, Any]) -> list[Any]:
                calls[way] += 1
                if way == "proxy":
                    r = hc.post("/chat/completions", json=body)
                    if body.get("stream"):
                        return [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
                    return [r.json()]
                out = wrapped.chat.completions.create(**hostile.sdk_kwargs(body))
                return list(out) if body.get("stream") else [out]

            # answer fields
            fields = hostile.FIELDS
            for way in ("proxy", "wrap_openai"):
                tried = through = 0
                missed: list[str] = []
                for field in fields:
                    for payload in hostile.PAYLOADS:
                        for stream in (False, True):
                            body = {"model": f"field:{field}:{payload}", "stream": stream,
                                    "messages": [{"role": "user", "content": "Tell me something."}]}
                            seen = hostile.visible(via(way, body))
                            tried += 1
                            if any(hostile.PAYLOADS[payload] in t for t in seen):
                                through += 1
                                missed.append(f"{field}/{payload}/{'stream' if stream else 'plain'}")
                rows.append({"class": f"answer_fields/{way}", "tried": tried, "through": through,
                             "note": ", ".join(missed[:6])})

            # request fields
            ssn = "536-22-8170"
            req_cases: list[dict[str, Any]] = [
                {"messages": [{"role": "user", "name": f"SSN {ssn}", "content": "hi"}]},
                {"messages": [{"role": "assistant", "content": None, "refusal": f"SSN {ssn}"},
                              {"role": "user", "content": "hi"}]},
                {"metadata": {"note": f"my SSN is {ssn}"}}, {"stop": [f"SSN {ssn}"]},
                {"response_format": {"type": "json_schema", "json_schema": {
                    "name": "x", "schema": {"type": "object", "description": f"about SSN {ssn}"}}}},
                {"tools": [{"type": "function", "function": {"name": "f", "description": f"uses SSN {ssn}",
                                                             "parameters": {"type": "object"}}}]},
                {"vendor_context": f"my SSN is {ssn}"}, {"user": ssn},
                {"messages": [{"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c", "type": "function", "function": {"name": "f", "arguments": json.dumps({"ssn": f"SSN {ssn}"})}}]},
                    {"role": "tool", "tool_call_id": "c", "content": "done"}, {"role": "user", "content": "hi"}]},
            ]
            for way in ("proxy", "wrap_openai"):
                tried = through = 0
                for extra in req_cases:
                    body = {"model": "echo:", "messages": [{"role": "user", "content": "hi"}], **extra}
                    n = len(log)
                    via(way, body)
                    tried += 1
                    through += any(ssn in json.dumps(b) for b in log[n:])
                rows.append({"class": f"request_fields/{way}", "tried": tried, "through": through, "note": ""})

            # upstream error messages (proxy: wrap_openai raises the caller's own SDK error)
            tried = through = 0
            for payload in hostile.PAYLOADS:
                calls["proxy"] += 1
                r = hc.post("/chat/completions", json={"model": f"error:{payload}",
                                                       "messages": [{"role": "user", "content": "hi"}]})
                tried += 1
                through += hostile.PAYLOADS[payload] in r.text
            rows.append({"class": "upstream_errors/proxy", "tried": tried, "through": through, "note": ""})

            # foreign placeholders: typed by the caller, and across concurrent calls
            names = ["Ada Lovelace", "Alan Turing", "Grace Hopper", "Linus Torvalds", "Maria Lopez"]
            tried = through = 0
            for way in ("proxy", "wrap_openai"):
                for i, name in enumerate(names):
                    body = {"model": "echo:", "messages": [{"role": "user", "content":
                                                            f"<PERSON_1> and <EMAIL_ADDRESS_1> wrote to {name}."}]}
                    seen = " ".join(hostile.visible(via(way, body)))
                    tried += 1
                    through += ("<PERSON_1>" not in seen) or ("<EMAIL_ADDRESS_1>" not in seen)

            async def concurrent(k: int) -> int:
                async with httpx.AsyncClient(base_url=base, timeout=60) as ac:
                    async def one(i: int) -> bool:
                        name = f"{names[i % len(names)].split()[0]} Smith-{i}"
                        r = await ac.post("/chat/completions", json={"model": "echo:", "messages": [
                            {"role": "user", "content": f"Please greet {name} today."}]})
                        text = r.json()["choices"][0]["message"]["content"]
                        others = [f"Smith-{j}" for j in range(k) if j != i]
                        return any(o + " " in text or text.endswith(o + " today.") for o in others)
                    return sum(await asyncio.gather(*(one(i) for i in range(k))))

            k = 20 if quick else 50
            calls["proxy"] += k
            cross = asyncio.run(concurrent(k))
            rows.append({"class": "placeholders", "tried": tried + k, "through": through + cross,
                         "note": f"typed placeholders {tried}, concurrent calls {k}"})

            # protocol errors (a malformed request that the HTTP parser lets through reaches the app, which
            # answers it with a 4xx and audits it like any refused call: counted as a call below)
            deadline = time.monotonic() + 30
            while len(proxy_rec.records) < calls["proxy"] and time.monotonic() < deadline:
                time.sleep(0.05)
            before_protocol = len(proxy_rec.records)
            tried = through = 0
            bad: list[str] = []
            for name, payload in PROTOCOL_CASES.items():
                tried += 1
                if not openai_error_body(raw_http(port, payload)):
                    through += 1
                    bad.append(name)
            time.sleep(0.5)
            audited = len(proxy_rec.records) - before_protocol
            calls["proxy"] += audited
            rows.append({"class": "protocol_errors", "tried": tried, "through": through,
                         "note": ", ".join(bad) or f"{audited} reached the app and were audited as 4xx calls"})

            deadline = time.monotonic() + 30
            while len(proxy_rec.records) < calls["proxy"] and time.monotonic() < deadline:
                time.sleep(0.05)
        deadline = time.monotonic() + 30
        while len(guard_rec.records) < calls["wrap_openai"] and time.monotonic() < deadline:
            time.sleep(0.05)
        for way, rec in (("proxy", proxy_rec), ("wrap_openai", guard_rec)):
            rows.append({"class": f"audit/{way}", "tried": calls[way], "through": abs(len(rec.records) - calls[way]),
                         "note": f"{len(rec.records)} records for {calls[way]} calls"})
        guard.close()
        asyncio.run(rt_p.aclose())
    return rows, info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer concurrent calls")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows, info = run(args.quick)
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}; "
          f"default policy, startup {info['startup_s']:.1f} s, total {time.perf_counter() - t0:.1f} s")
    print(f"{'class':<26} {'tried':>6} {'through':>8}  note")
    for r in rows:
        print(f"{r['class']:<26} {r['tried']:>6} {r['through']:>8}  {r['note']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
