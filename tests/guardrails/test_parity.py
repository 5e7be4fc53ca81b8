"""Parity: one table of cases run through the proxy and in-process (the wrapped OpenAI client and a
@guard function) gives identical actions, categories, transformed text, audit outcome, what the
upstream received, and what the caller got back: every choice's content, refusal and tool calls.

The table covers PII, secrets, toxic output, copyright, benign text, tool calls in the history,
tool-call-only answers (plain and streamed fragments), logprobs, n=2 (plain and streamed), refusals,
reasoning fields, a routed call, an access denial and a model error. Both sides run the same policy
(keyword and fake detectors, so this is fast) against the same local OpenAI-compatible upstream; the
proxy runs under uvicorn on an ephemeral loopback port."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from guardrails.inprocess import Guard
from guardrails.errors import AccessDenied
from guardrails.proxy import create_app
from guardrails.types import CallRecord

from support import decorator_kit as kit
from support.openai_upstream import serve_upstream
from support.servers import serve_app

SECRET = "sk-" + "Q1w2E3r4T5y6U7i8O9p0A1s2"
ASK = [{"role": "user", "content": "Send Ada Lovelace at ada@example.com the minutes."}]
TOOL_HISTORY = [
    {"role": "user", "content": "Mail the minutes."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "send_mail", "arguments": '{"to":"jane@example.com"}'}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "sent"},
    {"role": "user", "content": "Thanks, what next?"},
]

# (id, model, messages, extra request fields)
CASES: list[tuple[str, str, list[dict[str, Any]], dict[str, Any]]] = [
    ("pii", "echo", [{"role": "user", "content": "I am Ada Lovelace, mail ada@example.com. Please reply."}], {}),
    ("pii-parts-and-system", "echo", [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": [{"type": "text", "text": "Call Alan Turing on +44 020 555 0101 today."}]}], {}),
    ("pii-repeated-across-messages", "echo", [
        {"role": "user", "content": "Grace Hopper wrote to grace@navy.example.org."},
        {"role": "assistant", "content": "Noted."},
        {"role": "user", "content": "Remind Grace Hopper, at grace@navy.example.org, of the SSN 078-05-1120."}], {}),
    ("secret", "echo", [{"role": "user", "content": f"Deploy with {SECRET} now."}], {}),
    ("toxic-output", "toxic", [{"role": "user", "content": "What do you think of me?"}], {}),
    ("copyright-output", "quote", [{"role": "user", "content": "Quote Dickens for me."}], {}),
    ("pii-output-leak", "ssn", [{"role": "user", "content": "What is my SSN?"}], {}),
    ("benign", "echo", [{"role": "user", "content": "What is the capital of France? " * 4}], {}),
    ("tool-calls-in-history", "echo", TOOL_HISTORY, {}),
    ("tool-call-only-answer", "tools", ASK, {}),
    ("logprobs-requested", "echo", ASK, {"logprobs": True}),
    ("n2", "echo", ASK, {"n": 2}),
    ("n2-tool-calls", "tools", ASK, {"n": 2}),
    ("refusal", "refusal", ASK, {}),
    ("reasoning-field", "reasoning", [{"role": "user", "content": "What is 2 + 2?"}], {}),
    ("routed", "echo", [{"role": "user", "content": "Summarise Project Nightjar for Ada Lovelace."}], {}),
    ("access-denied", "forbidden", ASK, {}),
    ("model-error", "error", ASK, {}),
]


def parity_policy(upstream_url: str) -> str:
    text = kit.POLICY.replace('    local: {restore: ["*"]}', '    local: {restore: ["*"], models: ["[!f]*"]}')
    text = text.replace("access:\n", """  - name: confidential
    type: keywords
    stages: [input]
    options:
      terms:
        confidential: ["Project Nightjar"]
    rules:
      "*": {action: flag}
access:
""", 1)
    assert 'models: ["[!f]*"]' in text and "Project Nightjar" in text
    return text + f"""
upstreams:
  - {{name: model, kind: openai, url: "{upstream_url}"}}
  - {{name: inhouse, kind: openai, url: "{upstream_url}"}}
default_upstream: model
routes:
  - {{name: keep-in-house, when: {{categories: [confidential]}}, upstream: inhouse}}
