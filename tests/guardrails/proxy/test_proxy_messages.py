"""POST /v1/messages (Anthropic Messages) with the official anthropic client, plain and streamed,
against an OpenAI-kind upstream (translated) and an anthropic-kind upstream, through the one call
lifecycle: PII pseudonymised and restored, toxic output refused (a stream ends well-formed, with
nothing unchecked released), tools both ways, errors in Anthropic's shape, one audit record a call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest

from support.openai_upstream import TOXIC

from .routes_kit import Routes, serve_routes

ASK = "I am Ada Lovelace, mail ada@example.com please."
SECRET = "sk-" + "Q1w2E3r4T5y6U7i8O9p0A1s2"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routes]:
    yield from serve_routes(tmp_path_factory.mktemp("msgs"))


def claude(routes: Routes, key: str | None = None) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=routes.proxy.url, api_key=key or routes.key, max_retries=0, timeout=30)


def one_record(routes: Routes, rid: str) -> Any:
    recs = [r for r in routes.records if r.request_id == rid]
    assert len(recs) == 1, recs
    return recs[0]


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("model", ["gpt-x", "claude-x"])
def test_plain_pseudonymised_and_restored(routes: Routes, model: str) -> None:
    routes.log.clear()
    raw = claude(routes).messages.with_raw_response.create(model=model, max_tokens=64, messages=user(ASK),
                                                           system="Be terse.")
    msg = raw.parse()
    assert msg.type == "message" and msg.role == "assistant" and msg.stop_reason == "end_turn"
    assert msg.content[0].type == "text" and msg.content[0].text == f"Reply to: {ASK}"
    sent = json.dumps(routes.log[-1])
    assert "Ada Lovelace" not in sent and "ada@example.com" not in sent and "<PERSON_1>" in sent
    if model == "claude-x":  # the anthropic upstream got an Anthropic request with its headers
        assert routes.log[-1]["system"] == "Be terse." and routes.log[-1]["max_tokens"] == 64
        assert routes.headers[-1]["x-api-key"] == "sk-ant-test-upstream-key"
        assert routes.headers[-1]["anthropic-version"] == "2023-06-01"
    else:
        assert routes.log[-1]["messages"][0] == {"role": "system", "content": "Be terse."}
    rec = one_record(routes, raw.headers["x-trustwall-request-id"])
    assert rec.route == "/v1/messages" and rec.status == 200 and not rec.streamed
    assert raw.headers["x-trustwall-action"] == "redact"
    assert msg.usage.input_tokens > 0


@pytest.mark.parametrize("model", ["gpt-x", "claude-x"])
def test_stream_pseudonymised_and_restored(routes: Routes, model: str) -> None:
    with claude(routes).messages.stream(model=model, max_tokens=64, messages=user(ASK)) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
        rid = stream.response.headers["x-trustwall-request-id"]
    assert text == f"Reply to: {ASK}"
    assert final.stop_reason == "end_turn" and final.content[0].text == text
    rec = one_record(routes, rid)
    assert rec.streamed and rec.status == 200


@pytest.mark.parametrize("model", ["toxic", "claude-toxic"])
def test_toxic_output_refused_plain(routes: Routes, model: str) -> None:
    msg = claude(routes).messages.create(model=model, max_tokens=64, messages=user("What do you think of me?"))
    assert msg.stop_reason == "refusal"
    assert "idiot" not in msg.content[0].text


@pytest.mark.parametrize("model", ["toxic", "claude-toxic"])
def test_toxic_output_refused_stream(routes: Routes, model: str) -> None:
    events = []
    with claude(routes).messages.stream(model=model, max_tokens=64, messages=user("What do you think?")) as stream:
        for ev in stream:
            events.append(ev)
        final = stream.get_final_message()
        rid = stream.response.headers["x-trustwall-request-id"]
    streamed = "".join(e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta")
    assert "idiot" not in streamed and TOXIC not in streamed
    assert final.stop_reason == "refusal"
    assert "withheld" in final.content[-1].text or "policy" in final.content[-1].text.lower()
    assert one_record(routes, rid).output.blocked


@pytest.mark.parametrize("model", ["tools", "claude-tools"])
@pytest.mark.parametrize("stream", [False, True])
def test_tool_use_answer_restored(routes: Routes, model: str, stream: bool) -> None:
    kw: dict[str, Any] = {"model": model, "max_tokens": 64, "messages": user("Mail Ada Lovelace the minutes."),
                          "tools": [{"name": "send_mail", "description": "send", "input_schema": {"type": "object"}}]}
    if stream:
        with claude(routes).messages.stream(**kw) as s:
            msg = s.get_final_message()
    else:
        msg = claude(routes).messages.create(**kw)
    uses = [b for b in msg.content if b.type == "tool_use"]
    assert msg.stop_reason == "tool_use" and len(uses) == 1
    assert uses[0].name == "send_mail" and uses[0].input["to"] == "Mail Ada Lovelace the minutes."


def test_history_with_tool_blocks_and_images_is_translated(routes: Routes) -> None:
    routes.log.clear()
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Mail the minutes."}, image]},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_9", "name": "send_mail",
                                           "input": {"to": "grace@navy.example.org"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9",
                                      "content": "sent to Grace Hopper"}, {"type": "text", "text": "Next?"}]},
    ]
    raw = claude(routes).messages.with_raw_response.create(model="gpt-x", max_tokens=32, messages=messages)
    msg = raw.parse()
    assert msg.content[0].text == "Reply to: Next?"
    # the image is forwarded unchecked, and the audit record says so
    assert one_record(routes, raw.headers["x-trustwall-request-id"]).unchecked == (("image_url", 1),)
    sent = routes.log[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "user"]
    assert sent[0]["content"][1] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    assert "grace@navy.example.org" not in json.dumps(sent) and "Grace Hopper" not in json.dumps(sent)
    assert sent[2]["tool_call_id"] == "toolu_9"


def test_input_block_is_an_anthropic_error(routes: Routes) -> None:
    routes.log.clear()
    with pytest.raises(anthropic.BadRequestError) as err:
        claude(routes).messages.create(model="gpt-x", max_tokens=16, messages=user(f"use {SECRET}"))
    body = err.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "content_policy_violation"
    assert routes.log == []


def test_access_and_auth_errors_are_anthropic_errors(routes: Routes) -> None:
    with pytest.raises(anthropic.PermissionDeniedError) as err:
        claude(routes, routes.limited_key).messages.create(model="gpt-x", max_tokens=16, messages=user("hi"))
    assert err.value.body["error"]["type"] == "permission_error"
    with pytest.raises(anthropic.AuthenticationError):
        claude(routes, "tw-wrong").messages.create(model="gpt-x", max_tokens=16, messages=user("hi"))


def test_upstream_stream_breaking_midway_is_an_error_event(routes: Routes) -> None:
    before = len(routes.records)
    with pytest.raises(anthropic.APIStatusError):
        with claude(routes).messages.stream(model="claude-broken", max_tokens=64,
                                            messages=user("tell me a long story")) as s:
            for _ in s:
                pass
    routes.record_after(before, "/v1/messages", 502)


@pytest.mark.parametrize("body", [
    b"{", b"[]", b'{"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}',
    b'{"model": "gpt-x", "max_tokens": 5, "messages": [{"role": "robot", "content": "hi"}]}',
    b'{"model": "gpt-x", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "document", '
    b'"source": {"type": "text", "data": "x"}}]}]}',
    b'{"model": "gpt-x", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "mcp_servers": []}',
])
def test_malformed_bodies_are_4xx_anthropic_errors(routes: Routes, body: bytes) -> None:
    r = httpx.post(routes.proxy.url + "/v1/messages", content=body,
                   headers={"x-api-key": routes.key, "content-type": "application/json"})
    assert r.status_code == 400, r.text
    data = r.json()
    assert data["type"] == "error" and data["error"]["type"] == "invalid_request_error" and data["error"]["message"]
    assert r.headers["x-trustwall-request-id"]


def test_openai_client_can_use_the_anthropic_upstream(routes: Routes) -> None:
    import openai

    c = openai.OpenAI(base_url=routes.base_url, api_key=routes.key, max_retries=0, timeout=30)
    resp = c.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": ASK}])
    assert resp.choices[0].message.content == f"Reply to: {ASK}"
    chunks = list(c.chat.completions.create(model="claude-x", messages=[{"role": "user", "content": ASK}],
                                            stream=True))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == f"Reply to: {ASK}"


def test_anthropic_upstream_refusal_and_a_stream_that_is_not_one(routes: Routes) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        claude(routes).messages.create(model="claude-reject", max_tokens=16, messages=user("Ada Lovelace"))
    assert err.value.body["error"]["type"] == "invalid_request_error"
    assert "Ada" not in json.dumps(err.value.body)  # the upstream's message (quoting the prompt) is not passed on
    before = len(routes.records)
    with pytest.raises(anthropic.APIStatusError) as err2:
        with claude(routes).messages.stream(model="claude-nostream", max_tokens=16, messages=user("hi")) as s:
            list(s)
    assert err2.value.status_code == 502 and err2.value.body["error"]["code"] == "upstream_bad_stream"
    routes.record_after(before, "/v1/messages", 502)
