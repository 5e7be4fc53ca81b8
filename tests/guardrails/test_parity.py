"""Parity: one table of cases (PII, secrets, toxic output, copyright, benign, ...) run through the proxy
and in-process (the wrapped OpenAI client and a @guard function) gives identical actions, categories,
transformed text, audit outcome, what the upstream received, and what the caller got back.

Both sides run the same policy (keyword and fake detectors, so this is fast) against the same local
OpenAI-compatible upstream; the proxy runs under uvicorn on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openai
import pytest
import uvicorn

from guardrails.decorator import Guard
from guardrails.proxy import create_app
from guardrails.types import CallRecord

from support import decorator_kit as kit
from support.openai_upstream import serve_upstream

SECRET = "sk-" + "Q1w2E3r4T5y6U7i8O9p0A1s2"

CASES: list[tuple[str, str, list[dict[str, Any]]]] = [
    ("pii", "echo", [{"role": "user", "content": "I am Ada Lovelace, mail ada@example.com. Please reply."}]),
    ("pii-parts-and-system", "echo", [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Call Alan Turing on +44 020 555 0101 today."}]}]),
    ("pii-repeated-across-messages", "echo", [
        {"role": "user", "content": "Grace Hopper wrote to grace@navy.example.org."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Remind Grace Hopper, at grace@navy.example.org, of the SSN 078-05-1120."}]),
    ("secret", "echo", [{"role": "user", "content": f"Deploy with {SECRET} now."}]),
    ("toxic-output", "toxic", [{"role": "user", "content": "What do you think of me?"}]),
    ("copyright-output", "quote", [{"role": "user", "content": "Quote Dickens for me."}]),
    ("pii-output-leak", "ssn", [{"role": "user", "content": "What is my SSN?"}]),
    ("benign", "echo", [{"role": "user", "content": "What is the capital of France? " * 4}]),
]


def parity_policy(upstream_url: str) -> str:
    return kit.POLICY + f'\nupstreams:\n  - {{name: model, kind: openai, url: "{upstream_url}"}}\n'


@contextmanager
def serve_proxy(app: Any) -> Iterator[str]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.02)
    assert server.started, "the proxy did not start"
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.should_exit = True
        thread.join(20)


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused-first-run", max_retries=0, timeout=30)


def text_of(result: Any) -> str:
    """What the caller got: a completion's content, a stream's joined deltas (chunks or strings)."""
    if isinstance(result, str):
        return result
    if hasattr(result, "choices") and not isinstance(result, (list, Iterator)) and getattr(result, "object", "") == "chat.completion":
        return result.choices[0].message.content or ""
    out = []
    for item in result:
        if isinstance(item, str):
            out.append(item)
        elif item.choices:
            out.append(item.choices[0].delta.content or "")
    return "".join(out)


def outcome(rec: CallRecord) -> dict[str, Any]:
    i, o = rec.input, rec.output
    return {
        "input_action": i.action if i else None,
        "input_categories": i.categories if i else None,
        "input_texts": i.texts if i else None,
        "input_message": i.message if i else None,
        "output_action": o.action if o else None,
        "output_categories": o.categories if o else None,
        "output_texts": o.texts if o else None,
        "final_action": rec.final_action,
        "status": rec.status,
        "error": rec.error,
        "streamed": rec.streamed,
    }


@pytest.fixture(scope="module")
def sides(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("parity")
    with serve_upstream() as (up_url, log):
        text = parity_policy(up_url)
        proxy_rec, guard_rec = kit.MemoryRecorder(), kit.MemoryRecorder()
        proxy_rt = kit.runtime(tmp / "proxy", text, audit=proxy_rec)
        guard = Guard(kit.runtime(tmp / "guard", text, audit=guard_rec), owns_runtime=True, on_block="refuse")
        raw = client(up_url)

        @guard.guard
        def ask(messages: list[dict[str, Any]], model: str, stream: bool = False) -> Any:
            resp = raw.chat.completions.create(model=model, messages=messages, stream=stream)
            if stream:
                return list(resp)
            return resp

        @guard.guard
        def ask_stream(messages: list[dict[str, Any]], model: str):
            yield from raw.chat.completions.create(model=model, messages=messages, stream=True)

        with serve_proxy(create_app(proxy_rt, host="127.0.0.1")) as proxy_url:
            yield {"log": log, "proxy": client(proxy_url), "wrapped": guard.wrap_openai(raw), "ask": ask,
                   "ask_stream": ask_stream, "proxy_rec": proxy_rec, "guard_rec": guard_rec}
        guard.close()
        asyncio.run(proxy_rt.aclose())


def through_proxy(sides: dict[str, Any], model: str, messages: list[dict[str, Any]], stream: bool) -> str:
    try:
        return text_of(sides["proxy"].chat.completions.create(model=model, messages=messages, stream=stream))
    except openai.BadRequestError as exc:  # an input block: 400 content_policy_violation
        body = exc.body if isinstance(exc.body, dict) else {}
        assert body.get("code") == "content_policy_violation"
        return str(body.get("message"))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("case", "model", "messages"), CASES, ids=[c[0] for c in CASES])
def test_proxy_and_in_process_agree(sides: dict[str, Any], case: str, model: str, messages: list[dict[str, Any]],
                                    stream: bool) -> None:
    log, proxy_rec, guard_rec = sides["log"], sides["proxy_rec"], sides["guard_rec"]

    n, before = len(log), len(proxy_rec.records)
    via_proxy = through_proxy(sides, model, messages, stream)
    proxy_sent = [b["messages"] for b in log[n:]]
    deadline = time.monotonic() + 20  # a streamed call is audited when the proxy's stream closes
    while len(proxy_rec.records) == before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(proxy_rec.records) == before + 1
    expected = outcome(proxy_rec.records[-1])

    ways = {
        "wrap_openai": lambda: sides["wrapped"].chat.completions.create(model=model, messages=messages, stream=stream),
        "@guard": (lambda: sides["ask_stream"](messages, model)) if stream else (lambda: sides["ask"](messages, model)),
    }
    for way, call in ways.items():
        n = len(log)
        got = text_of(call())
        assert [b["messages"] for b in log[n:]] == proxy_sent, f"{way}: the upstream received something else"
        assert outcome(guard_rec.records[-1]) == expected, way
        assert got == via_proxy, way

    # the table means something: each case does what its name says
    if case.startswith("pii") and case != "pii-output-leak":
        assert expected["input_action"].label == "redact" and proxy_sent and "<" in str(proxy_sent)
        assert via_proxy.startswith("Reply to:") and "<PERSON_1>" not in via_proxy
    if case == "secret":
        assert expected["input_categories"] == ("api_key",) and proxy_sent == []
    if case in ("toxic-output", "copyright-output"):
        assert expected["output_action"].label == "block" and via_proxy.endswith("withheld by the content policy.")
    if case == "pii-output-leak":
        assert "<US_SSN>" in via_proxy
    if case == "benign":
        assert expected["final_action"].label == "allow" and proxy_sent == [messages]
