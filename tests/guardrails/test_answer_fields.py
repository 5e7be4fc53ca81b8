"""Regression suite (issues 20 and 21): no answer field, no request field and no upstream error message
carries text past the checks, through the proxy (plain and streamed, raw HTTP) and wrap_openai (plain
and streamed, SDK objects); placeholders are restored only from the call's own vault; exactly one
audit record per call."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from guardrails.inprocess import Guard
from guardrails.proxy import create_app

from support import decorator_kit as kit
from support.hostile_upstream import FIELDS, PAYLOADS, make_app, sdk_kwargs, visible
from support.servers import serve_app

POLICY = r"""
policy: {id: hostile-test, version: "1"}
detectors:
  - name: pii
    type: keywords
    stages: [input, output]
    options:
      patterns:
        US_SSN: ['\b\d{3}-\d{2}-\d{4}\b']
        PERSON: ['\b(?:Ada|Alan)[ -][A-Z][a-z]+\b']
    rules:
      "*": {action: redact}
      PERSON: {action: pseudonymise}
  - name: secrets
    type: keywords
    stages: [input, output]
    options:
      patterns:
        api_key: ['\bghp_[A-Za-z0-9]{36}\b']
    rules:
      "*": {action: block}
  - name: toxicity
    type: keywords
    stages: [output]
    options:
      terms:
        toxicity: [idiot]
    rules:
      "*": {action: block}
"""


def leaked(items: list[Any], payload: str) -> bool:
    return any(PAYLOADS[payload] in t for t in visible(items))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("hostile")
    log: list[dict[str, Any]] = []
    with serve_app(make_app(log), lifespan="off") as up:
        text = POLICY + f'upstreams:\n  - {{name: h, kind: openai, url: "{up}"}}\n'
        proxy_rec, guard_rec = kit.MemoryRecorder(), kit.MemoryRecorder()
        proxy_rt = kit.runtime(tmp / "p", text, audit=proxy_rec)
        guard = Guard(kit.runtime(tmp / "g", text, audit=guard_rec), owns_runtime=True, on_block="refuse")
        raw = openai.OpenAI(base_url=up, api_key="x", max_retries=0)
        with serve_app(create_app(proxy_rt, host="127.0.0.1")) as purl:
            yield {"proxy_url": purl, "wrapped": guard.wrap_openai(raw), "log": log, "proxy_rec": proxy_rec,
                   "guard_rec": guard_rec}
        guard.close()
        asyncio.run(proxy_rt.aclose())


def via_proxy(env: dict[str, Any], body: dict[str, Any]) -> list[Any]:
    r = httpx.post(env["proxy_url"] + "/chat/completions", json=body, timeout=30)
    if body.get("stream"):
        return [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")] + [r.text]
    return [r.json(), r.text]


def via_wrapped(env: dict[str, Any], body: dict[str, Any]) -> list[Any]:
    out = env["wrapped"].chat.completions.create(**sdk_kwargs(body))
    return list(out) if body.get("stream") else [out]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("way", ["proxy", "wrap_openai"])
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
@pytest.mark.parametrize("field", FIELDS)
def test_no_answer_field_carries_unchecked_text(env: dict[str, Any], field: str, payload: str, way: str,
                                                stream: bool) -> None:
    rec = env["proxy_rec"] if way == "proxy" else env["guard_rec"]
    before = len(rec.records)
    body = {"model": f"field:{field}:{payload}", "messages": [{"role": "user", "content": "hello"}], "stream": stream}
    items = (via_proxy if way == "proxy" else via_wrapped)(env, body)
    assert not leaked(items, payload), f"{payload} in {field} reached the caller"
    deadline = time.monotonic() + 20  # a streamed call is audited when its stream closes
    while len(rec.records) == before and time.monotonic() < deadline:
        time.sleep(0.005)
    assert len(rec.records) == before + 1
    assert rec.records[-1].final_action.label in ("redact", "block")


REQUEST_FIELDS: list[tuple[str, dict[str, Any]]] = [
    ("message_name", {"messages": [{"role": "user", "name": "SSN 078-05-1120", "content": "hi"}]}),
    ("assistant_refusal", {"messages": [{"role": "assistant", "content": None, "refusal": "no 078-05-1120"},
                                        {"role": "user", "content": "hi"}]}),
    ("metadata", {"metadata": {"note": "SSN 078-05-1120"}}),
    ("stop", {"stop": ["078-05-1120"]}),
    ("response_format", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "description": "about 078-05-1120"}}}}),
    ("tool_description", {"tools": [{"type": "function", "function": {
        "name": "f", "description": "uses 078-05-1120", "parameters": {"type": "object"}}}]}),
    ("unknown_field", {"vendor_context": "SSN 078-05-1120"}),
    ("user", {"user": "078-05-1120"}),
    ("tool_history_args", {"messages": [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function", "function": {
            "name": "f", "arguments": "{\"ssn\": \"078-05-1120\"}"}}]},
        {"role": "tool", "tool_call_id": "c", "content": "done"}, {"role": "user", "content": "hi"}]}),
]


@pytest.mark.parametrize("way", ["proxy", "wrap_openai"])
@pytest.mark.parametrize(("name", "extra"), REQUEST_FIELDS, ids=[r[0] for r in REQUEST_FIELDS])
def test_no_request_field_reaches_the_upstream_unchecked(env: dict[str, Any], name: str, extra: dict[str, Any],
                                                         way: str) -> None:
    body = {"model": "field:content:ssn", "messages": [{"role": "user", "content": "hi"}], **extra}
    n = len(env["log"])
    (via_proxy if way == "proxy" else via_wrapped)(env, body)
    sent = env["log"][n:]
    assert len(sent) == 1 and "078-05-1120" not in json.dumps(sent[0]), name
    if name == "user":
        assert sent[0]["user"].startswith("tw-")  # a keyed hash: stable per user, no raw value


def test_upstream_error_messages_are_not_passed_on(env: dict[str, Any]) -> None:
    r = httpx.post(env["proxy_url"] + "/chat/completions", json={
        "model": "error:ssn", "messages": [{"role": "user", "content": "hi"}]}, timeout=30)
    assert r.status_code == 400 and "078-05-1120" not in r.text
    assert r.json()["error"]["code"] == "internal"


@pytest.mark.parametrize("way", ["proxy", "wrap_openai"])
def test_placeholders_are_restored_only_from_the_calls_own_vault(env: dict[str, Any], way: str) -> None:
    # the caller types a placeholder next to a real name: the real name gets another number, and the
    # echoed typed placeholder is never turned into the real name
    body = {"model": "echo:", "messages": [{"role": "user", "content": "<PERSON_1> and Ada Lovelace and <PERSON_2>"}]}
    items = (via_proxy if way == "proxy" else via_wrapped)(env, body)
    text = visible(items[:1])
    assert any("Echo: <PERSON_1> and Ada Lovelace and <PERSON_2>" in t for t in text), text
    sent = env["log"][-1]["messages"][0]["content"]
    assert "Ada Lovelace" not in sent and "<PERSON_3>" in sent
