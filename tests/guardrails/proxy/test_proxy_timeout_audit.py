"""A PII check that times out blocks the call, and the audit record keeps none of the raw prompt."""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from pydantic import BaseModel

from detectors.registry import builtin_registry
from guardrails.audit.record import build_body
from guardrails.detector import DetectorType
from guardrails.policy import parse_policy

from .proxy_helpers import start_proxy

RAW = ["Thaddeus Brightwater", "4111 1111 1111 1111", "t.brightwater@mailhost.test", "078-05-1120"]


class _NoOptions(BaseModel):
    pass


class _Slow:
    async def detect(self, texts, ctx, stage="input"):  # noqa: ANN001, ANN202
        await asyncio.sleep(3)
        return [[] for _ in texts]


@pytest.fixture(scope="module")
def slow_proxy(cloud, tmp_path_factory):
    reg = builtin_registry()
    reg.register(DetectorType("slowpii", _NoOptions, lambda spec, o, b: _Slow(), categories=("PERSON",),
                              stages=("input", "output")))
    pol = parse_policy(f"""
policy: {{id: slow}}
detectors:
  - {{name: pii, type: slowpii, stages: [input], timeout_ms: 100}}
upstreams:
  - {{name: cloud, kind: openai, url: "{cloud[0].url}/v1"}}
""", registry=reg)
    p = start_proxy(tmp_path_factory.mktemp("slow"), pol, registry=reg)
    yield p
    p.server.stop()
    asyncio.run(p.runtime.aclose())


@pytest.mark.parametrize("stream", [False, True])
def test_timed_out_input_check_blocks_and_audits_no_raw_value(slow_proxy, cloud, stream):
    cloud[1].clear()
    client = openai.OpenAI(base_url=slow_proxy.base_url, api_key="sk-x", max_retries=0)
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gpt-test", stream=stream,
                                       messages=[{"role": "user", "content": "I am " + ", ".join(RAW)}])
    assert not cloud[1].requests
    rec = slow_proxy.recorder.by_id(ei.value.body["request_id"])
    assert rec.input is not None and rec.input.errors == ("pii",)
    for mode in ("redacted", "hash", "none"):
        blob = json.dumps(build_body(rec, policy_id="slow", policy_version="x", text_mode=mode, hash_key=b"h" * 32))
        assert [v for v in RAW if v in blob] == [], mode
        assert "input:pii" in blob
