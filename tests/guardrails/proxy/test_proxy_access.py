"""Keys, roles, limits and sensitivity routing through a real proxy. The tests run in order: the
first-run rule holds until the first key is created."""

from __future__ import annotations

import asyncio

import httpx
import openai
import pytest

from guardrails.types import Action

from .proxy_helpers import make_policy, start_proxy

SSN_MSG = [{"role": "user", "content": "My SSN is 078-05-1120, is it valid?"}]


@pytest.fixture(scope="module")
def aproxy(cloud, inhouse, tmp_path_factory):
    p = start_proxy(tmp_path_factory.mktemp("access"), make_policy(cloud[0].url, inhouse[0].url))
    yield p
    p.server.stop()
    asyncio.run(p.runtime.aclose())


def _client(p, key: str = "sk-whatever") -> openai.OpenAI:
    return openai.OpenAI(base_url=p.base_url, api_key=key, max_retries=0)


def test_routing_sends_sensitive_requests_to_the_inhouse_upstream(aproxy, logs):
    cloud, inhouse = logs
    raw = _client(aproxy).chat.completions.with_raw_response.create(model="gpt-test", messages=SSN_MSG,
                                                                     extra_body={"test_prefix": True})
    resp = raw.parse()
    assert not cloud.requests, "nothing reaches the cloud upstream"
    assert inhouse.requests[-1]["messages"][0]["content"] == SSN_MSG[0]["content"]  # sent as is, not redacted
    assert resp.choices[0].message.content.startswith("inhouse: ")
    assert raw.headers["x-trustwall-action"] == "route" and raw.headers["x-trustwall-upstream"] == "inhouse"
    rec = aproxy.recorder.by_id(raw.headers["x-trustwall-request-id"])
    assert rec.upstream == "inhouse" and rec.input.upstream == "inhouse"
    assert rec.input.route_rule == "ssn-stays-home: input has US_SSN"
    assert rec.final_action is Action.ROUTE
    # streaming follows the same route
    text = "".join(c.delta.content or "" for ch in _client(aproxy).chat.completions.create(
        model="gpt-test", messages=SSN_MSG, stream=True, extra_body={"test_prefix": True}) for c in ch.choices)
    assert text.startswith("inhouse: ") and not cloud.requests


def test_first_run_keyless_calls_work_on_loopback(aproxy, logs):
    resp = _client(aproxy, "not-a-real-key").chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert resp.choices[0].message.content == "hi"
    assert aproxy.recorder.records[-1].principal.id == "anonymous"
    assert aproxy.recorder.records[-1].principal.role == "local"


def test_once_a_key_exists_every_call_needs_one(aproxy, logs):
    info, key = aproxy.keys.create("user", "tests")
    assert key.startswith("tw-") and info.id in key
    with pytest.raises(openai.AuthenticationError) as ei:
        _client(aproxy, "sk-wrong").chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 401 and ei.value.body["code"] == "invalid_api_key"
    assert ei.value.response.headers["x-trustwall-action"] == "deny"
    with httpx.Client(base_url=aproxy.url) as h:
        r = h.post("/v1/chat/completions", json={"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "missing_api_key"
        assert h.get("/v1/models").status_code == 401
        # Azure clients send the key as api-key
        r = h.post("/v1/chat/completions", headers={"api-key": key},
                   json={"model": "gpt-test", "messages": [{"role": "user", "content": "azure style"}]})
        assert r.status_code == 200
    rec = aproxy.recorder.records[-1]
    assert rec.principal.id == f"key:{info.id}" and rec.principal.role == "user"
    assert all(key not in repr(r) for r in aproxy.recorder.records)


def _user_key(aproxy, role: str = "user") -> str:
    return aproxy.keys.create(role, f"{role}-key")[1]


def test_model_not_allowed_is_403_and_models_are_filtered(aproxy, logs):
    c = _client(aproxy, _user_key(aproxy))
    with pytest.raises(openai.PermissionDeniedError) as ei:
        c.chat.completions.create(model="local-llm", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.body["code"] == "model_not_allowed"
    ids = {m.id for m in c.models.list()}
    assert ids == {"gpt-test", "gpt-other"}


def test_rate_limit_is_429_with_retry_after(aproxy, logs):
    c = _client(aproxy, _user_key(aproxy))
    for _ in range(3):  # burst 3
        c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(openai.RateLimitError) as ei:
        c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert ei.value.status_code == 429 and ei.value.body["code"] == "rate_limit_exceeded"
    assert int(ei.value.response.headers["retry-after"]) >= 1
    rec = aproxy.recorder.by_id(ei.value.response.headers["x-trustwall-request-id"])
    assert rec.status == 429 and rec.final_action is Action.BLOCK


def test_oversized_body_is_413(aproxy, logs):
    c = _client(aproxy, _user_key(aproxy, "small"))
    c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x" * 500}])
    with pytest.raises(openai.APIStatusError) as ei:
        c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x" * 3000}])
    assert ei.value.status_code == 413 and ei.value.body["code"] == "request_too_large"
    assert not any("x" * 3000 in str(b) for b in logs[0].requests)


def test_category_not_allowed_for_upstream_is_403(aproxy, logs):
    c = _client(aproxy, _user_key(aproxy, "cloudonly"))
    with pytest.raises(openai.PermissionDeniedError) as ei:
        c.chat.completions.create(model="gpt-test", messages=SSN_MSG)
    assert ei.value.body["code"] == "category_not_allowed" and "US_SSN" in ei.value.body["message"]
    assert "078-05" not in ei.value.response.text
    assert not logs[0].requests and not logs[1].requests
    # the same role may still send clean text to the cloud
    assert c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}]).choices


