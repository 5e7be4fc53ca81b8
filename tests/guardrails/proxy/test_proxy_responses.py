"""POST /v1/responses with the official openai client (responses.create, plain and streamed), translated
to chat completions, through the one call lifecycle: every input item checked (instructions, function
call outputs), PII pseudonymised and restored, toxic output refused as a well-formed incomplete
response, function calls both ways, 4xx in the OpenAI error shape, one audit record a call."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from support.openai_upstream import TOXIC

from .routes_kit import Routes, serve_routes

ASK = "I am Ada Lovelace, mail ada@example.com please."
SECRET = "sk-" + "Q1w2E3r4T5y6U7i8O9p0A1s2"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routes]:
    yield from serve_routes(tmp_path_factory.mktemp("resp"))


def client(routes: Routes, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=routes.base_url, api_key=key or routes.key, max_retries=0, timeout=30)


def one_record(routes: Routes, rid: str) -> Any:
    recs = [r for r in routes.records if r.request_id == rid]
    assert len(recs) == 1, recs
    return recs[0]


@pytest.mark.parametrize("model", ["gpt-x", "claude-x"])
def test_plain_pseudonymised_and_restored(routes: Routes, model: str) -> None:
    routes.log.clear()
    raw = client(routes).responses.with_raw_response.create(model=model, input=ASK, instructions="Be terse.")
    resp = raw.parse()
    assert resp.status == "completed" and resp.object == "response"
    assert resp.output_text == f"Reply to: {ASK}"
    sent = json.dumps(routes.log[-1])
    assert "Ada Lovelace" not in sent and "ada@example.com" not in sent and "<PERSON_1>" in sent
    rec = one_record(routes, raw.headers["x-trustwall-request-id"])
    assert rec.route == "/v1/responses" and rec.status == 200 and not rec.streamed
    assert raw.headers["x-trustwall-action"] == "redact"
    assert resp.usage is not None and resp.usage.total_tokens > 0


@pytest.mark.parametrize("model", ["gpt-x", "claude-x"])
def test_stream_pseudonymised_and_restored(routes: Routes, model: str) -> None:
    raw = client(routes).responses.with_raw_response.create(model=model, input=ASK, stream=True)
    events = list(raw.parse())
    types = [e.type for e in events]
    assert types[:2] == ["response.created", "response.in_progress"] and types[-1] == "response.completed"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == f"Reply to: {ASK}"
    assert events[-1].response.output_text == text
    rec = one_record(routes, raw.headers["x-trustwall-request-id"])
    assert rec.streamed and rec.status == 200


def test_stream_helper_of_the_sdk(routes: Routes) -> None:
    with client(routes).responses.stream(model="gpt-x", input="Hello there") as stream:
        for _ in stream:
            pass
        final = stream.get_final_response()
    assert final.output_text == "Reply to: Hello there"


@pytest.mark.parametrize("model", ["toxic", "claude-toxic"])
def test_toxic_output_is_an_incomplete_response(routes: Routes, model: str) -> None:
    resp = client(routes).responses.create(model=model, input="What do you think of me?")
    assert resp.status == "incomplete" and resp.incomplete_details.reason == "content_filter"
    assert "idiot" not in resp.output_text
    events = list(client(routes).responses.create(model=model, input="What do you think?", stream=True))
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert "idiot" not in streamed and TOXIC not in streamed
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "content_filter"


@pytest.mark.parametrize("stream", [False, True])
def test_function_call_answer_restored(routes: Routes, stream: bool) -> None:
    tools = [{"type": "function", "name": "send_mail", "parameters": {"type": "object", "properties": {}}}]
    kw: dict[str, Any] = {"model": "tools", "input": "Mail Ada Lovelace the minutes.", "tools": tools}
    if stream:
        events = list(client(routes).responses.create(stream=True, **kw))
        resp = events[-1].response
        assert any(e.type == "response.function_call_arguments.done" for e in events)
    else:
        resp = client(routes).responses.create(**kw)
    calls = [o for o in resp.output if o.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "send_mail"
    assert json.loads(calls[0].arguments)["to"] == "Mail Ada Lovelace the minutes."


def test_items_with_function_calls_and_outputs_are_checked(routes: Routes) -> None:
    routes.log.clear()
    items: list[Any] = [
        {"role": "user", "content": [{"type": "input_text", "text": "Mail the minutes."},
                                     {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]},
        {"type": "function_call", "call_id": "call_7", "name": "send_mail",
         "arguments": '{"to": "grace@navy.example.org"}'},
        {"type": "function_call_output", "call_id": "call_7", "output": "sent to Grace Hopper"},
        {"role": "user", "content": "Next?"},
    ]
    raw = client(routes).responses.with_raw_response.create(model="gpt-x", input=items,
                                                            instructions="Mind Alan Turing's rules.")
    resp = raw.parse()
    assert resp.output_text == "Reply to: Next?"
    assert one_record(routes, raw.headers["x-trustwall-request-id"]).unchecked == (("image_url", 1),)
    sent = routes.log[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "tool", "user"]
    dumped = json.dumps(sent)
    assert "grace@navy.example.org" not in dumped and "Grace Hopper" not in dumped and "Alan Turing" not in dumped
    assert sent[1]["content"][1]["type"] == "image_url"
    assert sent[3]["tool_call_id"] == "call_7"


def test_input_block_and_access(routes: Routes) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(routes).responses.create(model="gpt-x", input=[{"type": "function_call_output", "call_id": "c",
                                                               "output": f"key {SECRET}"}])
    assert err.value.body["code"] == "content_policy_violation"
    with pytest.raises(openai.PermissionDeniedError):
        client(routes, routes.limited_key).responses.create(model="gpt-x", input="hi")


@pytest.mark.parametrize("body", [
    b"{", b'{"model": "gpt-x"}', b'{"model": "gpt-x", "input": 5}',
    b'{"model": "gpt-x", "input": "hi", "previous_response_id": "resp_1"}',
    b'{"model": "gpt-x", "input": [{"type": "item_reference", "id": "x"}]}',
    b'{"model": "gpt-x", "input": "hi", "tools": [{"type": "web_search"}]}',
    b'{"model": "gpt-x", "input": []}',
])
def test_malformed_bodies_are_4xx_openai_errors(routes: Routes, body: bytes) -> None:
    r = httpx.post(routes.base_url + "/responses", content=body,
                   headers={"authorization": f"Bearer {routes.key}", "content-type": "application/json"})
    assert r.status_code == 400, r.text
    assert {"message", "type", "param", "code"} <= set(r.json()["error"])


def test_upstream_stream_breaking_midway_raises_in_the_sdk(routes: Routes) -> None:
    before = len(routes.records)
    with pytest.raises(openai.APIError):
        for _ in client(routes).responses.create(model="claude-broken", input="a long story", stream=True):
            pass
    routes.record_after(before, "/v1/responses", 502)


@pytest.mark.parametrize("stream", [False, True])
def test_native_responses_upstream(routes: Routes, stream: bool) -> None:
    """An upstream declared `api: responses` gets a Responses request (rebuilt from the checked one)."""
    routes.log.clear()
    if stream:
        events = list(client(routes).responses.create(model="native-x", input=ASK, instructions="Be terse.",
                                                      stream=True))
        resp = events[-1].response
        assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == f"Reply to: {ASK}"
    else:
        resp = client(routes).responses.create(model="native-x", input=ASK, instructions="Be terse.")
    assert resp.status == "completed" and resp.output_text == f"Reply to: {ASK}"
    sent = routes.log[-1]
    assert sent["input"][0] == {"type": "message", "role": "system", "content": "Be terse."}
    assert "Ada Lovelace" not in json.dumps(sent) and "<PERSON_1>" in json.dumps(sent)
    # the upstream's own key from the policy's api_key_env, never the caller's trustwall key
    assert routes.headers[-1]["authorization"] == "Bearer sk-ant-test-upstream-key"


@pytest.mark.parametrize("model", ["native-toxic", "native-tools"])
def test_native_responses_upstream_checks_the_answer(routes: Routes, model: str) -> None:
    tools = [{"type": "function", "name": "send_mail", "parameters": {"type": "object", "properties": {}}}]
    for stream in (False, True):
        kw: dict[str, Any] = {"model": model, "input": "Mail Ada Lovelace.", "tools": tools}
        resp = (list(client(routes).responses.create(stream=True, **kw))[-1].response if stream
                else client(routes).responses.create(**kw))
        if model == "native-toxic":
            assert resp.status == "incomplete" and "idiot" not in resp.output_text
        else:
            call = [o for o in resp.output if o.type == "function_call"][0]
            assert json.loads(call.arguments) == {"to": "Mail Ada Lovelace."}


def test_chat_client_on_a_native_responses_upstream(routes: Routes) -> None:
    c = client(routes)
    out = c.chat.completions.create(model="native-x", messages=[{"role": "user", "content": ASK}])
    assert out.choices[0].message.content == f"Reply to: {ASK}"
