"""Guard.wrap_openai against a real local HTTP server speaking the OpenAI chat API (FastAPI + uvicorn on
an ephemeral loopback port), called with the official `openai` client: sync and async, streamed or not."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from guardrails import Blocked
from guardrails.inprocess import trustwall_principal
from guardrails.errors import TrustwallError
from guardrails.types import Action, Principal

from support import decorator_kit as kit
from support.openai_upstream import serve_upstream

PERSON = "Grace Hopper"
EMAIL = "grace@navy.example.org"
SECRET = "sk-" + "Z9y8X7w6V5u4T3s2R1q0P9"


@pytest.fixture(scope="module")
def upstream() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    with serve_upstream() as up:
        yield up


@pytest.fixture
def gr(tmp_path: Path):
    g, rec = kit.make_guard(tmp_path)
    yield g, rec
    g.close()


def sync_client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="test-key", max_retries=0, timeout=30)


def async_client(url: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=url, api_key="test-key", max_retries=0, timeout=30)


def content_of(chunks: list[ChatCompletionChunk], index: int = 0) -> str:
    return "".join(c.delta.content or "" for ch in chunks for c in ch.choices if c.index == index)


# ---------------------------------------------------------------------------------------------- sync


def test_sync_create_pseudonymises_upstream_and_restores_for_caller(upstream, gr) -> None:
    url, log = upstream
    g, rec = gr
    client = g.wrap_openai(sync_client(url))
    msgs = [{"role": "system", "content": "Be short."}, {"role": "user", "content": f"I am {PERSON}, {EMAIL}"}]
    resp = client.chat.completions.create(model="echo", messages=msgs)
    assert isinstance(resp, ChatCompletion)
    assert resp.choices[0].message.content == f"Reply to: I am {PERSON}, {EMAIL}"
    assert log[-1]["messages"][1]["content"] == "I am <PERSON_1>, <EMAIL_ADDRESS_1>"
    assert msgs[1]["content"] == f"I am {PERSON}, {EMAIL}"
    r = rec.records[-1]
    assert (r.route, r.model, r.upstream, r.status, r.streamed) == ("decorator", "echo", "127.0.0.1", 200, False)
    assert (r.prompt_tokens, r.completion_tokens) == (11, 7)
    assert client.base_url == client.unwrapped.base_url  # everything else is the client's own


def test_sync_stream_releases_only_checked_text_and_restores_across_chunks(upstream, gr) -> None:
    url, log = upstream
    g, rec = gr
    client = g.wrap_openai(sync_client(url))
    with client.chat.completions.create(model="echo", stream=True, stream_options={"include_usage": True},
                                        messages=[{"role": "user", "content": f"Dear {PERSON}, " + "hello. " * 12}]) as stream:
        chunks = list(stream)
    assert all(isinstance(c, ChatCompletionChunk) for c in chunks)
    assert content_of(chunks) == f"Reply to: Dear {PERSON}, " + "hello. " * 12
    assert "<PERSON_1>" in log[-1]["messages"][0]["content"]
    finish = [c.finish_reason for ch in chunks for c in ch.choices if c.finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 7
    r = rec.records[-1]
    assert r.streamed and r.status == 200 and r.completion_tokens == 7


def test_sync_input_block_never_reaches_the_upstream(upstream, gr) -> None:
    url, log = upstream
    g, rec = gr
    client = g.wrap_openai(sync_client(url))
    before = len(log)
    for stream in (False, True):
        with pytest.raises(Blocked) as ei:
            client.chat.completions.create(model="echo", stream=stream,
                                           messages=[{"role": "user", "content": f"my key is {SECRET}"}])
        assert ei.value.categories == ("api_key",)
    assert len(log) == before
    assert [r.status for r in rec.records] == [400, 400]


@pytest.mark.parametrize(("model", "category"), [("toxic", "toxicity"), ("quote", "copyright")])
def test_sync_output_blocks_raise_or_refuse(upstream, gr, model: str, category: str) -> None:
    url, _ = upstream
    g, rec = gr
    msgs = [{"role": "user", "content": "say something"}]
    strict = g.wrap_openai(sync_client(url))
    with pytest.raises(Blocked) as ei:
        strict.chat.completions.create(model=model, messages=msgs)
    assert ei.value.categories == (category,)

    got: list[ChatCompletionChunk] = []
    with pytest.raises(Blocked):
        for c in strict.chat.completions.create(model=model, messages=msgs, stream=True):
            got.append(c)
    leaked = content_of(got)
    assert "idiot" not in leaked and "worst of times" not in leaked

    polite = g.wrap_openai(sync_client(url), on_block="refuse")
    resp = polite.chat.completions.create(model=model, messages=msgs)
    assert resp.choices[0].message.content == "The response was withheld by the content policy."
    assert resp.choices[0].finish_reason == "content_filter"
    chunks = list(polite.chat.completions.create(model=model, messages=msgs, stream=True))
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert chunks[-1].choices[0].delta.content == "The response was withheld by the content policy."
    assert [r.final_action for r in rec.records] == [Action.BLOCK] * 4


def test_sync_output_redaction_several_choices_and_principal(upstream, gr) -> None:
    url, _ = upstream
    g, rec = gr
    client = g.wrap_openai(sync_client(url), principal=Principal("svc", "analyst"))
    resp = client.chat.completions.create(model="ssn", messages=[{"role": "user", "content": "ssn?"}], n=2)
    assert [c.message.content for c in resp.choices] == ["Your SSN on file is <US_SSN>, as requested."] * 2
    resp = client.chat.completions.create(model="echo", n=2,
                                          messages=[{"role": "user", "content": f"{PERSON} {EMAIL}"}])
    # the analyst role sees e-mail addresses restored, not names
    assert [c.message.content for c in resp.choices] == [f"Reply to: <PERSON_1> {EMAIL}", f"Reply1 to: <PERSON_1> {EMAIL}"]
    assert rec.records[-1].principal == Principal("svc", "analyst")
    with trustwall_principal(Principal("root", "local")):
        resp = client.chat.completions.create(model="echo", messages=[{"role": "user", "content": PERSON}])
    assert resp.choices[0].message.content == f"Reply to: {PERSON}"
    assert rec.records[-1].principal.id == "root"


def test_bypassing_helpers_refuse(upstream, gr) -> None:
    url, _ = upstream
    g, _ = gr
    client = g.wrap_openai(sync_client(url))
    for name in ("with_raw_response", "with_streaming_response", "parse", "stream"):
        with pytest.raises(TrustwallError, match="not guarded"):
            getattr(client.chat.completions, name)
    with pytest.raises(TypeError):
        g.wrap_openai(client)


# --------------------------------------------------------------------------------------------- async


async def test_async_create_and_stream(upstream, gr) -> None:
    url, log = upstream
    g, rec = gr
    client = g.wrap_openai(async_client(url))
    resp = await client.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": [{"type": "text", "text": f"hi {EMAIL}"}]}])
    assert resp.choices[0].message.content == f"Reply to: hi {EMAIL}"
    assert log[-1]["messages"][0]["content"][0]["text"] == "hi <EMAIL_ADDRESS_1>"

    stream = await client.chat.completions.create(model="echo", stream=True,
                                                  messages=[{"role": "user", "content": f"{PERSON} here. " * 3}])
    chunks = [c async for c in stream]
    assert content_of(chunks) == f"Reply to: {PERSON} here. {PERSON} here. {PERSON} here. "

    stream = await client.chat.completions.create(model="toxic", stream=True, messages=[{"role": "user", "content": "x"}])
    got: list[ChatCompletionChunk] = []
    with pytest.raises(Blocked):
        async with stream:
            async for c in stream:
                got.append(c)
    assert "idiot" not in content_of(got)
    assert [r.status for r in rec.records] == [200, 200, 200]
    assert [r.final_action for r in rec.records] == [Action.REDACT, Action.REDACT, Action.BLOCK]
    await client.close()


async def test_async_clients_many_concurrent_callers(upstream, gr) -> None:
    url, _ = upstream
    g, rec = gr
    client = g.wrap_openai(async_client(url))

    async def one(i: int) -> str:
        msgs = [{"role": "user", "content": f"Linus Caller-{i} at u{i}@example.com"}]
        if i % 2:
            resp = await client.chat.completions.create(model="echo", messages=msgs)
            return resp.choices[0].message.content or ""
        stream = await client.chat.completions.create(model="echo", messages=msgs, stream=True)
        return content_of([c async for c in stream])

    outs = await asyncio.gather(*(one(i) for i in range(24)))
    assert outs == [f"Reply to: Linus Caller-{i} at u{i}@example.com" for i in range(24)]
    assert len(rec.records) == 24


def test_sync_stream_with_several_choices(upstream, gr) -> None:
    url, _ = upstream
    g, rec = gr
    client = g.wrap_openai(sync_client(url))
    chunks = list(client.chat.completions.create(model="echo", stream=True, n=2,
                                                 messages=[{"role": "user", "content": f"Hi {PERSON}. " * 3}]))
    assert content_of(chunks, 0) == f"Reply to: Hi {PERSON}. Hi {PERSON}. Hi {PERSON}. "
    assert content_of(chunks, 1) == f"Reply1 to: Hi {PERSON}. Hi {PERSON}. Hi {PERSON}. "
    finishes = sorted((c.index, c.finish_reason) for ch in chunks for c in ch.choices if c.finish_reason)
    assert finishes == [(0, "stop"), (1, "stop")]
    r = rec.records[-1]
    assert r.streamed and r.output is not None and len(r.output.texts) == 2
