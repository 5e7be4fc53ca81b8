"""@guard / Guard: prompts in every shape, outputs, blocks (raise and refuse), streaming generators,
methods, principals, audit records, manual checks with sync twins, lifecycle, routes."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from guardrails import Blocked, Guard, guard
from guardrails.inprocess import current_principal, trustwall_principal
from guardrails.detector import DetectorType, NoOptions
from guardrails.errors import AccessDenied, TrustwallError
from guardrails.types import Action, Message, Principal

from support import decorator_kit as kit

EMAIL = "ada@example.com"
PERSON = "Ada Lovelace"
SECRET = "sk-" + "A1b2C3d4E5f6G7h8I9j0K1"


@pytest.fixture
def gr(tmp_path: Path):
    g, rec = kit.make_guard(tmp_path)
    yield g, rec
    g.close()


# --------------------------------------------------------------------------------------- prompts


def test_sync_function_sees_pseudonyms_caller_gets_values_back(gr) -> None:
    g, rec = gr
    seen: list[str] = []

    @g.guard
    def ask(prompt: str) -> str:
        seen.append(prompt)
        return f"Dear {prompt.split(': ')[1]}"

    out = ask(f"Write to: {PERSON} <{EMAIL}>")
    assert seen == ["Write to: <PERSON_1> <<EMAIL_ADDRESS_1>>"]
    assert out == f"Dear {PERSON} <{EMAIL}>"
    (r,) = rec.records
    assert (r.route, r.status, r.final_action, r.streamed, r.error) == ("decorator", 200, Action.REDACT, False, None)
    assert r.input is not None and r.output is not None and r.request_id == r.input.request_id
    assert PERSON not in r.input.text and EMAIL not in r.input.text  # the audit gets redacted text only
    assert r.upstream_ms is not None and r.total_ms is not None and r.total_ms >= r.upstream_ms


async def test_async_function_with_messages_dicts_does_not_mutate_callers_list(gr) -> None:
    g, _ = gr
    seen: list[Any] = []

    @g.guard
    async def chat(messages: list[dict[str, Any]], temperature: float = 0.0) -> str:
        seen.append(messages)
        await asyncio.sleep(0)
        return "Noted: " + messages[-1]["content"]

    msgs = [{"role": "system", "content": "be brief"}, {"role": "user", "content": f"I am {PERSON}"}]
    out = await chat(msgs, temperature=0.2)
    assert out == f"Noted: I am {PERSON}"
    assert seen[0] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "I am <PERSON_1>"}]
    assert msgs[1]["content"] == f"I am {PERSON}"  # the caller's list is untouched
    assert seen[0][0] is msgs[0]  # unchanged messages are shared, not copied


class PydMsg(BaseModel):
    role: str
    content: Any


class PlainMsg:
    def __init__(self, role: str, content: str):
        self.role, self.content = role, content


@pytest.mark.parametrize("make", [
    lambda c: Message("user", c),
    lambda c: PydMsg(role="user", content=c),
    lambda c: PlainMsg("user", c),
    lambda c: {"role": "user", "content": [{"type": "text", "text": c},
                                            {"type": "image_url", "image_url": {"url": "data:,x"}}]},
    lambda c: PydMsg(role="user", content=[{"type": "text", "text": c}]),
], ids=["dataclass", "pydantic", "plain-object", "content-parts", "pydantic-parts"])
def test_messages_as_objects_and_content_parts(gr, make) -> None:
    g, _ = gr
    seen: list[Any] = []

    @g.guard
    def chat(messages: list[Any]) -> str:
        seen.append(messages)
        m = messages[0]
        content = m["content"] if isinstance(m, dict) else m.content
        text = content if isinstance(content, str) else (content[0]["text"])
        return "echo " + text

    original = make(f"mail {EMAIL}")
    assert chat([original]) == f"echo mail {EMAIL}"
    sent = seen[0][0]
    assert type(sent) is type(original)
    content = sent["content"] if isinstance(sent, dict) else sent.content
    text = content if isinstance(content, str) else content[0]["text"]
    assert text == "mail <EMAIL_ADDRESS_1>"
    if isinstance(original, dict):
        assert content[1]["type"] == "image_url" and original["content"][0]["text"] == f"mail {EMAIL}"


def test_which_argument_is_the_prompt(gr) -> None:
    g, _ = gr
    calls: list[tuple[Any, ...]] = []

    @g.guard
    def first_positional(text: str, system: str = "sys") -> str:
        calls.append((text, system))
        return text

    @g.guard(input_arg="question")
    def named(context: str, question: str) -> str:
        calls.append((context, question))
        return question

    @g.guard(input_arg=1)
    def by_index(context: str, question: str) -> str:
        calls.append((context, question))
        return question

    @g.guard
    def via_kwargs(**kwargs: Any) -> str:
        calls.append(tuple(sorted(kwargs.items())))
        return kwargs["messages"][0]["content"]

    assert first_positional(f"x {EMAIL}", system=EMAIL) == f"x {EMAIL}"
    assert calls[-1] == ("x <EMAIL_ADDRESS_1>", EMAIL)  # only the prompt is checked
    assert named(EMAIL, question=f"who is {PERSON}?") == f"who is {PERSON}?"
    assert calls[-1] == (EMAIL, "who is <PERSON_1>?")
    assert by_index(EMAIL, f"who is {PERSON}?") == f"who is {PERSON}?"
    assert calls[-1] == (EMAIL, "who is <PERSON_1>?")
    assert via_kwargs(messages=[{"role": "user", "content": EMAIL}], model="m") == EMAIL
    assert calls[-1] == (("messages", [{"role": "user", "content": "<EMAIL_ADDRESS_1>"}]), ("model", "m"))
    with pytest.raises(TypeError):
        g.guard(input_arg="nope")(lambda prompt: prompt)


def test_methods_static_and_class_methods(gr) -> None:
    g, _ = gr

    class Bot:
        greeting = "Hi"

        def __init__(self) -> None:
            self.seen: list[str] = []

        @g.guard
        def reply(self, user_text: str) -> str:
            self.seen.append(user_text)
            return f"{self.greeting} {user_text}"

        @staticmethod
        @g.guard
        def shout(prompt: str) -> str:
            return prompt.upper()

        @classmethod
        @g.guard
        def tag(cls, text: str) -> str:
            return f"{cls.greeting}:{text}"

    bot = Bot()
    assert bot.reply(PERSON) == f"Hi {PERSON}"
    assert bot.seen == ["<PERSON_1>"]
    assert Bot.shout(f"to {EMAIL}") == f"TO {EMAIL}"  # <EMAIL_ADDRESS_1> survives upper-casing
    assert Bot.tag(EMAIL) == f"Hi:{EMAIL}"
    assert Bot.reply.__name__ == "reply" and Bot.reply.__trustwall_guard__ is g


async def test_async_method(gr) -> None:
    g, _ = gr

    class Client:
        @g.guard
        async def complete(self, prompt: str) -> str:
            return "ok " + prompt

    assert await Client().complete(PERSON) == f"ok {PERSON}"


# --------------------------------------------------------------------------------------- outputs


def test_output_reader_returns_the_checked_text(gr) -> None:
    g, _ = gr

    @g.guard(output=lambda r: r["text"])
    def call(prompt: str) -> dict[str, str]:
        return {"text": f"Hello {prompt}, your SSN is 123-45-6789", "raw": "..."}

    assert call(PERSON) == f"Hello {PERSON}, your SSN is <US_SSN>"


def test_output_adapter_keeps_the_result_type(gr) -> None:
    g, _ = gr

    @dataclasses.dataclass
    class Reply:
        text: str
        tokens: int

    class ReplyAdapter:
        def read(self, result: Reply) -> list[str]:
            return [result.text]

        def write(self, result: Reply, texts, decision) -> Reply:  # noqa: ANN001
            return dataclasses.replace(result, text=texts[0])

        def refusal(self, message: str, decision, result) -> Reply:  # noqa: ANN001
            return Reply(message, 0)

    @g.guard(output=ReplyAdapter(), on_block="refuse")
    def call(prompt: str) -> Reply:
        return Reply(f"re: {prompt}", 7)

    assert call(EMAIL) == Reply(f"re: {EMAIL}", 7)
    assert call("you idiot") == Reply("The response was withheld by the content policy.", 0)


def test_non_string_result_without_reader_is_a_clear_error(gr) -> None:
    g, rec = gr

    @g.guard
    def call(prompt: str) -> int:
        return 42

    with pytest.raises(TypeError, match="output="):
        call("hi")
    assert rec.records[-1].status == 502 and rec.records[-1].error == "model_error:TypeError"


# ------------------------------------------------------------------------------------------ blocks


def test_blocked_input_raises_and_never_calls_the_function(gr) -> None:
    g, rec = gr
    called: list[str] = []

    @g.guard
    def ask(prompt: str) -> str:
        called.append(prompt)
        return prompt

    with pytest.raises(Blocked) as ei:
        ask(f"use key {SECRET}")
    assert called == []
    err = ei.value
    assert err.categories == ("api_key",)
    assert err.decision.stage == "input" and err.decision.message == "Secrets may not be sent to a model."
    assert err.request_id and err.request_id == rec.records[-1].request_id
    assert SECRET not in str(err)
    r = rec.records[-1]
    assert (r.status, r.error, r.final_action, r.output) == (400, "content_policy_violation", Action.BLOCK, None)


@pytest.mark.parametrize(("reply", "category"), [("You idiot.", "toxicity"), (kit.PASSAGE + ", indeed.", "copyright")])
async def test_blocked_output_raise_and_refuse(gr, reply: str, category: str) -> None:
    g, rec = gr

    @g.guard
    async def strict(prompt: str) -> str:
        return reply

    @g.guard(on_block="refuse")
    def polite(prompt: str) -> str:
        return reply

    with pytest.raises(Blocked) as ei:
        await strict("hello")
    assert ei.value.categories == (category,) and ei.value.decision.stage == "output"
    assert polite("hello") == "The response was withheld by the content policy."
    assert [r.final_action for r in rec.records] == [Action.BLOCK, Action.BLOCK]
    assert [r.status for r in rec.records] == [200, 200]  # as the proxy: an answer, refused


def test_guard_level_refuse_and_input_refusal(tmp_path: Path) -> None:
    g, rec = kit.make_guard(tmp_path, on_block="refuse")
    with g:
        @g.guard
        def ask(prompt: str) -> str:
            raise AssertionError("not called")

        assert ask(SECRET) == "Secrets may not be sent to a model."
        assert rec.records[-1].final_action is Action.BLOCK


def test_function_error_is_audited_and_propagates(gr) -> None:
    g, rec = gr

    @g.guard
    def broken(prompt: str) -> str:
        raise ConnectionError("upstream down")

    with pytest.raises(ConnectionError):
        broken(EMAIL)
    r = rec.records[-1]
    assert (r.status, r.error, r.output) == (502, "model_error:ConnectionError", None)


# --------------------------------------------------------------------------------------- principals


def test_principal_from_context_variable_and_restore_rights(gr) -> None:
    g, rec = gr

    @g.guard
    def echo(prompt: str) -> str:
        return prompt

    with trustwall_principal(Principal("ana", "analyst")):
        assert current_principal() == Principal("ana", "analyst")
        out = echo(f"{PERSON} {EMAIL}")
    assert current_principal() is None
    assert out == f"<PERSON_1> {EMAIL}"  # the analyst role may see e-mail addresses only
    assert rec.records[-1].principal == Principal("ana", "analyst")
    assert echo(PERSON) == PERSON
    assert rec.records[-1].principal.id == "anonymous"


def test_principal_argument_beats_context_beats_decorator(gr) -> None:
    g, rec = gr

    @g.guard(principal_arg="user", principal=Principal("svc", "local"))
    def ask(prompt: str, user: Principal | None = None) -> str:
        return prompt

    ask("x")
    assert rec.records[-1].principal.id == "svc"
    with trustwall_principal("bob", role="user"):
        ask("x")
        assert rec.records[-1].principal == Principal("bob", "user")
        ask("x", user=Principal("carol", "analyst"))
        assert rec.records[-1].principal.id == "carol"


async def test_context_variable_is_per_task(gr) -> None:
    g, rec = gr

    @g.guard
    async def ask(prompt: str) -> str:
        await asyncio.sleep(0.01)
        return prompt

    async def as_user(name: str) -> None:
        with trustwall_principal(name, role="user"):
            await ask(name)

    await asyncio.gather(*(as_user(f"u{i}") for i in range(10)))
    assert sorted(r.principal.id for r in rec.records) == sorted(f"u{i}" for i in range(10))
    assert all(r.input is not None and r.input.text == r.principal.id for r in rec.records)


def test_access_rules_apply_in_process(gr) -> None:
    g, rec = gr

    @g.guard(model="big-model")
    def big(prompt: str) -> str:
        return prompt

    @g.guard(model="small-1")
    def small(prompt: str) -> str:
        return prompt

    with trustwall_principal("eve", role="limited"):
        with pytest.raises(AccessDenied) as ei:
            big("hi")
        assert ei.value.status == 403
        r = rec.records[-1]
        assert (r.status, r.error, r.final_action, r.input) == (403, "model_not_allowed", Action.BLOCK, None)
        assert small(PERSON) == "<PERSON_1>"  # the limited role restores nothing
    with trustwall_principal("mallory", role="no-such-role"):
        with pytest.raises(AccessDenied):
            small("hi")


# ----------------------------------------------------------------------------------------- streaming


def _chunks(text: str, size: int) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)]


def test_sync_generator_restores_pseudonyms_split_across_chunks(gr) -> None:
    g, rec = gr
    seen: list[str] = []

    @g.guard
    def stream(prompt: str):
        seen.append(prompt)
        reply = f"Hello {prompt}! " + "Nice to meet you. " * 8
        yield from _chunks(reply, 3)  # '<PERSON_1>' arrives in pieces

    out = list(stream(PERSON))
    assert seen == ["<PERSON_1>"]
    assert "".join(out) == f"Hello {PERSON}! " + "Nice to meet you. " * 8
    assert all("<" not in c and ">" not in c for c in out)
    r = rec.records[-1]
    assert r.streamed and r.status == 200 and r.output is not None


async def test_async_generator_never_yields_unchecked_text(gr) -> None:
    g, rec = gr

    @g.guard
    async def stream(prompt: str):
        for c in _chunks("All fine so far. And then: you are an id" + "iot, truly. More text after.", 4):
            yield c

    got: list[str] = []
    with pytest.raises(Blocked) as ei:
        async for c in stream("hi"):
            got.append(c)
    assert ei.value.categories == ("toxicity",)
    assert "idiot" not in "".join(got) and "id" not in "".join(got).split("then:")[-1]
    r = rec.records[-1]
    assert r.streamed and r.final_action is Action.BLOCK and r.status == 200


def test_generator_refuse_mode_yields_the_refusal_last(gr) -> None:
    g, _ = gr

    @g.guard(on_block="refuse")
    def stream(prompt: str):
        yield "A sentence that is long enough to be released on its own. "
        yield "Then: moron."

    out = list(stream("hi"))
    assert out[-1] == "The response was withheld by the content policy."
    assert "moron" not in "".join(out)


def test_generator_output_redaction_and_input_block(gr) -> None:
    g, _ = gr

    @g.guard
    def stream(prompt: str):
        yield "SSN 123-"
        yield "45-6789 done."

    assert "".join(stream("x")) == "SSN <US_SSN> done."
    with pytest.raises(Blocked):
        next(stream(SECRET))


def test_generator_closed_early_is_audited(gr) -> None:
    g, rec = gr

    @g.guard
    def stream(prompt: str):
        for i in range(1000):
            yield f"Sentence number {i} is here. "

    it = stream("x")
    first = next(it)
    assert first.startswith("Sentence number 0")
    it.close()
    r = rec.records[-1]
    assert (r.status, r.error, r.streamed) == (499, "client_disconnected", True)


# ------------------------------------------------------------------------------------- manual checks


async def test_manual_checks_async_then_sync_twins_inside_a_running_loop(gr) -> None:
    g, rec = gr
    res = await g.check_input([{"role": "user", "content": f"I am {PERSON}"}])
    assert res.prompt == [{"role": "user", "content": "I am <PERSON_1>"}] and not res.blocked
    out = await g.check_output("Hello <PERSON_1>", res.ctx)
    assert out.text == f"Hello {PERSON}" and out.decision.stage == "output"
    assert len(rec.records) == 1 and rec.records[0].input is res.decision
    # sync twins called from a thread whose loop is running (this test's)
    res2 = g.check_input_sync(f"mail {EMAIL}")
    assert res2.prompt == "mail <EMAIL_ADDRESS_1>"
    assert g.check_output_sync("ok <EMAIL_ADDRESS_1>", res2.ctx).text == f"ok {EMAIL}"
    with pytest.raises(Blocked):
        g.check_input_sync(SECRET)
    blocked = await g.check_output("idiot", raise_on_block=False)
    assert blocked.blocked and blocked.text == "The response was withheld by the content policy."
    assert [r.final_action for r in rec.records] == [Action.REDACT, Action.REDACT, Action.BLOCK, Action.BLOCK]


def test_sync_twins_without_any_loop_and_from_plain_threads(gr) -> None:
    g, _ = gr
    results: dict[int, str] = {}

    def work(i: int) -> None:
        res = g.check_input_sync(f"user{i}@example.com")
        results[i] = g.check_output_sync(f"re {res.text}", res.ctx).text

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {i: f"re user{i}@example.com" for i in range(8)}


# ------------------------------------------------------------------------------------------ lifecycle


def test_detectors_are_built_once_and_shared(tmp_path: Path) -> None:
    built: list[str] = []

    def factory(spec, options, build):  # noqa: ANN001, ANN202
        built.append(spec.name)
        return kit.FakeCopyright(spec.name)

    reg = kit.registry()
    reg.register(DetectorType("counting", NoOptions, factory))
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(kit.POLICY.replace("type: fake_copyright", "type: counting"))
    g = Guard.from_policy(policy_file, settings=kit.settings(tmp_path), registry=reg, audit=False)
    assert built == ["copyright"]

    @g.guard
    def a(prompt: str) -> str:
        return prompt

    @g.guard
    async def b(prompt: str) -> str:
        return prompt

    assert a("x") == "x" and asyncio.run(b("y")) == "y" and a("z") == "z"
    assert built == ["copyright"] and g.policy.id == "decorator-test"
    g.close()


def test_module_level_guard_builds_lazily_on_first_call(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    policy_file = tmp_path / "kw.yaml"
    policy_file.write_text(
        "policy: {id: kw}\n"
        "detectors:\n"
        "  - {name: pii, type: keywords, stages: [input], options: {terms: {PERSON: [Ada Lovelace]}},\n"
        "     rules: {'*': {action: pseudonymise}}}\n")
    monkeypatch.setenv("TRUSTWALL_DATA_DIR", str(tmp_path / "data"))

    @guard(policy=policy_file, audit=False)
    def ask(prompt: str) -> str:
        return "<" + prompt + ">"

    g = ask.__trustwall_guard__
    assert g._core.runtime is None  # nothing loaded at decoration time
    assert ask(f"hi {PERSON}") == f"<hi {PERSON}>"
    assert g.runtime.policy.id == "kw"
    g.close()


def test_close_closes_the_runtime_and_refuses_further_calls(tmp_path: Path) -> None:
    g, rec = kit.make_guard(tmp_path)

    @g.guard
    def ask(prompt: str) -> str:
        return prompt

    assert ask("x") == "x"
    g.close()
    assert rec.closed
    with pytest.raises(TrustwallError, match="closed"):
        ask("x")
    g.close()  # idempotent


def test_importing_guardrails_is_cheap() -> None:
    code = ("import sys; from guardrails import guard, Guard, Blocked; import guardrails.inprocess; "
            "heavy = [m for m in ('torch', 'spacy', 'presidio_analyzer', 'onnxruntime', 'transformers', 'openai', "
            "'guardrails.runtime', 'guardrails.pipeline', 'detectors.registry') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------------------------------------- routes

ROUTED = kit.POLICY + """
upstreams:
  - {name: cloud, kind: echo}
  - {name: inhouse, kind: echo}
