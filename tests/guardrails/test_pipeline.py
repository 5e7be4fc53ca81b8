"""Pipeline: decide, apply_redactions (table + property), judgement, timeouts, on_error, concurrency,
routes, pseudonymisation across messages."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrails.pipeline import Pipeline, Renderer, apply_redactions, decide, judge
from guardrails.policy import parse_policy
from guardrails.spans import grapheme_boundaries
from guardrails.types import Action, CallContext, Finding, Judgement, Message, Operator, Principal

from support.fakes import FakeDetector, find_word


def J(span, action=Action.REDACT, category="X", op=Operator.REDACT, score=1.0) -> Judgement:  # noqa: N802
    return Judgement(Finding("d", category, score, span, {}, 0), action, op)


def render_tag(j: Judgement, original: str) -> str:
    return f"<{j.finding.category}>"


# ----------------------------------------------------------------------------------------- decide


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        ([], Action.ALLOW),
        ([Action.ALLOW], Action.ALLOW),
        ([Action.FLAG, Action.ALLOW], Action.FLAG),
        ([Action.REDACT, Action.FLAG], Action.REDACT),
        ([Action.ROUTE, Action.REDACT], Action.ROUTE),
        ([Action.FLAG, Action.BLOCK, Action.REDACT], Action.BLOCK),
    ],
)
def test_decide_most_severe_wins(actions, expected) -> None:
    assert decide([J((0, 1), a) for a in actions]) is expected


def test_action_order_is_the_documented_one() -> None:
    assert Action.ALLOW < Action.FLAG < Action.REDACT < Action.ROUTE < Action.BLOCK


# ------------------------------------------------------------------------------- apply_redactions


@pytest.mark.parametrize(
    ("text", "spans", "expected"),
    [
        ("call Bob now", [(5, 8)], "call <X> now"),
        ("abcdef", [(0, 6)], "<X>"),
        ("abcdef", [(1, 3), (2, 4)], "a<X>ef"),  # overlapping merge
        ("abcdef", [(1, 3), (3, 5)], "a<X>f"),  # adjacent merge
        ("abcdef", [(4, 6), (0, 1)], "<X>bcd<X>"),  # order independent
        ("abcdef", [(2, 2)], "abcdef"),  # empty span ignored
        ("abc", [(1, 99)], "a<X>"),  # clamped
        ("hi 👍🏽 there", [(3, 4)], "hi <X> there"),  # half an emoji (skin tone) widened
        ("e\u0301tude x", [(0, 1)], "<X>tude x"),  # combining acute stays with its base
        ("👨‍👩‍👧 fam", [(2, 3)], "<X> fam"),  # inside a ZWJ family
        ("名前は田中です", [(3, 5)], "名前は<X>です"),
    ],
)
def test_apply_redactions_table(text, spans, expected) -> None:
    assert apply_redactions(text, [J(s) for s in spans], render_tag) == expected


def test_only_redact_judgements_rewrite() -> None:
    text = "a secret b"
    js = [J((2, 8), Action.FLAG), J((2, 8), Action.BLOCK), J((2, 8), Action.ROUTE)]
    assert apply_redactions(text, js, render_tag) == text


def test_merged_span_takes_most_protective_operator() -> None:
    vault_render = Renderer(b"k", None)
    js = [J((0, 5), category="PERSON", op=Operator.PSEUDONYMISE), J((3, 9), category="US_SSN", op=Operator.REDACT)]
    assert apply_redactions("abcdefghij", js, vault_render) == "<US_SSN>j"


def test_renderer_operators() -> None:
    r = Renderer(b"key", None)
    assert r(J((0, 1), category="EMAIL", op=Operator.REDACT), "a@b.c") == "<EMAIL>"
    masked = r(J((0, 1), category="CARD", op=Operator.MASK), "4111111111111111")
    assert masked == "************1111"
    h1 = r(J((0, 1), category="EMAIL", op=Operator.HASH), "a@b.c")
    h2 = Renderer(b"other", None)(J((0, 1), category="EMAIL", op=Operator.HASH), "a@b.c")
    assert h1.startswith("<EMAIL:") and h1 != h2  # keyed, never a bare hash
    import hashlib

    assert hashlib.sha256(b"a@b.c").hexdigest()[:16] not in h1


GRAPHEMES = st.sampled_from(["a", "b", " ", "é", "e\u0301", "👍🏽", "👨‍👩‍👧", "名", "\n", "ß", "🇫🇷", "\r\n", "ﬁ"])


@settings(max_examples=300, deadline=None)
@given(st.lists(GRAPHEMES, min_size=1, max_size=30), st.data())
def test_property_spans_never_corrupt_surrounding_text(units, data) -> None:
    text = "".join(units)
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    out = apply_redactions(text, [J((start, end))], render_tag)
    if end == start:
        assert out == text
        return
    bounds = set(grapheme_boundaries(text))
    i = out.index("<X>")
    prefix, suffix = out[:i], out[i + 3:]
    # what is kept is an exact prefix and suffix of the original, cut on grapheme boundaries,
    # and the redaction covers at least the requested span
    assert text.startswith(prefix) and text.endswith(suffix)
    assert len(prefix) in bounds and (len(text) - len(suffix)) in bounds
    assert len(prefix) <= start and len(text) - len(suffix) >= end


@settings(max_examples=200, deadline=None)
@given(st.lists(GRAPHEMES, min_size=0, max_size=20), st.lists(GRAPHEMES, min_size=1, max_size=8),
       st.lists(GRAPHEMES, min_size=0, max_size=20))
def test_property_exact_grapheme_span_replaced_exactly(a, b, c) -> None:
    pre, mid, post = "".join(a), "".join(b), "".join(c)
    text = pre + mid + post
    out = apply_redactions(text, [J((len(pre), len(pre) + len(mid)))], render_tag)
    if grapheme_boundaries(text) == sorted(set(grapheme_boundaries(text))) and \
            len(pre) in grapheme_boundaries(text) and len(pre + mid) in grapheme_boundaries(text):
        assert out == pre + "<X>" + post


# --------------------------------------------------------------------------------------- judging

POLICY = """
policy: {id: test}
detectors:
  - name: a
    type: fake
    stages: [input, output]
    timeout_ms: 200
    rules:
      "*": {action: flag, threshold: 0.5}
      secret: {action: block, threshold: 0.5}
      PERSON: {action: pseudonymise, threshold: 0.5}
      EMAIL: {action: redact, threshold: 0.5}
      CARD: {action: mask, keep_last: 4}
  - name: b
    type: fake
    stages: [input]
    timeout_ms: 200
    on_error: {on_error}
