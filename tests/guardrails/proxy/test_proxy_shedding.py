"""Load shedding: with max_inflight guarded calls running, the next ones get 503 + Retry-After at once
(an OpenAI-style body), health and readiness are never shed, and the slots come back when calls end."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from fastapi import FastAPI, Request
from starlette.responses import JSONResponse

from detectors.registry import builtin_registry
from guardrails.policy import parse_policy
from guardrails.proxy.shedding import LoadShedder

from .proxy_helpers import ServerThread, start_proxy

POLICY = """
policy: {{id: shed-test}}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options: {{terms: {{secret: [bluebird]}}}}
    rules: {{secret: {{action: block}}}}
upstreams:
  - {{name: gated, kind: openai, url: "{url}/v1", timeout_s: 30}}
"""


class Gate:
    """An upstream that holds every call until released, counting arrivals."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.arrived = 0
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> JSONResponse:
            body = await request.json()
            self.arrived += 1
            await asyncio.to_thread(self.open.wait, 30)
            return JSONResponse({"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                                 "choices": [{"index": 0, "finish_reason": "stop",
                                              "message": {"role": "assistant", "content": "ok"}}],
                                 "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})

        self.server = ServerThread(app).start()


def wait_for(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.01)


@pytest.fixture
def gate():
    g = Gate()
    yield g
    g.open.set()
    g.server.stop()


def test_calls_over_the_bound_get_503_with_retry_after_at_once(gate, tmp_path):
    policy = parse_policy(POLICY.format(url=gate.server.url), source="shed.yaml", registry=builtin_registry())
    p = start_proxy(tmp_path, policy, max_inflight=3)
    body = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
    try:
        with ThreadPoolExecutor(8) as pool, httpx.Client(base_url=p.url, timeout=30) as c:
            held = [pool.submit(c.post, "/v1/chat/completions", json=body) for _ in range(3)]
            wait_for(lambda: gate.arrived == 3, "three calls should reach the upstream")
            t0 = time.monotonic()
            shed = [c.post("/v1/chat/completions", json=body) for _ in range(5)]
            shed.append(c.post("/v1/completions", json={"model": "m", "prompt": "hi"}))
            shed.append(c.post("/v1/embeddings", json={"model": "m", "input": "hi"}))
            shed.append(c.post("/v1/messages", json={"model": "m", "max_tokens": 5,
                                                      "messages": [{"role": "user", "content": "hi"}]}))
            shed.append(c.post("/v1/responses", json={"model": "m", "input": "hi"}))
            assert time.monotonic() - t0 < 5  # answered at once, not queued behind the held calls
            for r in shed:
                assert r.status_code == 503 and r.headers["retry-after"] == "1"
                err = r.json()["error"]
                kind = "overloaded_error" if r.request.url.path == "/v1/messages" else "server_error"
                assert err["code"] == "overloaded" and err["type"] == kind
                assert r.headers["x-trustwall-request-id"] and r.headers["x-trustwall-action"] == "shed"
            assert gate.arrived == 3  # shed calls never reached the upstream
            assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200  # never shed
            assert c.post("/v1/chat/completions", content=b"{").status_code == 503  # even malformed: no parsing
            gate.open.set()
            assert [f.result().status_code for f in held] == [200, 200, 200]
            assert c.post("/v1/chat/completions", json=body).status_code == 200  # slots came back
        shedder: LoadShedder = p.server.config.app.state.shedder
        assert shedder.inflight == 0 and shedder.peak == 3 and shedder.shed == 10
        metrics = httpx.get(p.url + "/metrics").text
        assert "trustwall_shed_total 10.0" in metrics and "trustwall_max_inflight 3.0" in metrics
        assert "trustwall_inflight_calls 0.0" in metrics
        # the official client sees an APIStatusError 503 (and would retry it with back-off by itself)
        gate.open.clear()
        with ThreadPoolExecutor(3) as pool:
            cl = openai.OpenAI(base_url=p.base_url, api_key="x", max_retries=0)
            held = [pool.submit(cl.chat.completions.create, **body) for _ in range(3)]
            wait_for(lambda: gate.arrived == 7, "three more calls should reach the upstream")
            with pytest.raises(openai.InternalServerError) as ei:
                cl.chat.completions.create(**body)
            assert ei.value.status_code == 503
            gate.open.set()
            assert all(f.result().choices[0].message.content == "ok" for f in held)
    finally:
        gate.open.set()
        p.server.stop()
        asyncio.run(p.runtime.aclose())


def test_no_bound_by_default_and_bad_bound_rejected(tmp_path):
    from guardrails.proxy import create_app
    from guardrails.settings import Settings

    assert create_app(Settings(data_dir=tmp_path)).state.shedder is None
    assert create_app(Settings(data_dir=tmp_path, max_inflight=5)).state.shedder.limit == 5
    with pytest.raises(ValueError):
        Settings(data_dir=tmp_path, max_inflight=0)
