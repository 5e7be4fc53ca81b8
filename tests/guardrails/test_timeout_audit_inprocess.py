"""Issue 21 item 1 on the in-process paths: when a check times out, the call fails closed and its audit
record keeps no text of that stage in any text mode (@guard and wrap_openai, plain and streamed, input
and output stage). The proxy's side is tests/guardrails/proxy/test_proxy_timeout_audit.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel

from guardrails.audit.record import build_body
from guardrails.detector import DetectorType
from guardrails.inprocess import Guard
from guardrails.policy import parse_policy
from guardrails.runtime import build_runtime

from support import decorator_kit as kit
from support.openai_upstream import serve_upstream

RAW = ["Thaddeus Brightwater", "4111 1111 1111 1111", "t.brightwater@mailhost.test", "078-05-1120"]
PROMPT = "I am " + ", ".join(RAW)


class _NoOptions(BaseModel):
    pass


class _Slow:
    async def detect(self, texts, ctx, stage="input"):  # noqa: ANN001, ANN202
        await asyncio.sleep(2)
        return [[] for _ in texts]


def _guard(tmp_path: Path, stage: str, upstream_url: str) -> tuple[Guard, kit.MemoryRecorder]:
    reg = kit.registry()
    reg.register(DetectorType("slowpii", _NoOptions, lambda spec, o, b: _Slow(), categories=("PERSON",),
                              stages=("input", "output")))
    pol = parse_policy(f"""
policy: {{id: slow-{stage}}}
detectors:
  - {{name: pii, type: slowpii, stages: [{stage}], timeout_ms: 100}}
upstreams:
  - {{name: up, kind: openai, url: "{upstream_url}"}}
""", registry=reg)
    rec = kit.MemoryRecorder()
    rt = build_runtime(kit.settings(tmp_path), policy=pol, registry=reg, audit=rec)
    return Guard(rt, owns_runtime=True, on_block="refuse"), rec


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serve_upstream() as (url, log):
        yield url, log


def _stage_text_is_clean(rec: Any, stage: str) -> None:
    for mode in ("redacted", "hash", "none"):
        body = build_body(rec, policy_id="slow", policy_version="x", text_mode=mode, hash_key=b"h" * 32)
        blob = json.dumps(body["text"][stage]) + json.dumps(body["findings"]) + json.dumps(body["detector_errors"])
        assert [v for v in RAW if v in blob] == [], (stage, mode)
        assert f"{stage}:pii" in body["detector_errors"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize("way", ["@guard", "wrap_openai"])
@pytest.mark.parametrize("stage", ["input", "output"])
def test_a_timed_out_check_fails_closed_and_keeps_no_text_of_its_stage(tmp_path: Path, upstream: Any, stage: str,
                                                                      way: str, stream: bool) -> None:
    url, log = upstream
    g, rec = _guard(tmp_path, stage, url)
    raw = openai.OpenAI(base_url=url, api_key="x", max_retries=0)
    messages = [{"role": "user", "content": PROMPT}]
    try:
        n = len(log)
        if way == "wrap_openai":
            out = g.wrap_openai(raw).chat.completions.create(model="echo", messages=messages, stream=stream)
            seen = json.dumps([c.model_dump() for c in out] if stream else out.model_dump())
        elif stream:
            def gen(messages: list[dict[str, Any]]) -> Iterator[str]:
                for ch in raw.chat.completions.create(model="echo", messages=messages, stream=True):
                    if ch.choices and ch.choices[0].delta.content:
                        yield ch.choices[0].delta.content
            seen = "".join(g.guard(gen)(messages))
        else:
            def ask(messages: list[dict[str, Any]]) -> str:
                return raw.chat.completions.create(model="echo", messages=messages).choices[0].message.content or ""
            seen = g.guard(ask)(messages)
        assert "could not complete" in seen or "withheld" in seen or "blocked" in seen, seen
        assert [v for v in RAW if v in seen] == []  # failed closed: nothing of the answer reached the caller
        if stage == "input":
            assert len(log) == n  # the model was never called
        (record,) = rec.records
        assert record.final_action.label == "block"
        _stage_text_is_clean(record, stage)
    finally:
        g.close()