default_upstream: cloud
routes:
  - {name: ssn-stays-home, when: {categories: [US_SSN]}, upstream: inhouse}
"""


def test_routed_requests_go_to_the_route_function_or_are_refused(tmp_path: Path) -> None:
    g, rec = kit.make_guard(tmp_path, ROUTED)
    inhouse: list[str] = []

    def local_model(prompt: str) -> str:
        inhouse.append(prompt)
        return "done"

    @g.guard(routes={"inhouse": local_model})
    def ask(prompt: str) -> str:
        raise AssertionError("the cloud model must not see an SSN")

    @g.guard
    def no_route(prompt: str) -> str:
        raise AssertionError("not called")

    with g:
        assert ask("SSN 123-45-6789 please") == "done"
        assert inhouse == ["SSN 123-45-6789 please"]
        assert rec.records[-1].input is not None and rec.records[-1].input.upstream == "inhouse"
        with pytest.raises(Blocked, match="inhouse"):
            no_route("SSN 123-45-6789")
        assert (rec.records[-1].status, rec.records[-1].error) == (502, "route_unavailable")


def test_prompt_reading_fails_closed(gr) -> None:
    g, rec = gr
    calls: list[Any] = []

    @g.guard
    def chat(messages: Any) -> str:
        calls.append(messages)
        return "ok"

    for bad in ([("user", EMAIL)], [{"role": "user", "text": EMAIL}], None, 42, b"bytes"):
        with pytest.raises(TypeError):
            chat(bad)
    assert calls == [] and rec.records == []
    # one message object (pydantic models are iterable: must not be read as a list of fields)
    assert chat(PydMsg(role="user", content=EMAIL)) == "ok"
    assert calls[-1] == PydMsg(role="user", content="<EMAIL_ADDRESS_1>")
    # a part with text but an unusual type is still checked (as the proxy does)
    chat([{"role": "user", "content": [{"type": "input_text", "text": EMAIL}]}])
    assert calls[-1][0]["content"][0]["text"] == "<EMAIL_ADDRESS_1>"


FLAGGING = kit.POLICY.replace("""access:
  anonymous_role: local
  roles:""", """  - name: topics
    type: keywords
    stages: [input]
    options: {terms: {health: [diagnosis]}}
    rules: {"*": {action: flag}}
