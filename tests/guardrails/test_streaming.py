"""Guarded streaming: nothing unchecked is released, at any chunking."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors.keywords import KeywordDetector, KeywordOptions
from guardrails.pipeline import Pipeline
from guardrails.policy import parse_policy
from guardrails.streaming import OutputStream
from guardrails.types import Action, CallContext

POLICY = """
policy: {id: stream-test}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    rules:
      toxic: {action: block}
      email: {action: redact}
      PERSON: {action: pseudonymise}
streaming: {window_chars: 64, min_chars: 16, hold_chars: 24, context_chars: 32}
"""


def pipeline() -> Pipeline:
    det = KeywordDetector("kw", KeywordOptions(terms={"toxic": ["total idiot"], "PERSON": ["Jane Roe"]},
                                               patterns={"email": [r"[\w.]+@example\.com"]}))
    return Pipeline(parse_policy(POLICY), {"kw": det}, hash_key=b"k")


async def run_stream(p: Pipeline, ctx: CallContext, text: str, sizes: list[int]) -> tuple[str, OutputStream, list[str]]:
    s = OutputStream(p, ctx)
    out, released, i, k = "", [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        piece = await s.feed(text[i:i + n])
        released.append(piece)
        out += piece
        i += n
        k += 1
        if s.blocked:
            break
    tail = await s.finish()
    released.append(tail)
    return out + tail, s, released


SAFE = "The weather is fine today. We will meet at noon near the station. " * 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6))
async def test_toxic_phrase_split_anywhere_never_released(sizes) -> None:
    p = pipeline()
    text = SAFE + "You are a total idiot and everyone knows it. " + SAFE
    out, s, _ = await run_stream(p, CallContext(), text, sizes)
    assert s.blocked
    assert "idiot" not in out and "total" not in out
    assert text.startswith(out)  # what was released is an untouched prefix
    assert s.decision.action is Action.BLOCK


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=6))
async def test_redaction_and_restoration_at_any_chunking(sizes) -> None:
    p = pipeline()
    ctx = CallContext()
    dec = await p.check_input(["I am Jane Roe"], ctx)
    assert dec.texts == ("I am <PERSON_1>",)
    model_answer = SAFE + "Hello <PERSON_1>, write to bob.smith@example.com today. " + SAFE + "Bye <PERSON_1>."
    out, s, _ = await run_stream(p, ctx, model_answer, sizes)
    assert not s.blocked
    expected = SAFE + "Hello Jane Roe, write to <email> today. " + SAFE + "Bye Jane Roe."
    assert out == expected
    assert "bob.smith" not in s.released_text and "Jane Roe" not in s.released_text  # audit form


async def test_clean_stream_passes_unchanged_and_is_checked_in_windows() -> None:
    p = pipeline()
    out, s, released = await run_stream(p, CallContext(), SAFE * 3, [5])
    assert out == SAFE * 3
    assert s.checks >= 3  # windows, not one check at the end
    assert sum(1 for r in released if r) >= 3  # released progressively


async def test_finish_after_block_releases_nothing() -> None:
    p = pipeline()
    s = OutputStream(p, CallContext())
    assert await s.feed("total idiot. " * 10) == ""
    assert s.blocked
    assert await s.feed("more text. " * 10) == ""
    assert await s.finish() == ""
    assert s.decision.message == p.policy.messages.block_output


@pytest.mark.parametrize("split", range(1, len("Bye <PERSON_1>.")))
async def test_placeholder_split_across_chunks(split) -> None:
    p = pipeline()
    ctx = CallContext()
    await p.check_input(["Jane Roe"], ctx)
    text = "Bye <PERSON_1>."
    s = OutputStream(p, ctx)
    out = await s.feed(text[:split]) + await s.feed(text[split:]) + await s.finish()
    assert out == "Bye Jane Roe."


async def test_citations_are_appended_plain_and_streamed() -> None:
    from guardrails.types import Finding

    class Citer:
        name = "kw"

        async def detect(self, texts, ctx, stage="input"):
            return [[Finding("kw", "cite", 1.0, (i, i + 6), {"citation": "Book (b1)"})
                     for i in [t.find("quoted")] if i >= 0] for t in texts]

    policy = parse_policy(POLICY.replace("toxic: {action: block}", "cite: {action: flag}"))
    p = Pipeline(policy, {"kw": Citer()}, hash_key=b"k")
    text = "Here is the quoted passage. " * 4
    d = await p.check_output(text, CallContext())
    assert d.text == text + "\n\nSources: Book (b1)"
    out, s, _ = await run_stream(p, CallContext(), text, [7])
    assert out == text + "\n\nSources: Book (b1)"
    assert (await p.check_output("nothing here", CallContext())).text == "nothing here"


LONG_TOKEN = "github_pat_" + "A1b2C3d4E5" * 8 + "zz"  # 93 characters: longer than hold_chars


@pytest.mark.parametrize("action", ["redact", "block"])
@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.integers(1, 40), min_size=1, max_size=6), prefix=st.integers(0, 300))
async def test_span_longer_than_the_held_tail_is_never_released_in_part(action, sizes, prefix) -> None:
    policy = parse_policy(POLICY.replace("email: {action: redact}", f"email: {{action: {action}}}"))
    det = KeywordDetector("kw", KeywordOptions(patterns={"email": [r"github_pat_\w{82}"]}))
    p = Pipeline(policy, {"kw": det}, hash_key=b"k")
    text = ("word " * 80)[:prefix] + "token " + LONG_TOKEN + " and then more words. " + SAFE
    out, s, _ = await run_stream(p, CallContext(), text, sizes)
    assert "github_pat" not in out and "A1b2C3d4E5" not in out
    if action == "redact":
        assert "<email>" in out and not s.blocked
    else:
        assert s.blocked
