"""POST /v1/embeddings through the one call lifecycle, with the official openai client against a real
upstream: input checks on every input string before it is embedded, block rules, token-id input
refused, access control, rate limits, one audit record, metrics and x-trustwall-* headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from guardrails.proxy.upstream import echo_vector

from .routes_kit import Routes, serve_routes

SECRET = "sk-" + "Q1w2E3r4T5y6U7i8O9p0A1s2"


@pytest.fixture(scope="module")
def routes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Routes]:
    yield from serve_routes(tmp_path_factory.mktemp("emb"))


def client(routes: Routes, key: str | None = None) -> openai.OpenAI:
    return openai.OpenAI(base_url=routes.base_url, api_key=key or routes.key, max_retries=0, timeout=30)


def test_pii_is_pseudonymised_before_embedding(routes: Routes) -> None:
    routes.log.clear()
    texts = ["Ada Lovelace wrote to ada@example.com.", "The weather is fine."]
    raw = client(routes).embeddings.with_raw_response.create(model="text-embed", input=texts)
    resp = raw.parse()
    sent = routes.log[-1]["input"]
    assert "Ada Lovelace" not in sent[0] and "ada@example.com" not in sent[0] and "<PERSON_1>" in sent[0]
    assert sent[1] == texts[1]
    # what was embedded is the pseudonymised text: the vector is the placeholder text's, not the original's
    vec = resp.data[0].embedding
    assert vec == pytest.approx(echo_vector(sent[0], len(vec)), abs=1e-6)
    assert vec != pytest.approx(echo_vector(texts[0], len(vec)), abs=1e-3)
    assert resp.data[1].embedding == pytest.approx(echo_vector(texts[1], len(vec)), abs=1e-6)
    assert raw.headers["x-trustwall-action"] == "redact"
    rid = raw.headers["x-trustwall-request-id"]
    recs = [r for r in routes.records if r.request_id == rid]
    assert len(recs) == 1
    rec = recs[0]
    assert rec.route == "/v1/embeddings" and rec.status == 200 and rec.output is None
    assert {"PERSON", "EMAIL_ADDRESS"} <= set(rec.input.categories)
    assert rec.prompt_tokens is not None


def test_single_string_and_float_format(routes: Routes) -> None:
    resp = client(routes).embeddings.create(model="text-embed", input="hello there", encoding_format="float",
                                            dimensions=4)
    assert len(resp.data) == 1 and len(resp.data[0].embedding) == 4


def test_block_rule_refuses_and_nothing_is_embedded(routes: Routes) -> None:
    routes.log.clear()
    with pytest.raises(openai.BadRequestError) as err:
        client(routes).embeddings.create(model="text-embed", input=["fine", f"deploy with {SECRET}"])
    assert err.value.body["code"] == "content_policy_violation"
    assert routes.log == []
    rid = err.value.response.headers["x-trustwall-request-id"]
    assert [r.status for r in routes.records if r.request_id == rid] == [400]


@pytest.mark.parametrize("bad", [[1, 2, 3], [[1, 2], [3]]])
def test_token_ids_are_refused(routes: Routes, bad: list) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(routes).embeddings.create(model="text-embed", input=bad)
    assert err.value.body["code"] == "token_input_unsupported"


@pytest.mark.parametrize("body", [b"{", b'{"model": "m"}', b'{"model": "m", "input": {"a": 1}}',
                                  b'{"model": "m", "input": "x", "encoding_format": "hex"}', b"[]"])
def test_malformed_bodies_are_4xx_openai_errors(routes: Routes, body: bytes) -> None:
    r = httpx.post(routes.base_url + "/embeddings", content=body,
                   headers={"authorization": f"Bearer {routes.key}", "content-type": "application/json"})
    assert r.status_code == 400
    assert {"message", "type", "param", "code"} <= set(r.json()["error"])
    assert r.headers["x-trustwall-request-id"]


def test_access_control_and_rate_limit(routes: Routes) -> None:
    with pytest.raises(openai.PermissionDeniedError):
        client(routes, routes.limited_key).embeddings.create(model="text-embed", input="hi")
    with pytest.raises(openai.AuthenticationError):
        client(routes, "tw-not-a-key").embeddings.create(model="text-embed", input="hi")
    capped = client(routes, routes.capped_key)
    capped.embeddings.create(model="text-embed", input="one")
    with pytest.raises(openai.RateLimitError):
        capped.embeddings.create(model="text-embed", input="two")


def test_echo_upstream_and_metrics(routes: Routes) -> None:
    resp = client(routes).embeddings.create(model="echo-embed", input="Alan Turing")
    assert len(resp.data[0].embedding) == 8
    metrics = httpx.get(routes.proxy.url + "/metrics").text
    assert 'trustwall_requests_total{action="redact",route="/v1/embeddings",status="200"}' in metrics
    assert 'trustwall_upstream_seconds_count{upstream="echo"}' in metrics


def test_anthropic_upstream_does_not_embed(routes: Routes) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client(routes).embeddings.create(model="claude-embed", input="hi")
    assert err.value.body["code"] == "endpoint_unsupported"