"""


def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url, api_key="unused-first-run", max_retries=0, timeout=30)


def answer_of(result: Any) -> list[dict[str, Any]]:
    """What the caller got, per choice: content, refusal, reasoning, tool calls (name, arguments), the
    finish reason and whether logprobs came back; a stream's deltas are accumulated the same way. (A
    @guard function refused before it ran returns, or yields, the refusal message itself.)"""
    if isinstance(result, str):
        return refusal_answer(result)
    if getattr(result, "object", "") == "chat.completion":
        out = []
        for c in result.choices:
            m = c.message
            out.append({"content": m.content or "", "refusal": m.refusal or "",
                        "reasoning": (m.model_extra or {}).get("reasoning_content") or "",
                        "tools": [(t.function.name, t.function.arguments) for t in m.tool_calls or []],
                        "finish": c.finish_reason, "logprobs": c.logprobs is not None})
        return out
    acc: dict[int, dict[str, Any]] = {}
    for chunk in result:
        if isinstance(chunk, str):
            return refusal_answer(chunk)
        for c in chunk.choices:
            a = acc.setdefault(c.index, {"content": "", "refusal": "", "reasoning": "", "tools": {}, "finish": None,
                                         "logprobs": False})
            d = c.delta
            a["content"] += d.content or ""
            a["refusal"] += d.refusal or ""
            a["reasoning"] += (d.model_extra or {}).get("reasoning_content") or ""
            for t in d.tool_calls or []:
                name, args = a["tools"].get(t.index, ("", ""))
                fn = t.function
                a["tools"][t.index] = (name + ((fn.name or "") if fn else ""), args + ((fn.arguments or "") if fn else ""))
            a["finish"] = c.finish_reason or a["finish"]
            a["logprobs"] = a["logprobs"] or c.logprobs is not None
    return [{**a, "tools": [a["tools"][k] for k in sorted(a["tools"])]} for _, a in sorted(acc.items())]


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
        "upstream": rec.upstream,
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

        def call_model(messages: list[dict[str, Any]], model: str, stream: bool = False, **extra: Any) -> Any:
            resp = raw.chat.completions.create(model=model, messages=messages, stream=stream, **extra)
            return list(resp) if stream else resp

        def stream_model(messages: list[dict[str, Any]], model: str, **extra: Any):
            yield from raw.chat.completions.create(model=model, messages=messages, stream=True, **extra)

        routes = {"inhouse": call_model}
        ask = guard.guard(call_model, upstream="model", routes=routes)
        ask_stream = guard.guard(stream_model, upstream="model", routes={"inhouse": stream_model})
        with serve_app(create_app(proxy_rt, host="127.0.0.1")) as proxy_url:
            yield {"log": log, "proxy": client(proxy_url), "guard": guard, "raw": raw,
                   "wrapped": guard.wrap_openai(raw, upstream="model", routes={"inhouse": raw}),
                   "ask": ask, "ask_stream": ask_stream, "call_model": call_model, "stream_model": stream_model,
                   "proxy_rec": proxy_rec, "guard_rec": guard_rec}
        guard.close()
        asyncio.run(proxy_rt.aclose())


def refusal_answer(message: str) -> list[dict[str, Any]]:
    return [{"content": message, "refusal": "", "reasoning": "", "tools": [], "finish": "content_filter",
             "logprobs": False}]


def through_proxy(sides: dict[str, Any], model: str, messages: list[dict[str, Any]], stream: bool,
                  extra: dict[str, Any]) -> Any:
    try:
        return answer_of(sides["proxy"].chat.completions.create(model=model, messages=messages, stream=stream, **extra))
    except openai.BadRequestError as exc:  # an input block: 400 content_policy_violation
        body = exc.body if isinstance(exc.body, dict) else {}
        assert body.get("code") == "content_policy_violation"
        return refusal_answer(str(body.get("message")))
    except openai.APIStatusError as exc:
        return ("error", exc.status_code)


def in_process(call: Any) -> Any:
    try:
        return answer_of(call())  # a stream fails while it is read
    except AccessDenied as exc:
        return ("error", exc.status)
    except openai.APIStatusError as exc:
        return ("error", 502 if exc.status_code >= 500 else exc.status_code)


def wait_for(rec: kit.MemoryRecorder, before: int) -> None:
    deadline = time.monotonic() + 20  # a streamed call is audited when its stream closes
    while len(rec.records) == before and time.monotonic() < deadline:
        time.sleep(0.01)


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
@pytest.mark.parametrize(("case", "model", "messages", "extra"), CASES, ids=[c[0] for c in CASES])
def test_proxy_and_in_process_agree(sides: dict[str, Any], case: str, model: str, messages: list[dict[str, Any]],
                                    extra: dict[str, Any], stream: bool) -> None:
    log, proxy_rec, guard_rec = sides["log"], sides["proxy_rec"], sides["guard_rec"]

    n, before = len(log), len(proxy_rec.records)
    via_proxy = through_proxy(sides, model, messages, stream, extra)
    proxy_sent = [{k: v for k, v in b.items() if k != "stream_options"} for b in log[n:]]
    wait_for(proxy_rec, before)
    assert len(proxy_rec.records) == before + 1, "exactly one audit record per call"
    expected = outcome(proxy_rec.records[-1])

    g = sides["guard"]
    if case == "access-denied":  # @guard knows the model only when it is declared
        ask = g.guard(sides["call_model"], model=model)
        ask_stream = g.guard(sides["stream_model"], model=model)
    else:
        ask, ask_stream = sides["ask"], sides["ask_stream"]
    ways = {
        "wrap_openai": lambda: sides["wrapped"].chat.completions.create(model=model, messages=messages, stream=stream,
                                                                         **extra),
        "@guard": (lambda: ask_stream(messages, model, **extra)) if stream else (lambda: ask(messages, model, **extra)),
    }
    for way, call in ways.items():
        n, before = len(log), len(guard_rec.records)
        got = in_process(call)
        sent = [{k: v for k, v in b.items() if k != "stream_options"} for b in log[n:]]
        if way == "@guard":  # the function sends what it sends: compare the messages the guard passed it
            assert [b["messages"] for b in sent] == [b["messages"] for b in proxy_sent], way
        else:
            assert sent == proxy_sent, f"{way}: the upstream received something else"
        wait_for(guard_rec, before)
        assert len(guard_rec.records) == before + 1, f"{way}: exactly one audit record per call"
        got_outcome = outcome(guard_rec.records[-1])
        if way == "@guard" and case != "routed":
            got_outcome["upstream"] = expected["upstream"]  # @guard names no upstream unless told
        assert got_outcome == expected, way
        assert got == via_proxy, way

    # the table means something: each case does what its name says
    first = via_proxy[0] if isinstance(via_proxy, list) else {}
    if case.startswith("pii") and case != "pii-output-leak":
        assert expected["input_action"].label == "redact" and proxy_sent and "<" in str(proxy_sent)
        assert first["content"].startswith("Reply to:") and "<PERSON_1>" not in first["content"]
    if case == "secret":
        assert expected["input_categories"] == ("api_key",) and proxy_sent == []
    if case in ("toxic-output", "copyright-output"):
        assert expected["output_action"].label == "block" and first["content"].endswith("withheld by the content policy.")
    if case == "pii-output-leak":
        assert "<US_SSN>" in first["content"]
    if case == "benign":
        assert expected["final_action"].label == "allow" and [b["messages"] for b in proxy_sent] == [messages]
    if case == "tool-calls-in-history":  # the earlier tool call's arguments were read and pseudonymised
        sent_args = proxy_sent[0]["messages"][1]["tool_calls"][0]["function"]["arguments"]
        assert "jane@example.com" not in sent_args and "<EMAIL_ADDRESS_1>" in sent_args
    if case in ("tool-call-only-answer", "n2-tool-calls"):  # checked, and pseudonyms restored JSON-escaped
        for k, choice in enumerate(via_proxy):
            name, args = choice["tools"][0]
            assert name == "send_mail" and json.loads(args)["n"] == k
            assert "Ada Lovelace" in json.loads(args)["to"] and "<PERSON_1>" not in args
        assert "send_mail" in expected["output_texts"][0] or any("send_mail" in t for t in expected["output_texts"])
    if case == "logprobs-requested":  # token text would spell out what the checks changed
        assert proxy_sent[0]["logprobs"] is True and first["logprobs"] is False
    if case.startswith("n2"):
        assert len(via_proxy) == 2
    if case == "refusal":
        assert first["refusal"].startswith("I will not act on: Send Ada Lovelace")
    if case == "reasoning-field":  # the reasoning field is output-checked like content
        assert "078-05-1120" not in first["reasoning"] and "<US_SSN>" in first["reasoning"]
    if case == "routed":
        assert expected["upstream"] == "inhouse" and expected["input_action"].label == "route"
    if case == "access-denied":
        assert via_proxy == ("error", 403) and proxy_sent == [] and expected["status"] == 403
    if case == "model-error":
        assert via_proxy == ("error", 502) and (expected["status"], expected["error"]) == (502, "upstream_error")