access:
  anonymous_role: local
  roles:
    restricted: {upstreams: {echo: []}}""")


def test_data_categories_per_upstream_apply_in_process(tmp_path: Path) -> None:
    g, rec = kit.make_guard(tmp_path, FLAGGING)

    @g.guard
    def ask(prompt: str) -> str:
        return "ok"

    with g:
        assert ask("my diagnosis") == "ok"  # the local role may send anything anywhere
        with trustwall_principal("rita", role="restricted"):
            assert ask(f"hello {PERSON}") == "ok"  # pseudonymised: nothing sensitive passes
            with pytest.raises(AccessDenied) as ei:
                ask("my diagnosis")  # flagged 'health' would reach upstream 'echo' as it is
        assert ei.value.code == "category_not_allowed"
        r = rec.records[-1]
        assert (r.status, r.error, r.final_action) == (403, "category_not_allowed", Action.BLOCK)


async def test_async_generator_closed_early_is_audited(gr) -> None:
    g, rec = gr

    @g.guard
    async def stream(prompt: str):
        for i in range(1000):
            yield f"Sentence number {i} is here. "

    agen = stream("x")
    assert (await agen.__anext__()).startswith("Sentence number 0")
    await agen.aclose()
    r = rec.records[-1]
    assert (r.status, r.error, r.streamed) == (499, "client_disconnected", True)


def test_lazy_guard_from_policy_loads_on_first_use(tmp_path: Path) -> None:
    policy_file = tmp_path / "p.yaml"
    policy_file.write_text(kit.POLICY)
    g = Guard.from_policy(policy_file, settings=kit.settings(tmp_path), registry=kit.registry(), audit=False,
                          lazy=True)
    assert g._core.runtime is None and "not loaded" in repr(g)

    @g.guard
    def ask(prompt: str) -> str:
        return prompt

    assert ask(PERSON) == PERSON and g._core.runtime is not None
    g.close()