def test_restore_permission(aproxy, logs):
    c = _client(aproxy, _user_key(aproxy, "norestore"))
    resp = c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "I am Alice Smith"}])
    assert resp.choices[0].message.content == "I am <PERSON_1>"


def test_revoked_key_is_401(aproxy, logs):
    info, key = aproxy.keys.create("local", "temp")
    c = _client(aproxy, key)
    assert c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}]).choices
    assert aproxy.keys.revoke(info.id)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])


async def test_non_loopback_bind_without_keys_refuses_to_start(cloud, inhouse, tmp_path):
    from detectors.registry import builtin_registry
    from guardrails.errors import ConfigError
    from guardrails.keys import SQLiteKeyStore
    from guardrails.proxy import create_app
    from guardrails.runtime import build_runtime
    from guardrails.settings import Settings

    policy = make_policy(cloud[0].url, inhouse[0].url)
    runtime = build_runtime(Settings(data_dir=tmp_path, hash_key="k"), policy=policy, registry=builtin_registry(),
                            audit=False)
    keys = SQLiteKeyStore(tmp_path / "k.sqlite3")
    app = create_app(runtime, host="0.0.0.0", keys=keys)
    with pytest.raises(ConfigError, match="--allow-anonymous"):
        async with app.router.lifespan_context(app):
            pass
    for kw in ({"allow_anonymous": True}, {"host": "127.0.0.1"}):
        app = create_app(runtime, **{"host": "0.0.0.0", **kw}, keys=keys)
        async with app.router.lifespan_context(app):
            assert app.state.trustwall is not None
    keys.create("user")
    app = create_app(runtime, host="0.0.0.0", keys=keys)
    async with app.router.lifespan_context(app):
        assert app.state.trustwall is not None


@pytest.mark.redis
def test_replicas_share_one_rate_budget_through_redis(cloud, inhouse, tmp_path):
    import uuid

    from guardrails.ratelimit import RedisRateLimiter

    prefix = f"trustwall:test:{uuid.uuid4().hex}:"
    policy = make_policy(cloud[0].url, inhouse[0].url)
    a = start_proxy(tmp_path, policy, limiter=RedisRateLimiter("redis://127.0.0.1:6379/0", prefix=prefix))
    b = start_proxy(tmp_path, policy, limiter=RedisRateLimiter("redis://127.0.0.1:6379/0", prefix=prefix))
    try:
        _, key = a.keys.create("user", "shared")  # both replicas read the same key store
        ca, cb = _client(a, key), _client(b, key)
        msg = [{"role": "user", "content": "hi"}]
        for c in (ca, cb, ca):  # burst 3, spent across both replicas
            c.chat.completions.create(model="gpt-test", messages=msg)
        with pytest.raises(openai.RateLimitError):
            cb.chat.completions.create(model="gpt-test", messages=msg)
        with pytest.raises(openai.RateLimitError):
            ca.chat.completions.create(model="gpt-test", messages=msg)
    finally:
        a.server.stop()
        b.server.stop()
        import redis

        r = redis.Redis.from_url("redis://127.0.0.1:6379/0")
        for k in r.scan_iter(match=prefix + "*"):
            r.delete(k)
        r.close()
