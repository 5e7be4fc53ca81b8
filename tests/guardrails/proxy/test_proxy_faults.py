"""Upstream faults, crashed detectors and client disconnects: typed errors, never a hang or a 500, and
an audit record every time."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import httpx
import openai
import pytest

from detectors.registry import builtin_registry
from guardrails.detector import DetectorType, NoOptions
from guardrails.policy import parse_policy
from guardrails.types import Action, CallContext, Finding, Stage

from .proxy_helpers import make_policy, start_proxy

MSG = [{"role": "user", "content": "hello"}]


@pytest.fixture
def client(proxy):
    return openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0)


def _err(exc: openai.APIStatusError) -> dict:
    return exc.response.json()["error"]


@pytest.mark.parametrize("mode,status,code", [
    ("fail-500", 502, "upstream_error"),
    ("fail-401", 502, "upstream_auth_failed"),
    ("bad-json", 502, "upstream_bad_response"),
    ("no-choices", 502, "upstream_bad_response"),
])
def test_upstream_faults_are_502(client, proxy, logs, mode, status, code):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model="gpt-test", messages=MSG, extra_body={"test_mode": mode})
    assert ei.value.status_code == status and _err(ei.value)["code"] == code
    rid = ei.value.response.headers["x-trustwall-request-id"]
    rec = proxy.recorder.by_id(rid)
    assert rec.status == status and rec.error == code and rec.input is not None


def test_upstream_4xx_is_passed_back_in_openai_format(client, logs):
    """The upstream's status, code, type and param come back; its message does not (it can quote the
    prompt or carry text no check has read), ours names the code instead."""
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gpt-test", messages=MSG, extra_body={"test_mode": "fail-400"})
    err = _err(ei.value)
    assert err["param"] == "max_tokens" and err["code"] == "invalid_value" and err["type"] == "invalid_request_error"
    assert err["message"] == "Upstream 'cloud' refused the request (400, code invalid_value)."
    assert "too large" not in err["message"]


def test_upstream_unreachable_is_502(client, proxy):
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model="dead-model", messages=MSG)
    assert ei.value.status_code == 502 and _err(ei.value)["code"] == "upstream_unreachable"
    with pytest.raises(openai.APIStatusError) as ei:
        client.chat.completions.create(model="dead-model", messages=MSG, stream=True)
    assert ei.value.status_code == 502


def test_upstream_timeout_is_504(cloud, inhouse, tmp_path):
    p = start_proxy(tmp_path, make_policy(cloud[0].url, inhouse[0].url, timeout=0.5))
    try:
        c = openai.OpenAI(base_url=p.base_url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as ei:
            c.chat.completions.create(model="gpt-test", messages=MSG, extra_body={"test_mode": "slow", "test_delay": 3})
        assert ei.value.status_code == 504 and _err(ei.value)["code"] == "upstream_timeout"
        assert p.recorder.by_id(ei.value.response.headers["x-trustwall-request-id"]).status == 504
        # mid-stream: the read timeout ends the stream with an error event, not a hang
        with pytest.raises(openai.APIError):
            for _ in c.chat.completions.create(model="gpt-test", messages=MSG, stream=True,
                                               extra_body={"test_chunks": ["a. ", "b. "], "test_delay": 2}):
                pass
    finally:
        p.server.stop()


def test_malformed_sse_and_midstream_error_end_the_stream_with_an_error(client, proxy, logs):
    for mode in ("bad-sse", "midstream-error"):
        with pytest.raises(openai.APIError) as ei:
            for _ in client.chat.completions.create(model="gpt-test", messages=MSG, stream=True,
                                                    extra_body={"test_mode": mode}):
                pass
        assert "upstream" in str(ei.value).lower() or "Upstream" in str(ei.value)
    rec = proxy.recorder.records[-1]
    assert rec.streamed and rec.status == 502


def test_client_disconnect_cancels_the_upstream_call(proxy, cloud, logs):
    cloud_log = logs[0]
    with httpx.Client(base_url=proxy.url, timeout=10) as h:
        with h.stream("POST", "/v1/chat/completions", json={
                "model": "gpt-test", "messages": MSG, "stream": True, "test_mode": "endless", "test_delay": 0.02}) as r:
            rid = r.headers["x-trustwall-request-id"]
            got = 0
            for line in r.iter_lines():
                if line.startswith("data:"):
                    got += 1
                if got >= 3:
                    break
    deadline = time.monotonic() + 15
    while cloud_log.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cloud_log.cancelled == 1 and cloud_log.completed_streams == 0
    rec = proxy.recorder.by_id(rid)
    assert rec.streamed and rec.status == 499 and rec.error == "client_disconnected"


# ------------------------------------------------------------------------------- crashed detectors


class Crashing:
    name = "crash"

    def __init__(self, stage: str):
        self.stage = stage

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage = "input") -> list[list[Finding]]:
        if any("crash" in t for t in texts):
            raise RuntimeError("model exploded")
        if any("hang" in t for t in texts):
            await asyncio.sleep(10)
        return [[] for _ in texts]


CRASH_POLICY = """
policy: {{id: crash-test}}
detectors:
  - {{name: crash, type: crashing, stages: [input, output], timeout_ms: 300, on_error: block}}
wire: {{pass_fields: [test_reply]}}  # the test upstream's steering, not checked
upstreams:
  - {{name: cloud, kind: openai, url: "{cloud}/v1"}}
"""


def test_crashed_or_hung_detector_fails_closed(cloud, tmp_path):
    reg = builtin_registry()
    reg.register(DetectorType("crashing", NoOptions, lambda spec, o, b: Crashing("x")))
    policy = parse_policy(CRASH_POLICY.format(cloud=cloud[0].url), registry=reg)
    p = start_proxy(tmp_path, policy, registry=reg)
    try:
        c = openai.OpenAI(base_url=p.base_url, api_key="x", max_retries=0)
        for word in ("crash", "hang"):
            with pytest.raises(openai.BadRequestError) as ei:
                c.chat.completions.create(model="m", messages=[{"role": "user", "content": f"please {word}"}])
            err = _err(ei.value)
            assert err["code"] == "content_policy_violation"
            assert err["message"] == "A safety check could not complete, so the request was blocked."
            rec = p.recorder.by_id(err["request_id"])
            assert rec.input.errors == ("crash",) and rec.final_action is Action.BLOCK
        resp = c.chat.completions.create(model="m", messages=MSG, extra_body={"test_reply": "I will crash now"})
        assert resp.choices[0].finish_reason == "content_filter"
        text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model="m", messages=MSG, stream=True, extra_body={"test_reply": "fine words then crash"}) if ch.choices)
        assert "crash" not in text and "fine" not in text
    finally:
        p.server.stop()


def test_audit_failure_withholds_the_answer(client, proxy, logs):
    proxy.recorder.fail = True
    try:
        with pytest.raises(openai.APIStatusError) as ei:
            client.chat.completions.create(model="gpt-test", messages=MSG)
        assert ei.value.status_code == 503 and _err(ei.value)["code"] == "audit_unavailable"
    finally:
        proxy.recorder.fail = False
