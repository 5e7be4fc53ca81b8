"""The proxy driven by the official openai client, sync and async, stream and non-stream."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from guardrails.types import Action

USER = [{"role": "user", "content": "Hello, I am Alice Smith, write to alice@example.com please."}]


@pytest.fixture
def client(proxy):
    return openai.OpenAI(base_url=proxy.base_url, api_key="sk-anything", max_retries=0)


@pytest.fixture
def aclient(proxy):
    return openai.AsyncOpenAI(base_url=proxy.base_url, api_key="sk-anything", max_retries=0)


def _sent_text(log) -> str:
    return log.requests[-1]["messages"][-1]["content"]


# ------------------------------------------------------------------------------------- non-streaming


def test_redaction_reaches_upstream_and_pseudonyms_come_back(client, proxy, logs):
    cloud, inhouse = logs
    raw = client.chat.completions.with_raw_response.create(model="gpt-test", messages=USER)
    resp = raw.parse()
    sent = _sent_text(cloud)
    assert "Alice Smith" not in sent and "alice@example.com" not in sent
    assert "<PERSON_1>" in sent and "<EMAIL_ADDRESS_1>" in sent
    # the upstream echoes what it got; the caller sees the originals restored
    assert resp.choices[0].message.content == USER[0]["content"]
    assert raw.headers["x-trustwall-action"] == "redact"
    rid = raw.headers["x-trustwall-request-id"]
    rec = proxy.recorder.by_id(rid)
    assert rec.status == 200 and rec.upstream == "cloud" and rec.final_action is Action.REDACT
    assert rec.input is not None and rec.input.action is Action.REDACT
    assert not inhouse.requests


def test_upstream_reply_placeholders_are_restored(client, logs):
    resp = client.chat.completions.create(model="gpt-test", messages=USER,
                                          extra_body={"test_reply": "Dear <PERSON_1>, I wrote to < email_address_1 >."})
    assert resp.choices[0].message.content == "Dear Alice Smith, I wrote to alice@example.com."


def test_clean_call_is_allowed_untouched(client, logs):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"}],
        temperature=0.2, max_tokens=20)
    assert raw.parse().choices[0].message.content == "Hi there"
    assert raw.headers["x-trustwall-action"] == "allow"
    body = logs[0].requests[-1]
    assert body["temperature"] == 0.2 and body["max_tokens"] == 20
    assert body["messages"][0] == {"role": "system", "content": "Be brief."}


def test_blocked_input_is_400_with_policy_message_and_no_matched_text(client, proxy, logs):
    with pytest.raises(openai.BadRequestError) as ei:
        client.chat.completions.create(model="gpt-test",
                                       messages=[{"role": "user", "content": "What is the status of Project Bluebird?"}])
    err = ei.value
    assert err.status_code == 400
    body = err.body
    assert body["code"] == "content_policy_violation" and body["type"] == "invalid_request_error"
    assert body["message"] == "Confidential project names may not be sent."
    assert body["categories"] == ["secret"]
    assert body["request_id"] == err.response.headers["x-trustwall-request-id"]
    assert err.response.headers["x-trustwall-action"] == "block"
    assert "bluebird" not in err.response.text.lower()
    assert not logs[0].requests, "a blocked input never reaches the upstream"
    rec = proxy.recorder.by_id(body["request_id"])
    assert rec.status == 400 and rec.final_action is Action.BLOCK and rec.error == "content_policy_violation"


def test_blocked_output_is_200_content_filter(client, proxy, logs):
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": "say something"}],
        extra_body={"test_reply": "Fine. You are a stupid idiot."})
    resp = raw.parse()
    assert raw.http_response.status_code == 200
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.choices[0].message.content == "The answer was withheld by policy."
    assert raw.headers["x-trustwall-action"] == "block"
    rec = proxy.recorder.by_id(raw.headers["x-trustwall-request-id"])
    assert rec.output is not None and rec.output.action is Action.BLOCK and rec.final_action is Action.BLOCK


def test_output_redaction_of_leaked_identifiers(client, logs):
    resp = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "an ssn?"}],
                                          extra_body={"test_reply": "Try 078-05-1120 for that."})
    assert resp.choices[0].message.content == "Try <US_SSN> for that."


def test_tools_pass_through_untouched(client, logs):
    tools = [{"type": "function", "function": {"name": "lookup", "description": "Find an order",
                                               "parameters": {"type": "object", "properties": {"id": {"type": "integer"}}}}}]
    resp = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "order 42?"}],
                                          tools=tools, tool_choice="auto", extra_body={"test_mode": "tools"})
    body = logs[0].requests[-1]
    assert body["tools"] == tools and body["tool_choice"] == "auto"
    call = resp.choices[0].message.tool_calls[0]
    assert call.function.name == "lookup" and call.function.arguments == '{"id": 42}'
    assert resp.choices[0].finish_reason == "tool_calls"


def test_pseudonyms_in_tool_call_arguments_are_restored(client, logs):
    msgs = [{"role": "user", "content": 'Email Alice Smith "the boss" please'}]
    resp = client.chat.completions.create(model="gpt-test", messages=msgs, extra_body={
        "test_mode": "tools", "test_args": '{"to": "<PERSON_1>", "cc": "<PERSON_9>"}'})
    assert "<PERSON_1>" in logs[0].requests[-1]["messages"][0]["content"]
    args = resp.choices[0].message.tool_calls[0].function.arguments
    assert json.loads(args) == {"to": "Alice Smith", "cc": "<PERSON_9>"}  # unknown placeholders stay
    stream = client.chat.completions.create(model="gpt-test", messages=msgs, stream=True, extra_body={
        "test_mode": "tools", "test_arg_chunks": ['{"to": "<PER', 'SON_1>", "n', '": 1}']})
    streamed = "".join(tc.function.arguments or "" for ch in stream for c in ch.choices for tc in c.delta.tool_calls or [])
    assert json.loads(streamed) == {"to": "Alice Smith", "n": 1}


def test_tool_call_arguments_in_answers_are_checked(client, logs):
    msgs = [{"role": "user", "content": "look it up"}]
    resp = client.chat.completions.create(model="gpt-test", messages=msgs, extra_body={
        "test_mode": "tools", "test_args": '{"ssn": "078-05-1120"}'})
    assert json.loads(resp.choices[0].message.tool_calls[0].function.arguments) == {"ssn": "<US_SSN>"}
    resp = client.chat.completions.create(model="gpt-test", messages=msgs, extra_body={
        "test_mode": "tools", "test_args": '{"q": "project bluebird budget"}'})
    assert resp.choices[0].finish_reason == "content_filter" and not resp.choices[0].message.tool_calls
    assert "bluebird" not in resp.model_dump_json()


def test_streamed_tool_call_arguments_are_checked_before_release(client, logs):
    msgs = [{"role": "user", "content": "look it up"}]

    def run(chunks):
        events = list(client.chat.completions.create(model="gpt-test", messages=msgs, stream=True, extra_body={
            "test_mode": "tools", "test_arg_chunks": chunks}))
        args = "".join(tc.function.arguments or "" for ev in events for c in ev.choices for tc in c.delta.tool_calls or [])
        reasons = [c.finish_reason for ev in events for c in ev.choices if c.finish_reason]
        raw = "".join(ev.model_dump_json() for ev in events)
        return args, reasons, raw

    args, reasons, raw = run(['{"ssn": "078-0', '5-1120", "n', '": 1}'])
    assert json.loads(args) == {"ssn": "<US_SSN>", "n": 1} and reasons == ["tool_calls"]
    assert "1120" not in raw
    args, reasons, raw = run(['{"q": "project blue', 'bird budget"}'])
    assert reasons == ["content_filter"] and "bluebird" not in raw and "blue" not in args


def test_tool_history_suffix_and_prediction_are_checked_on_input(client, logs):
    msgs = [{"role": "user", "content": "mail my boss"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "mail", "arguments": '{"to": "Alice Smith"}'}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sent"}]
    client.chat.completions.create(model="gpt-test", messages=msgs,
                                   extra_body={"prediction": {"type": "content", "content": "Dear Bob Jones"}})
    sent = logs[0].requests[-1]
    assert json.loads(sent["messages"][1]["tool_calls"][0]["function"]["arguments"]) == {"to": "<PERSON_1>"}
    assert sent["prediction"]["content"] == "Dear <PERSON_2>"
    client.completions.create(model="gpt-test", prompt="Hello", suffix=" regards, Bob Jones")
    assert logs[0].requests[-1]["suffix"] == " regards, <PERSON_1>"


def test_content_parts_are_checked(client, logs):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": [
        {"type": "text", "text": "I am Bob Jones"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}]}])
    parts = logs[0].requests[-1]["messages"][0]["content"]
    assert parts[0] == {"type": "text", "text": "I am <PERSON_1>"}
    assert parts[1]["image_url"]["url"] == "data:image/png;base64,AA"


def test_completions_route(client, logs):
    resp = client.completions.create(model="gpt-test", prompt="Complete: Alice Smith is")
    assert logs[0].requests[-1]["prompt"] == "Complete: <PERSON_1> is"
    assert resp.choices[0].text == "Complete: Alice Smith is"


def test_echo_upstream_shows_what_the_model_receives(proxy):
    # the built-in echo upstream answers with what the model would have received, placeholders and all
    # (nothing is restored on its answers: it exists to show redaction at work without a model)
    c = openai.OpenAI(base_url=proxy.base_url, api_key="x", max_retries=0)
    resp = c.chat.completions.create(model="echo", messages=[{"role": "user", "content": "SSN-free, Bob Jones here"}])
    assert resp.choices[0].message.content == "SSN-free, <PERSON_1> here"
    chunks = [ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="echo", messages=[{"role": "user", "content": "Bob Jones says hi to everyone here today."}], stream=True)
        if ch.choices]
    assert "".join(chunks) == "<PERSON_1> says hi to everyone here today."
    resp = c.completions.create(model="echo", prompt=["Bob Jones one", "two"])
    assert [ch.text for ch in resp.choices] == ["<PERSON_1> one", "two"]
    out: dict[int, str] = {}
    for ch in c.chat.completions.create(model="echo", n=2, stream=True,
                                        messages=[{"role": "user", "content": "Bob Jones, twice. Yes."}]):
        for cc in ch.choices:
            out[cc.index] = out.get(cc.index, "") + (cc.delta.content or "")
    assert out == {0: "<PERSON_1>, twice. Yes.", 1: "<PERSON_1>, twice. Yes."}


async def test_async_client_non_stream(aclient, logs):
    resp = await aclient.chat.completions.create(model="gpt-test", messages=USER)
    assert resp.choices[0].message.content == USER[0]["content"]
    assert "<PERSON_1>" in _sent_text(logs[0])


# ----------------------------------------------------------------------------------------- streaming


def _collect(stream) -> tuple[str, list[str | None]]:
    text, reasons = [], []
    for ch in stream:
        for c in ch.choices:
            text.append(c.delta.content or "")
            reasons.append(c.finish_reason)
    return "".join(text), reasons


def test_stream_redacts_and_restores_split_placeholders(client, logs):
    stream = client.chat.completions.create(
        model="gpt-test", messages=USER, stream=True,
        extra_body={"test_chunks": ["Hello <PER", "SON_1>, I will", " write to <EMAIL_", "ADDRESS_1> today. ", "Bye."]})
    text, reasons = _collect(stream)
    assert text == "Hello Alice Smith, I will write to alice@example.com today. Bye."
    assert reasons[-1] == "stop"
    assert "<PERSON_1>" in _sent_text(logs[0])


def test_toxic_text_split_across_chunks_never_reaches_the_client(client, proxy, logs):
    chunks = ["Thanks for asking, here is a long and friendly opening sentence. ", "Honestly, you are a stu",
              "pid id", "iot and everyone knows it. ", "More text follows here."]
    with client.chat.completions.with_streaming_response.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True,
            extra_body={"test_chunks": chunks}) as raw:
        rid = raw.headers["x-trustwall-request-id"]
        lines = [line for line in raw.iter_lines() if line]
    body = "\n".join(lines)
    assert "stu" not in body.replace("Thanks", "") and "idiot" not in body and "pid" not in body
    assert lines[-1] == "data: [DONE]"
    assert '"finish_reason":"content_filter"' in lines[-2]
    assert "The answer was withheld by policy." in lines[-2]
    rec = proxy.recorder.by_id(rid)
    assert rec.streamed and rec.final_action is Action.BLOCK and rec.output.action is Action.BLOCK


def test_stream_blocked_output_through_openai_client(client, logs):
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True,
                                            extra_body={"test_reply": "ok you stupid idiot"})
    text, reasons = _collect(stream)
    assert text == "The answer was withheld by policy." and reasons[-1] == "content_filter"


def test_stream_tool_call_deltas_pass_through(client, logs):
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "order?"}],
                                            stream=True, extra_body={"test_mode": "tools"})
    args, names, reasons = "", [], []
    for ch in stream:
        for c in ch.choices:
            for tc in c.delta.tool_calls or []:
                args += tc.function.arguments or ""
                if tc.function.name:
                    names.append(tc.function.name)
            reasons.append(c.finish_reason)
    assert names == ["lookup"] and args == '{"id": 42}' and reasons[-1] == "tool_calls"


def test_stream_usage_chunk_passes(client, logs):
    stream = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi you"}],
                                            stream=True, stream_options={"include_usage": True})
    usage = [ch.usage for ch in stream if ch.usage is not None]
    assert usage and usage[0].total_tokens == 12


def test_stream_completions(client, logs):
    stream = client.completions.create(model="gpt-test", prompt="Alice Smith writes a long letter. It has words.",
                                       stream=True)
    text = "".join(c.text for ch in stream for c in ch.choices)
    assert text == "Alice Smith writes a long letter. It has words."
    assert logs[0].requests[-1]["prompt"].startswith("<PERSON_1>")


async def test_async_client_stream(aclient, proxy, logs):
    stream = await aclient.chat.completions.create(
        model="gpt-test", messages=USER, stream=True,
        extra_body={"test_chunks": ["<PERSON_1> is ", "here. And then ", "some more words."]})
    text = ""
    async for ch in stream:
        for c in ch.choices:
            text += c.delta.content or ""
    assert text == "Alice Smith is here. And then some more words."


# ------------------------------------------------------------------------------------- other routes


def test_every_response_has_trustwall_headers(proxy):
    with httpx.Client(base_url=proxy.url) as h:
        for method, path in (("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/nope"), ("GET", "/v1/models"),
                             ("GET", "/metrics"), ("DELETE", "/v1/chat/completions")):
            r = h.request(method, path)
            assert r.status_code < 500
            assert len(r.headers["x-trustwall-request-id"]) == 32 and r.headers["x-trustwall-action"]
        r = h.get("/nope")
        assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"


def test_readyz_and_models(proxy, client):
    with httpx.Client(base_url=proxy.url) as h:
        ready = h.get("/readyz").json()
    assert ready["status"] == "ready" and ready["detectors"] == ["kw"]
    assert ready["devices"] == {"kw": "cpu"}  # the device each detector runs on, read back from it
    ids = {m.id for m in client.models.list()}
    # names the cloud upstream reports (its patterns are '*') plus the echo upstream's model
    assert {"gpt-test", "gpt-other", "local-llm", "echo"} <= ids


def test_metrics_count_requests_and_detectors(proxy, client, logs):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "metrics please"}])
    with httpx.Client(base_url=proxy.url) as h:
        text = h.get("/metrics").text
    assert 'trustwall_requests_total{action="allow",route="/v1/chat/completions",status="200"}' in text
    assert 'trustwall_detector_seconds_count{detector="kw",stage="input"}' in text
    assert 'trustwall_upstream_seconds_count{upstream="cloud"}' in text