upstreams:
  - {name: cloud, kind: echo}
  - {name: inhouse, kind: echo}
routes:
  - name: names-stay-home
    when: {categories: [SSN]}
    upstream: inhouse
"""


def make(a, b=None, on_error="block") -> Pipeline:
    policy = parse_policy(POLICY.replace("{on_error}", on_error))
    return Pipeline(policy, {"a": a, "b": b or FakeDetector("b")}, hash_key=b"k")


def test_judge_thresholds_and_default_rule() -> None:
    policy = parse_policy(POLICY.replace("{on_error}", "block"))
    spec = policy.detectors[0]
    js = judge(spec, "input", [Finding("a", "secret", 0.4), Finding("a", "secret", 0.6), Finding("a", "other", 0.7)])
    assert [j.action for j in js] == [Action.ALLOW, Action.BLOCK, Action.FLAG]
    # pseudonymise cannot be restored on the way out: it becomes plain redaction there
    (out,) = judge(spec, "output", [Finding("a", "PERSON", 0.9, (0, 1))])
    assert out.operator is Operator.REDACT


async def test_check_redacts_pseudonymises_and_masks() -> None:
    def fn(t: str) -> list[Finding]:
        return find_word("a", "Alice", "PERSON")(t) + find_word("a", "a@x.io", "EMAIL")(t) + find_word("a", "4111111111111111", "CARD")(t)

    p = make(FakeDetector("a", fn))
    ctx = CallContext()
    d = await p.check_input([Message.user("Alice a@x.io 4111111111111111"), Message("assistant", "hi Alice")], ctx)
    assert d.action is Action.REDACT
    assert d.texts == ("<PERSON_1> <EMAIL> ************1111", "hi <PERSON_1>")
    assert p.restore("Dear <PERSON_1>", ctx) == "Dear Alice"


async def test_block_keeps_texts_and_sets_message() -> None:
    p = make(FakeDetector("a", find_word("a", "password", "secret")))
    d = await p.check_input(["my password is x"], CallContext())
    assert d.blocked and d.blocking_categories == ("secret",)
    assert d.message == p.policy.messages.block_input


@pytest.mark.parametrize(("on_error", "expected"), [("block", Action.BLOCK), ("flag", Action.FLAG), ("allow", Action.ALLOW)])
async def test_timeout_applies_on_error(on_error, expected) -> None:
    p = make(FakeDetector("a"), FakeDetector("b", delay=5), on_error=on_error)
    d = await p.check_input(["hello"], CallContext())
    assert d.action is expected
    assert d.errors == ("b",)
    timing = {t.detector: t.status for t in d.timings}
    assert timing == {"a": "ok", "b": "timeout"}
    if expected is Action.BLOCK:
        assert d.message == p.policy.messages.detector_error


@pytest.mark.parametrize("on_error", ["block", "flag"])
async def test_crash_applies_on_error(on_error) -> None:
    p = make(FakeDetector("a"), FakeDetector("b", crash=RuntimeError("model exploded")), on_error=on_error)
    d = await p.check_input(["hello"], CallContext())
    assert d.action is Action.parse(on_error)
    (j,) = [j for j in d.judgements if j.finding.category == "detector_error"]
    assert j.finding.evidence["error"] == "RuntimeError"  # the class only: a message may quote the input


async def test_wrong_result_shape_is_an_error() -> None:
    class Bad:
        name = "b"

        async def detect(self, texts, ctx, stage="input"):
            return []

    p = make(FakeDetector("a"), Bad())  # type: ignore[arg-type]
    d = await p.check_input(["x", "y"], CallContext())
    assert d.blocked and d.errors == ("b",)


async def test_detectors_run_concurrently() -> None:
    # Each detector waits at a barrier for the other: run one after the other, they would time out.
    barrier = asyncio.Barrier(2)
    p = make(FakeDetector("a", barrier=barrier), FakeDetector("b", barrier=barrier))
    d = await p.check_input(["x"], CallContext())
    assert d.action is Action.ALLOW and d.errors == ()


async def test_all_messages_in_one_batch() -> None:
    a = FakeDetector("a")
    p = make(a)
    await p.check_input(["one", "two", "three"], CallContext())
    assert a.calls == [["one", "two", "three"]]


async def test_route_sends_sensitive_input_unredacted() -> None:
    p = make(FakeDetector("a", find_word("a", "123-45-6789", "SSN")))
    policy = p.policy.model_copy()
    d = await p.check_input(["ssn 123-45-6789"], CallContext())
    assert policy.routes[0].name == "names-stay-home"
    # SSN has no explicit rule: '*' flags it, the route turns the flag into ROUTE
    assert d.action is Action.ROUTE and d.upstream == "inhouse"
    assert d.texts == ("ssn 123-45-6789",)
    assert d.route_rule and "SSN" in d.route_rule


async def test_same_value_same_placeholder_and_isolation_between_contexts() -> None:
    p = make(FakeDetector("a", lambda t: find_word("a", "Alice", "PERSON")(t) + find_word("a", "Bob", "PERSON")(t)))
    c1, c2 = CallContext(), CallContext()
    d1 = await p.check_input(["Bob met Alice", "Alice again"], c1)
    d2 = await p.check_input(["Alice"], c2)
    assert d1.texts == ("<PERSON_1> met <PERSON_2>", "<PERSON_2> again")
    assert d2.texts == ("<PERSON_1>",)
    assert p.restore("<PERSON_2>", c2) == "<PERSON_2>"  # unknown in this conversation: left alone


async def test_restore_respects_role() -> None:
    policy = parse_policy(POLICY.replace("{on_error}", "block") + "access:\n  roles:\n    local: {restore: [EMAIL]}\n")
    p = Pipeline(policy, {"a": FakeDetector("a", find_word("a", "Alice", "PERSON")), "b": FakeDetector("b")})
    ctx = CallContext(principal=Principal("u", "local"))
    await p.check_input(["Alice"], ctx)
    assert p.restore("hi <PERSON_1>", ctx) == "hi <PERSON_1>"


async def test_restore_permissions_are_compared_in_placeholder_form() -> None:
    policy = parse_policy(POLICY.replace("{on_error}", "block") + "access:\n  roles:\n    local: {restore: [email, 'pers*']}\n")
    p = Pipeline(policy, {"a": FakeDetector("a", lambda t: find_word("a", "Alice", "PERSON")(t) + find_word("a", "a@x.io", "EMAIL")(t)),
                          "b": FakeDetector("b")})
    ctx = CallContext(principal=Principal("u", "local"))
    d = await p.check_input(["Alice a@x.io"], ctx)
    assert d.texts == ("<PERSON_1> <EMAIL>",)  # EMAIL is redacted by its rule; PERSON pseudonymised
    assert p.restore("hi <PERSON_1>", ctx) == "hi Alice"


async def test_bad_spans_and_scores_from_detectors_are_clamped() -> None:
    p = make(FakeDetector("a", lambda t: [Finding("", "EMAIL", float("nan"), (-5, 999))]))
    d = await p.check_input(["abc"], CallContext())
    (j,) = d.judgements
    assert j.finding.span == (0, 3) and j.finding.score == 1.0 and j.finding.detector == "a"


async def test_a_text_over_the_limit_is_refused_before_any_detector_runs() -> None:
    seen: list[int] = []

    def record(t: str) -> list[Finding]:
        seen.append(len(t))
        return []

    p = make(FakeDetector("a", record))
    limit = p.policy.limits.max_text_chars
    d = await p.check_input(["short", "x" * (limit + 1)], CallContext(request_id="r9"))
    assert d.blocked and d.errors == ("limits",) and seen == []
    (j,) = d.judgements
    assert (j.finding.category, j.finding.message_index, j.finding.evidence) == ("text_too_long", 1, {
        "chars": limit + 1, "limit": limit})
    assert d.message == p.policy.messages.too_long
    ok = await p.check_input(["x" * limit], CallContext())
    assert not ok.blocked and seen == [limit]
