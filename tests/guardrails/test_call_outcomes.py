"""The same outcome, and exactly one audit record, on every way in (issue 15, "bad input"): a caller that
goes away mid-stream (499 client_disconnected) and an audit store that is down (the answer is withheld:
503 audit_unavailable on the proxy, AuditUnavailable raised in-process)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from guardrails.audit.log import AuditUnavailable
from guardrails.inprocess import Guard
from guardrails.proxy import create_app
from guardrails.types import CallRecord

from support import decorator_kit as kit
from support.openai_upstream import serve_upstream
from support.servers import serve_app

LONG = [{"role": "user", "content": "Tell me about the weather in the mountains. " * 12}]


class Switchable(kit.MemoryRecorder):
    """A recorder whose store can be 'down'."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def record(self, record: CallRecord) -> None:
        if self.down:
            raise AuditUnavailable("audit store down (test)")
        await super().record(record)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp: Path = tmp_path_factory.mktemp("outcomes")
    with serve_upstream() as (up, log):
        text = kit.POLICY + f'\nupstreams:\n  - {{name: model, kind: openai, url: "{up}"}}\n'
        prec, grec = Switchable(), Switchable()
        prt = kit.runtime(tmp / "p", text, audit=prec)
        guard = Guard(kit.runtime(tmp / "g", text, audit=grec), owns_runtime=True, on_block="refuse")
        raw = openai.OpenAI(base_url=up, api_key="x", max_retries=0)

        def stream_model(messages: list[dict[str, Any]]) -> Iterator[Any]:
            yield from raw.chat.completions.create(model="echo", messages=messages, stream=True)

        def ask(messages: list[dict[str, Any]]) -> str:
            return raw.chat.completions.create(model="echo", messages=messages).choices[0].message.content or ""

        with serve_app(create_app(prt, host="127.0.0.1")) as purl:
            yield {"proxy": purl, "wrapped": guard.wrap_openai(raw), "gen": guard.guard(stream_model),
                   "ask": guard.guard(ask), "prec": prec, "grec": grec}
        guard.close()
        asyncio.run(prt.aclose())


def _wait(rec: kit.MemoryRecorder, n: int) -> None:
    deadline = time.monotonic() + 20
    while len(rec.records) < n and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("way", ["proxy", "wrap_openai", "@guard"])
def test_a_caller_gone_mid_stream_is_one_499_record(env: dict[str, Any], way: str) -> None:
    rec = env["prec"] if way == "proxy" else env["grec"]
    before = len(rec.records)
    if way == "proxy":
        with httpx.Client(timeout=30) as h, h.stream("POST", env["proxy"] + "/chat/completions", json={
                "model": "echo", "messages": LONG, "stream": True}) as r:
            next(r.iter_lines())  # the first event, then hang up
    elif way == "wrap_openai":
        stream = env["wrapped"].chat.completions.create(model="echo", messages=LONG, stream=True)
        next(iter(stream))
        stream.close()
    else:
        gen = env["gen"](LONG)
        next(gen)
        gen.close()
    _wait(rec, before + 1)
    assert len(rec.records) == before + 1
    last = rec.records[-1]
    assert (last.status, last.error, last.streamed) == (499, "client_disconnected", True), way


@pytest.mark.parametrize("way", ["proxy", "wrap_openai", "@guard"])
def test_an_audit_store_down_withholds_the_answer(env: dict[str, Any], way: str) -> None:
    rec = env["prec"] if way == "proxy" else env["grec"]
    rec.down = True
    try:
        if way == "proxy":
            r = httpx.post(env["proxy"] + "/chat/completions", json={"model": "echo", "messages": LONG}, timeout=30)
            assert r.status_code == 503 and r.json()["error"]["code"] == "audit_unavailable"
            assert "mountains" not in r.text
        else:
            with pytest.raises(AuditUnavailable):
                if way == "wrap_openai":
                    env["wrapped"].chat.completions.create(model="echo", messages=LONG)
                else:
                    env["ask"](LONG)
    finally:
        rec.down = False
