"""PII detector: entities, operators end to end, pseudonymise/restore, concurrency, allow lists, custom
recognisers from YAML, bad definitions, the shared spaCy parse, and no network during load and analyse."""

from __future__ import annotations

import asyncio
import socket
import textwrap
from contextlib import contextmanager
from pathlib import Path

import pytest

from detectors.nlp import DEFAULT_MODEL, get_nlp, parse
from detectors.pii import PiiOptions, iban_ok, luhn_ok, mod97_ok
from detectors.registry import builtin_registry
from guardrails.detector import BuildContext, Resources
from guardrails.errors import Blocked, DetectorError, PolicyError
from guardrails.pipeline import Pipeline
from guardrails.policy import parse_policy
from guardrails.runtime import build_detectors
from guardrails.settings import Settings
from guardrails.types import CallContext, Principal

from support.fakes import round_trip

pytestmark = pytest.mark.slow


class NetworkAttempt(AssertionError):
    pass


@contextmanager
def no_network():
    """Every way out of the process raises (and is recorded)."""
    attempts: list[str] = []

    def deny(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise NetworkAttempt(f"network access attempted: {args[:2]!r}")

    mp = pytest.MonkeyPatch()
    try:
        mp.setattr(socket.socket, "connect", deny)
        mp.setattr(socket.socket, "connect_ex", deny)
        mp.setattr(socket, "getaddrinfo", deny)
        mp.setattr(socket, "create_connection", deny)
        yield attempts
    finally:
        mp.undo()


POLICY = """
policy: {id: pii-test}
detectors:
  - name: pii
    type: pii
    stages: [input, output]
    timeout_ms: 300000  # the concurrency test queues 200 requests on a 2-core machine
    options:
      allow_list: ["Trustwall Cloud"]
      allow_patterns: ['[a-z0-9.]+@example\\.com']
      recognizers:
        - name: employee_id
          entity: EMPLOYEE_ID
          patterns: [{regex: 'EMP-\\d{6}', score: 0.4}]
          context: [employee, badge]
        - name: loyalty_card
          entity: LOYALTY_CARD
          patterns: [{regex: '\\b\\d{4}-\\d{4}-\\d{4}-\\d{4}\\b', score: 0.6}]
          checksum: luhn
        - name: project_names
          entity: PROJECT
          deny_list: [Bluebird, Project Nightjar]
    rules:
      "*": {action: redact, threshold: 0.5}
      PERSON: {action: pseudonymise, threshold: 0.6}
      EMAIL_ADDRESS: {action: pseudonymise, threshold: 0.5}
      PHONE_NUMBER: {action: pseudonymise, threshold: 0.4}
      LOCATION: {action: pseudonymise, threshold: 0.6}
      CREDIT_CARD: {action: mask, keep_last: 2}
      IBAN_CODE: {action: hash}
      US_SSN: {action: block}
      DATE_TIME: {action: allow}
      URL: {action: allow}
    output_rules:
      "*": {action: flag, threshold: 0.6}
      PERSON: {action: flag, threshold: 0.6}
      CREDIT_CARD: {action: redact, threshold: 0.5}
access:
  anonymous_role: local
  roles:
    local: {restore: ["*"]}
    support: {restore: [PERSON]}
"""


@pytest.fixture(scope="module")
def loaded():
    """Load the spaCy pipeline, Presidio and every recogniser with the network cut off."""
    with no_network() as attempts:
        registry = builtin_registry()
        policy = parse_policy(POLICY, source="pii-test.yaml", registry=registry)
        settings = Settings(hash_key="test-hash-key", data_dir=Path("/nonexistent-trustwall-test"))
        resources = Resources()
        build = BuildContext(settings=settings, resources=resources)
        detectors = build_detectors(policy, registry, build)
        pipeline = Pipeline(policy, detectors, hash_key=b"test-hash-key")
        # analyse once under the guard too (tldextract, phonenumbers, the spaCy pass)
        res = asyncio.run(detectors["pii"].detect(["Mail bob@mail.example.org or see https://www.example.co.uk/x",
                                                   "Call +44 20 7946 0958, I am Sarah Connor from Paris."],
                                                  CallContext()))
    return {"policy": policy, "pipeline": pipeline, "detector": detectors["pii"], "resources": resources,
            "attempts": attempts, "first": res, "registry": registry, "build": build}


def test_no_network_attempt_during_load_and_analyse(loaded):
    assert loaded["attempts"] == []
    cats = {f.category for fl in loaded["first"] for f in fl}
    assert {"EMAIL_ADDRESS", "URL", "PHONE_NUMBER", "PERSON", "LOCATION"} <= cats


def test_the_network_guard_does_catch_attempts():
    with no_network() as attempts, pytest.raises(NetworkAttempt):
        socket.create_connection(("127.0.0.1", 9))
    assert attempts


def test_analyse_later_under_guard(loaded):
    with no_network() as attempts:
        out = asyncio.run(loaded["detector"].detect(["write to jane.doe@corp-mail.net"], CallContext()))
    assert attempts == []
    assert [f.category for f in out[0]] == ["EMAIL_ADDRESS"]


def _detect(loaded, text: str):
    return asyncio.run(loaded["detector"].detect([text], CallContext()))[0]


ENTITY_CASES = [
    ("PERSON", "Yesterday I had lunch with Barack Obama in the city.", "Barack Obama"),
    ("EMAIL_ADDRESS", "Please reply to maria.garcia@example.org today.", "maria.garcia@example.org"),
    ("PHONE_NUMBER", "Call me on +44 20 7946 0958 tomorrow.", "+44 20 7946 0958"),
    ("PHONE_NUMBER", "Our Paris office: +33 1 42 68 53 00.", "+33 1 42 68 53 00"),
    ("PHONE_NUMBER", "US support line (212) 555-0134.", "(212) 555-0134"),
    ("CREDIT_CARD", "My card is 4111 1111 1111 1111, expiry 04/27.", "4111 1111 1111 1111"),
    ("CREDIT_CARD", "Pay with 4131 0342 8245 8809 939 today.", "4131 0342 8245 8809 939"),  # 19-digit Visa
    ("CREDIT_CARD", "Use card 2223003122003222 here.", "2223003122003222"),  # Mastercard 2-series
    ("US_SSN", "His social security number is 536-22-1234.", "536-22-1234"),
    ("IBAN_CODE", "Transfer to GB82 WEST 1234 5698 7654 32 please.", "GB82 WEST 1234 5698 7654 32"),
    ("IBAN_CODE", "IBAN DE89370400440532013000 for the rent.", "DE89370400440532013000"),
    ("IP_ADDRESS", "The server at 192.168.10.25 is down.", "192.168.10.25"),
    ("IP_ADDRESS", "Ping 2001:db8:85a3::8a2e:370:7334 now.", "2001:db8:85a3::8a2e:370:7334"),
    ("LOCATION", "She moved to Berlin last year.", "Berlin"),
    ("LOCATION", "Ship it to 1668 Glyn Street, Suite 12 please.", "1668 Glyn Street, Suite 12"),
    ("URL", "Docs are at https://docs.example.com/guide?id=3 for you.", "https://docs.example.com/guide?id=3"),
    ("DATE_TIME", "The meeting is on March 3, 2024.", "March 3, 2024"),
    ("US_BANK_NUMBER", "My bank account number is 912345678901.", "912345678901"),
    ("CRYPTO", "Send BTC to 1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2 now.", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"),
    ("CRYPTO", "Wallet bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq here.", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"),
]


@pytest.mark.parametrize(("entity", "text", "value"), ENTITY_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(ENTITY_CASES)])
def test_each_entity_type(loaded, entity, text, value):
    found = _detect(loaded, text)
    spans = {(f.category, text[f.span[0]:f.span[1]]) for f in found}
    assert (entity, value) in spans, spans
    for f in found:
        assert value not in repr(dict(f.evidence))  # evidence never holds the value


@pytest.mark.parametrize("text", [
    "Card 4111 1111 1111 1112 is not a card number (Luhn fails).",
    "IBAN GB82 WEST 1234 5698 7654 33 has a wrong checksum.",
])
def test_checksums_reject_invalid_values(loaded, text):
    cats = {f.category for f in _detect(loaded, text)}
    assert not cats & {"CREDIT_CARD", "IBAN_CODE"}


def test_checksum_helpers():
    assert luhn_ok("4111-1111-1111-1111") and not luhn_ok("4111-1111-1111-1112")
    assert iban_ok("GB82 WEST 1234 5698 7654 32") and not iban_ok("GB82 WEST 1234 5698 7654 33")
    assert mod97_ok("3214282912345698765432161182") is (int("3214282912345698765432161182") % 97 == 1)


def test_finding_spans_are_code_points(loaded):
    text = "😀 héllo, write to zoë@example.org"
    found = [f for f in _detect(loaded, text) if f.category == "EMAIL_ADDRESS"]
    assert found and text[found[0].span[0]:found[0].span[1]] == "zoë@example.org"


def test_name_found_once_is_found_everywhere_in_the_request(loaded):
    texts = ["My name is Faina D. Yefremova.", "Please ask Ms Yefremova about it, Faina D. Yefremova knows."]
    out = asyncio.run(loaded["detector"].detect(texts, CallContext()))
    found = [sorted(t[f.span[0]:f.span[1]] for f in fl if f.category == "PERSON") for t, fl in zip(texts, out)]
    assert found[0] == ["Faina D. Yefremova"]
    assert "Faina D. Yefremova" in found[1]
    spans = [f.span for f in out[1] if f.category == "PERSON"]
    second = texts[1].index("Yefremova")
    assert any(s <= second and second + len("Yefremova") <= e for s, e in spans)


def test_address_block_is_one_location(loaded):
    text = "Send it to 14 Crown Street, Suite 321\nLondon\nUnited Kingdom 75419 before Friday."
    locs = [text[f.span[0]:f.span[1]] for f in _detect(loaded, text) if f.category == "LOCATION"]
    assert locs == ["14 Crown Street, Suite 321\nLondon\nUnited Kingdom 75419"]


def test_weaker_findings_yield_to_stronger_ones(loaded):
    text = "Write to john.smith@acme.co.uk, card 4111 1111 1111 1111."
    cats = [(f.category, text[f.span[0]:f.span[1]]) for f in _detect(loaded, text)]
    assert ("EMAIL_ADDRESS", "john.smith@acme.co.uk") in cats
    assert not any(c in ("URL", "DATE_TIME", "PHONE_NUMBER") for c, _ in cats), cats


# ------------------------------------------------------------------------------- operators end to end


def test_operators_end_to_end(loaded):
    pipe: Pipeline = loaded["pipeline"]
    ctx = CallContext()
    msgs = ["Hi, I am Sarah Connor. My card is 4111 1111 1111 1111 and my IBAN is GB82 WEST 1234 5698 7654 32.",
            "Sarah Connor again: write to sarah.connor@skynet-mail.net."]
    dec = asyncio.run(pipe.check_input(msgs, ctx))
    a, b = dec.texts
    assert "Sarah Connor" not in a + b
    assert "<PERSON_1>" in a and "<PERSON_1>" in b  # same value, same placeholder across messages
    assert "<EMAIL_ADDRESS_1>" in b
    assert "*****************11" in a and "4111" not in a  # mask with the rule's keep_last: 2
    assert "GB82" not in a and "<IBAN_CODE:" in a  # keyed hash
    digest = a.split("<IBAN_CODE:")[1].split(">")[0]
    assert len(digest) == 16 and all(c in "0123456789abcdef" for c in digest)
    import hashlib
    import hmac
    assert digest == hmac.new(b"test-hash-key", b"GB82 WEST 1234 5698 7654 32", hashlib.sha256).hexdigest()[:16]
    assert digest != hashlib.sha256(b"GB82 WEST 1234 5698 7654 32").hexdigest()[:16]


def test_redact_operator_uses_entity_name(loaded):
    dec = asyncio.run(loaded["pipeline"].check_input(["Server 192.168.10.25 crashed."], CallContext()))
    assert dec.text == "Server <IP_ADDRESS> crashed."


def test_block_operator(loaded):
    dec = asyncio.run(loaded["pipeline"].check_input(["My SSN is 536-22-1234."], CallContext()))
    assert dec.blocked and "US_SSN" in dec.blocking_categories


def test_pseudonymise_and_restore_round_trip(loaded):
    pipe: Pipeline = loaded["pipeline"]
    ctx = CallContext()
    seen: list[str] = []

    async def model(texts, decision):
        seen.extend(texts)
        return "Hello <PERSON_1>, I will email < person_1 > at <EMAIL_ADDRESS_1>."

    res = asyncio.run(round_trip(pipe, ["I am Sarah Connor, mail sarah.connor@skynet-mail.net"], model, ctx))
    assert "Sarah Connor" not in seen[0] and "sarah.connor@" not in seen[0]
    assert res.text == "Hello Sarah Connor, I will email Sarah Connor at sarah.connor@skynet-mail.net."


def test_restoration_respects_the_role(loaded):
    pipe: Pipeline = loaded["pipeline"]
    ctx = CallContext(principal=Principal(id="k1", role="support"))

    async def model(texts, decision):
        return "<PERSON_1> / <EMAIL_ADDRESS_1>"

    res = asyncio.run(round_trip(pipe, ["I am Sarah Connor, mail sarah.connor@skynet-mail.net"], model, ctx))
    assert res.text == "Sarah Connor / <EMAIL_ADDRESS_1>"


def test_streaming_restorer_with_real_vault(loaded):
    pipe: Pipeline = loaded["pipeline"]
    ctx = CallContext()
    asyncio.run(pipe.check_input(["I am Sarah Connor."], ctx))
    answer = "Nice to meet you, <PERSON_1>!"
    for cut in range(len(answer) + 1):
        r = ctx.vault.restorer(pipe.restore_allowed(ctx))
        assert r.feed(answer[:cut]) + r.feed(answer[cut:]) + r.flush() == "Nice to meet you, Sarah Connor!"


def test_200_concurrent_requests_never_mix_values(loaded):
    pipe: Pipeline = loaded["pipeline"]
    n = 200
    emails = [f"user{i:03d}.k{i * 7919 % 1000:03d}@mail{i:03d}.example.net" for i in range(n)]
    phones = [f"+44 20 7946 {i:04d}" for i in range(n)]

    async def one(i: int):
        ctx = CallContext()
        msgs = [f"Contact me at {emails[i]} or on {phones[i]}.", f"Again: {emails[i]}"]

        async def model(texts, decision):
            return " | ".join(texts)

        res = await round_trip(pipe, msgs, model, ctx)
        return i, ctx, res

    async def all_():
        return await asyncio.gather(*(one(i) for i in range(n)))

    results = asyncio.run(all_())
    for i, ctx, res in results:
        sent = " ".join(res.input.texts)
        assert emails[i] not in sent and phones[i] not in sent
        assert "<EMAIL_ADDRESS_1>" in res.input.texts[0] and "<EMAIL_ADDRESS_1>" in res.input.texts[1]
        values = {v for _, v in ctx.vault._by_key.values()}
        assert values == {emails[i], phones[i]}, (i, values)
        assert res.text == f"Contact me at {emails[i]} or on {phones[i]}. | Again: {emails[i]}"
        others = set(emails[:i] + emails[i + 1:]) | set(phones[:i] + phones[i + 1:])
        assert not any(o in res.text for o in others if o not in emails[i] and o not in phones[i])


# ------------------------------------------------------------------------------------------ allow lists


def test_allow_list_and_allow_patterns(loaded):
    found = _detect(loaded, "Ask Trustwall Cloud or write to help@example.com or to jo.bloggs@corp-mail.net")
    values = {(f.category, f.span) for f in found}
    cats = [f.category for f in found]
    assert cats.count("EMAIL_ADDRESS") == 1, values  # help@example.com is allowed by pattern
    text = "Ask Trustwall Cloud or write to help@example.com or to jo.bloggs@corp-mail.net"
    assert all(text[f.span[0]:f.span[1]] != "Trustwall Cloud" for f in found)


def test_allow_list_is_needed(loaded):
    """Without the allow list, the same values are reported (so the test above tests something)."""
    from detectors.pii import PiiDetector

    det = PiiDetector("pii", PiiOptions(), loaded["detector"].shared)
    text = "Ask Trustwall Cloud or write to help@example.com or to jo.bloggs@corp-mail.net"
    found = asyncio.run(det.detect([text], CallContext()))[0]
    assert [f.category for f in found].count("EMAIL_ADDRESS") == 2


# ----------------------------------------------------------------------------------- custom recognisers


def test_custom_recognisers_from_yaml(loaded):
    det = loaded["detector"]
    found = asyncio.run(det.detect([
        "Badge EMP-123456 belongs to our employee.",   # context raises 0.4 above the 0.5 threshold
        "Reference EMP-654321 was mentioned.",        # no context: stays at 0.4
        "Loyalty 4111-1111-1111-1111 valid, 4111-1111-1111-1112 invalid.",
        "Project Nightjar and bluebird are secret code names.",
    ], CallContext()))
    emp = [f for f in found[0] if f.category == "EMPLOYEE_ID"]
    assert emp and emp[0].score >= 0.5
    emp2 = [f for f in found[1] if f.category == "EMPLOYEE_ID"]
    assert emp2 and emp2[0].score < 0.5
    loyalty = [f.span for f in found[2] if f.category == "LOYALTY_CARD"]
    assert loyalty == [(8, 27)]
    text = "Project Nightjar and bluebird are secret code names."
    projects = sorted(text[f.span[0]:f.span[1]] for f in found[3] if f.category == "PROJECT")
    assert projects == ["Project Nightjar", "bluebird"]


def test_custom_entities_redacted_by_policy(loaded):
    dec = asyncio.run(loaded["pipeline"].check_input(["Badge EMP-123456 of our employee, Project Nightjar."], CallContext()))
    assert "<EMPLOYEE_ID>" in dec.text and "<PROJECT>" in dec.text


def _policy_with(options_yaml: str) -> str:
    return textwrap.dedent("""
        policy: {id: bad}
        detectors:
          - name: pii
            type: pii
            options:
        """) + textwrap.indent(textwrap.dedent(options_yaml), " " * 6)


@pytest.mark.parametrize(("options", "needle"), [
    ("recognizers: [{name: r1, entity: X_ID, patterns: [{regex: '([a-z'}]}]", "invalid regex"),
    ("recognizers: [{name: r1, entity: X_ID}]", "needs at least one of 'patterns' or 'deny_list'"),
    ("recognizers: [{name: r1, entity: X_ID, patterns: [{regex: 'a*'}]}]", "matches the empty string"),
    ("recognizers: [{name: r1, entity: X_ID, patterns: [{regex: 'x\\d+'}], checksum: crc32}]", "checksum"),
    ("recognizers: [{name: r1, entity: lower_case, patterns: [{regex: 'x\\d+'}]}]", "entity"),
    ("recognizers: [{name: r1, entity: X_ID, deny_list: [a]}, {name: r1, entity: Y_ID, deny_list: [b]}]",
     "unique"),
    ("recognizers: [{name: r1, entity: X_ID, patterns: [{regex: 'x\\d+', score: 1.5}]}]", "less than or equal"),
    ("recognizers: [{name: r1, entity: X_ID, deny_list: [a], colour: red}]", "unknown field"),
    ("entities: [PERSON, SOCIAL_CREDIT]", "unknown entities"),
    ("allow_patterns: ['(']", "invalid allow pattern"),
    ("language: de", "embedded model is English"),
    ("spacy_model: x", "unknown field"),
])
def test_bad_recogniser_definitions_rejected_at_load(options, needle):
    with pytest.raises(PolicyError) as err:
        parse_policy(_policy_with(options), source="bad.yaml", registry=builtin_registry())
    msg = str(err.value)
    assert "bad.yaml" in msg and "detectors[0].options" in msg and needle in msg, msg


# ------------------------------------------------------------------------------------ the shared parse


def test_shared_pipeline_and_one_parse_per_call(loaded):
    resources: Resources = loaded["resources"]
    shared = get_nlp(resources, DEFAULT_MODEL, components=("ner",))
    assert shared is loaded["detector"].shared
    assert shared.required == frozenset({"ner"})  # the PII pass runs NER only
    calls = []
    orig = shared._pipe

    def counting(items):
        calls.append([t for _stage, t in items])  # items are (stage, text) pairs
        return orig(items)

    shared._pipe = counting  # type: ignore[method-assign]
    try:
        ctx = CallContext()
        texts = ["I am Sarah Connor.", "From Paris."]

        async def both():
            a, b = await asyncio.gather(loaded["detector"].detect(texts, ctx, "input"), parse(ctx, shared, texts, "input"))
            c = await parse(ctx, shared, texts, "input")
            return a, b, c

        a, b, c = asyncio.run(both())
    finally:
        del shared._pipe
    assert calls == [texts]  # one nlp.pipe batch for all messages, shared by both callers
    assert b is c or all(x is y for x, y in zip(b, c))
    assert [d.text for d in b] == texts


def test_required_components_expand_to_dependencies():
    resources = Resources()
    shared = get_nlp(resources, DEFAULT_MODEL, components=("ner",))
    assert shared.required == frozenset({"ner"})
    get_nlp(resources, DEFAULT_MODEL, components=("lemmatizer",))
    assert {"lemmatizer", "attribute_ruler", "tagger", "tok2vec", "ner"} <= shared.required
    assert "parser" not in shared.required
    with pytest.raises(DetectorError, match="no component"):
        get_nlp(resources, DEFAULT_MODEL, components=("coref",))


def test_missing_model_is_a_clear_error_not_a_download():
    with no_network() as attempts, pytest.raises(DetectorError, match="not installed.*never downloads"):
        get_nlp(Resources(), "en_core_web_trf_not_here")
    assert attempts == []


def test_spacy_package_name_alias_maps_to_embedded_model():
    from detectors.nlp import STOCK_MODEL, resolve_model_name

    assert resolve_model_name("en_core_web_sm") in ("en_core_web_sm", STOCK_MODEL)


def test_output_stage_uses_its_own_rules(loaded):
    """Leakage check on answers: hard identifiers removed, names only flagged, nothing pseudonymised."""
    ctx = CallContext()
    dec = asyncio.run(loaded["pipeline"].check_output("Sarah Connor's card is 4111 1111 1111 1111.", ctx))
    assert dec.text == "Sarah Connor's card is <CREDIT_CARD>."
    assert dec.action.label == "redact"
    assert any(j.finding.category == "PERSON" and j.action.label == "flag" for j in dec.judgements)
    assert ctx.vault is None or len(ctx.vault) == 0


def test_blocked_error_carries_categories(loaded):
    async def model(texts, decision):  # pragma: no cover - never called
        raise AssertionError

    with pytest.raises(Blocked) as err:
        asyncio.run(round_trip(loaded["pipeline"], ["SSN 536-22-1234"], model, CallContext()))
    assert "US_SSN" in err.value.categories


def test_each_stage_runs_only_the_components_its_detectors_need():
    resources = Resources()
    shared = get_nlp(resources, DEFAULT_MODEL, components=("ner",), stages=("input", "output"))
    get_nlp(resources, DEFAULT_MODEL, components=("parser",), stages=("output",))
    assert "parser" in shared.disabled("input") and "tagger" in shared.disabled("input")
    assert "parser" not in shared.disabled("output") and "ner" not in shared.disabled("output")
    assert "ner" not in shared.disabled("input")

    async def go():
        ctx_in, ctx_out = CallContext(), CallContext()
        (d_in,) = await parse(ctx_in, shared, ["Sarah Connor lives in Paris."], "input")
        (d_out,) = await parse(ctx_out, shared, ["Sarah Connor lives in Paris."], "output")
        return d_in, d_out

    d_in, d_out = asyncio.run(go())
    assert d_in.ents and d_out.ents
    assert not d_in.has_annotation("DEP") and d_out.has_annotation("DEP")


# --------------------------------------------------------------- normalisation and public places (issue 16)

OBFUSCATED = [
    ("EMAIL_ADDRESS", "Write to jо\u200bhn.smith@exаmple.org please.", "jо\u200bhn.smith@exаmple.org"),
    ("CREDIT_CARD", "Card ４１１１ １１１１ １１１１ １１１１ thanks.", "４１１１ １１１１ １１１１ １１１１"),
    ("CREDIT_CARD", "Card 4111.1111 1111-1111 thanks.", "4111.1111 1111-1111"),
    ("US_SSN", "My SSN is 123 . 45 . 6789 ok", "123 . 45 . 6789"),
    ("US_SSN", "SSN 1\u00ad23-45-67\u2060\ufeff89 ok", "1\u00ad23-45-67\u2060\ufeff89"),
    ("PHONE_NUMBER", "Call me on +44 20 79\u200b46 0958 tomorrow.", "+44 20 79\u200b46 0958"),
]


@pytest.mark.parametrize("entity,text,value", OBFUSCATED)
def test_obfuscated_identifiers_are_found_in_the_original_text(loaded, entity, text, value):
    spans = [text[f.span[0]:f.span[1]] for f in _detect(loaded, text) if f.category == entity]
    assert value in spans


def test_obfuscated_values_are_redacted_in_the_original(loaded):
    text = "Card ４１１１ １１１１ １１１１ １１１１, mail jо\u200bhn@exаmple.org"
    d = asyncio.run(loaded["pipeline"].check("input", [text], CallContext()))
    assert "１１１１" not in d.texts[0] and "exаmple" not in d.texts[0] and d.texts[0].startswith("Card ")


@pytest.mark.parametrize("text", [
    "What is the capital of Australia and why was it chosen?",
    "Mexico City is one of the largest cities in the Americas.",
    "Compare the economies of Germany, France and Japan since 1990.",
    "Which rivers flow through Europe and Africa?",
])
def test_public_places_in_general_questions_pass_unchanged(loaded, text):
    assert [f for f in _detect(loaded, text) if f.category == "LOCATION"] == []
    d = asyncio.run(loaded["pipeline"].check("input", [text], CallContext()))
    assert d.texts[0] == text


def test_personal_places_stay_detected(loaded):
    text = "Maria Lopez lives in Paris, at 12 Rue de Rivoli, 75001."
    locs = [text[f.span[0]:f.span[1]] for f in _detect(loaded, text) if f.category == "LOCATION"]
    assert "Paris" in " ".join(locs) and any("Rivoli" in v for v in locs)
    text = "I moved to Berlin last year with my kids."
    assert any(text[f.span[0]:f.span[1]] == "Berlin" for f in _detect(loaded, text) if f.category == "LOCATION")


def test_public_places_option_flag_and_redact(loaded):
    from detectors.pii import PiiDetector

    text = "What is the capital of Australia?"
    for mode, cat in (("flag", "PUBLIC_PLACE"), ("redact", "LOCATION")):
        det = PiiDetector("pii", PiiOptions(public_places=mode), loaded["detector"].shared)
        found = asyncio.run(det.detect([text], CallContext()))[0]
        assert [(f.category, text[f.span[0]:f.span[1]]) for f in found] == [(cat, "Australia")]
    with pytest.raises(ValueError):
        PiiOptions(public_places="sometimes")


def test_normalisation_can_be_turned_off(loaded):
    from detectors.pii import PiiDetector

    det = PiiDetector("pii", PiiOptions(normalize=False), loaded["detector"].shared)
    text = "Write to jо\u200bhn@exаmple.org please."
    found = asyncio.run(det.detect([text], CallContext()))[0]
    assert not [f for f in found if f.category == "EMAIL_ADDRESS" and text[f.span[0]:f.span[1]].startswith("j")]


def _det(loaded, **opts):
    from detectors.pii import PiiDetector

    return PiiDetector("pii", PiiOptions(**opts), loaded["detector"].shared)


def _cats(det, text):
    return [(f.category, text[f.span[0]:f.span[1]]) for f in asyncio.run(det.detect([text], CallContext()))[0]]


def test_a_place_outside_any_personal_context_is_public(loaded):
    text = "The mayor of Bucyrus opened the festival."
    assert ("LOCATION", "Bucyrus") in _cats(_det(loaded, context_places=False), text)  # the NER does find it
    assert [c for c in _cats(_det(loaded), text) if c[0] == "LOCATION"] == []
    assert ("PUBLIC_PLACE", "Bucyrus") in _cats(_det(loaded, public_places="flag"), text)
    personal = "Maria Lopez grew up in Bucyrus and still lives there."
    assert ("LOCATION", "Bucyrus") in _cats(_det(loaded), personal)


LONE = "Janet sells 16 eggs a day at the market. How much does Janet earn in a week?"


def test_lone_given_names_follow_the_lone_names_option(loaded):
    assert _cats(_det(loaded), LONE).count(("PERSON", "Janet")) == 2  # default: privacy first
    assert [c for c in _cats(_det(loaded, lone_names="ignore"), LONE) if c[1] == "Janet"] == []
    assert _cats(_det(loaded, lone_names="flag"), LONE).count(("LONE_NAME", "Janet")) == 2
    with pytest.raises(ValueError):
        PiiOptions(lone_names="never")


@pytest.mark.parametrize("text,name", [
    ("Janet's e-mail is janet.w@example.org, please add her to the list.", "Janet"),
    ("Janet Whitfield sells 16 eggs a day. How much does Janet earn?", "Janet"),
    ("Ask Dr. Okafor whether the results came back.", "Okafor"),
    ("Hi, my name is Priya and I need help with my order.", "Priya"),
    ("Thanks, Priya! See you on Monday.", "Priya"),
])
def test_lone_names_are_kept_when_something_identifies_the_person(loaded, text, name):
    found = _cats(_det(loaded, lone_names="ignore"), text)
    assert any(c == "PERSON" and name in v for c, v in found), found


def test_one_identifier_anywhere_in_the_request_keeps_names_in_every_message(loaded):
    det = _det(loaded, lone_names="ignore")
    texts = ["Please pass this on to Janet.", "Her number is +1 415 555 0134."]
    found = asyncio.run(det.detect(texts, CallContext()))
    assert [f.category for f in found[0]] == ["PERSON"] and "PHONE_NUMBER" in [f.category for f in found[1]]
