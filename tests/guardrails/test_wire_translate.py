"""The Anthropic Messages and Responses codecs (guardrails/wire/anthropic.py, responses.py): requests to
the chat shape and back, answers and events from chat answers and checked chunks, and the refusal rules."""

from __future__ import annotations

import json

import pytest

from guardrails.proxy.errors import ProxyError
from guardrails.proxy.route_anthropic import MessagesCodec
from guardrails.wire import anthropic, responses
from guardrails.wire.translate import Untranslatable


def chunk(delta: dict, finish: str | None = None) -> dict:
    return {"id": "c1", "model": "m", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_anthropic_request_round_trips_through_chat() -> None:
    req = {"model": "claude-x", "max_tokens": 99, "system": [{"type": "text", "text": "Be terse."}],
           "stop_sequences": ["END"], "metadata": {"user_id": "u-1"},
           "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}}],
           "tool_choice": {"type": "any"},
           "messages": [{"role": "user", "content": "hi"},
                        {"role": "assistant", "content": [{"type": "thinking", "thinking": "hm", "signature": "s"},
                                                          {"type": "tool_use", "id": "t1", "name": "f",
                                                           "input": {"a": 1}}]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}
    chat = anthropic.to_chat(req)
    assert chat["messages"][0] == {"role": "system", "content": "Be terse."}
    assert chat["messages"][2]["tool_calls"][0]["function"] == {"name": "f", "arguments": '{"a": 1}'}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t1", "content": "ok"}
    assert chat["tool_choice"] == "required" and chat["stop"] == ["END"] and chat["user"] == "u-1"
    back = anthropic.from_chat(chat)
    assert back["system"] == "Be terse." and back["max_tokens"] == 99 and back["stop_sequences"] == ["END"]
    assert [m["role"] for m in back["messages"]] == ["user", "assistant", "user"]
    assert back["messages"][1]["content"][0] == {"type": "tool_use", "id": "t1", "name": "f", "input": {"a": 1}}
    assert back["messages"][2]["content"][0]["type"] == "tool_result"
    assert back["tool_choice"] == {"type": "any"} and back["tools"][0]["input_schema"] == {"type": "object"}


@pytest.mark.parametrize("req", [
    {"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]},
    {"messages": [{"role": "user", "content": "x"}], "container": "c"},
    {"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "web_search_20250305", "name": "w"}]},
])
def test_anthropic_untranslatable_parts_are_refused(req: dict) -> None:
    with pytest.raises(Untranslatable):
        anthropic.to_chat({"model": "m", "max_tokens": 5, **req})


def test_pass_fields_are_carried_over_unchecked() -> None:
    data = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "vendor_knob": 3}
    with pytest.raises(ProxyError):
        MessagesCodec().to_wire(data)
    assert MessagesCodec().to_wire(data, ["vendor_knob"])["vendor_knob"] == 3


def test_anthropic_events_from_checked_chunks_and_a_refusal() -> None:
    w = anthropic.EventWriter("r1", "m")
    evs = w.feed([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hello "})])
    evs += w.feed([chunk({"content": "withheld."}, "content_filter")])
    evs += w.end()
    names = [n for n, _ in evs]
    assert names == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                     "content_block_stop", "message_delta", "message_stop"]
    assert evs[-2][1]["delta"]["stop_reason"] == "refusal"


def test_anthropic_tool_use_sent_whole_at_the_end() -> None:
    w = anthropic.EventWriter("r1", "m")
    w.feed([chunk({"tool_calls": [{"index": 0, "id": "t1", "type": "function", "function": {"arguments": ""}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"name": "send"}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"to": "A'}}]}),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'da"}'}}]}, "tool_calls")])
    evs = w.end()
    start = next(d for n, d in evs if n == "content_block_start")
    assert start["content_block"] == {"type": "tool_use", "id": "t1", "name": "send", "input": {}}
    delta = next(d for n, d in evs if n == "content_block_delta")
    assert json.loads(delta["delta"]["partial_json"]) == {"to": "Ada"}


def test_anthropic_upstream_events_become_chat_chunks() -> None:
    r = anthropic.ChunkReader()
    out = []
    for ev in [{"type": "message_start", "message": {"id": "msg_1", "model": "c", "usage": {"input_tokens": 4}}},
               {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
               {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
               {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "x"}},
               {"type": "message_delta", "delta": {"stop_reason": "max_tokens"}, "usage": {"output_tokens": 2}}]:
        out += r.read(ev)
    assert [c["choices"][0]["delta"] for c in out if c["choices"]][:2] == [{"role": "assistant", "content": ""},
                                                                            {"content": "Hi"}]
    assert out[-2]["choices"][0]["finish_reason"] == "length"
    assert out[-1]["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert r.read({"type": "error", "error": {"type": "overloaded_error"}}) == [{"error": {"type": "overloaded_error"}}]


def test_responses_request_to_chat() -> None:
    chat = responses.to_chat({
        "model": "m", "instructions": "Be terse.", "max_output_tokens": 50, "store": True, "user": "u",
        "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}},
        "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
        "tool_choice": {"type": "function", "name": "f"},
        "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]},
                  {"type": "reasoning", "id": "rs_1", "summary": []},
                  {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                  {"type": "function_call", "call_id": "c2", "name": "f", "arguments": "{}"},
                  {"type": "function_call_output", "call_id": "c1", "output": "one"}]})
    assert [m["role"] for m in chat["messages"]] == ["system", "user", "assistant", "tool"]
    assert len(chat["messages"][2]["tool_calls"]) == 2
    assert chat["max_tokens"] == 50 and chat["user"] == "u" and "store" not in chat
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}
    assert chat["tool_choice"] == {"type": "function", "function": {"name": "f"}}


def test_responses_answer_and_a_withheld_one() -> None:
    ok = {"id": "x", "model": "m", "created": 5, "usage": {"prompt_tokens": 3, "completion_tokens": 2},
          "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "Hi"}}]}
    r = responses.to_response(ok, {"model": "m"}, request_id="r1")
    assert r["status"] == "completed" and r["output"][0]["content"][0]["text"] == "Hi"
    assert r["usage"]["total_tokens"] == 5
    bad = {**ok, "choices": [{"index": 0, "finish_reason": "content_filter",
                              "message": {"role": "assistant", "content": "Withheld."}}]}
    r = responses.to_response(bad, {"model": "m"}, request_id="r1")
    assert r["status"] == "incomplete" and r["incomplete_details"] == {"reason": "content_filter"}


def test_chat_to_native_responses_and_back() -> None:
    from guardrails.wire import responses_upstream as ru

    chat = {"model": "m", "max_tokens": 7, "user": "tw-abc", "stream": True,
            "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {}}},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
            "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "hi"},
                         {"role": "assistant", "content": None, "tool_calls": [
                             {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                         {"role": "tool", "tool_call_id": "c1", "content": "done"}]}
    req = ru.from_chat(chat)
    assert [i.get("type") for i in req["input"]] == ["message", "message", "function_call", "function_call_output"]
    assert req["max_output_tokens"] == 7 and req["user"] == "tw-abc" and req["store"] is False
    assert req["tools"] == [{"type": "function", "name": "f", "parameters": {}}]
    assert req["text"] == {"format": {"type": "json_schema", "name": "s", "schema": {}}}
    r = ru.ChunkReader()
    out = []
    for ev in [{"type": "response.created", "response": {"id": "resp_1", "model": "m"}},
               {"type": "response.output_text.delta", "delta": "Hi"},
               {"type": "response.output_item.added", "item": {"type": "function_call", "id": "fc", "call_id": "c9",
                                                               "name": "f", "arguments": ""}},
               {"type": "response.function_call_arguments.delta", "item_id": "fc", "delta": "{}"},
               {"type": "response.incomplete", "response": {"status": "incomplete",
                                                            "incomplete_details": {"reason": "max_output_tokens"}}}]:
        out += r.read(ev)
    deltas = [c["choices"][0]["delta"] for c in out if c["choices"]]
    assert deltas[1] == {"content": "Hi"} and deltas[2]["tool_calls"][0]["id"] == "c9"
    assert out[-2]["choices"][0]["finish_reason"] == "length"
    assert r.read({"type": "response.failed", "response": {"error": {"code": "server_error"}}}) == [
        {"error": {"code": "server_error"}}]
