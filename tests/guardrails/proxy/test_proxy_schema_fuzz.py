"""Schemathesis against the proxy's own OpenAPI schema (valid and invalid data): zero 5xx.

The proxy runs under uvicorn with the built-in echo upstream, so every generated request goes the
whole way (auth, parse, input checks, upstream, output checks, restoration, audit).
"""

from __future__ import annotations

import asyncio

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from detectors.registry import builtin_registry
from guardrails.policy import parse_policy

from .proxy_helpers import start_proxy

ECHO_POLICY = """
policy: {id: fuzz}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options:
      terms: {PERSON: ["Alice"], secret: ["bluebird"]}
      patterns: {EMAIL_ADDRESS: ['[a-z]+@[a-z]+\\.[a-z]+']}
    rules:
      PERSON: {action: pseudonymise}
      EMAIL_ADDRESS: {action: redact}
      secret: {action: block}
upstreams:
  - {name: echo, kind: echo}
"""


@pytest.fixture(scope="module")
def fuzz_proxy(tmp_path_factory):
    p = start_proxy(tmp_path_factory.mktemp("fuzz"), parse_policy(ECHO_POLICY, registry=builtin_registry()))
    yield p
    p.server.stop()
    asyncio.run(p.runtime.aclose())


def _check(response, path: str) -> None:  # noqa: ANN001
    assert response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers.get("x-trustwall-request-id")
    if response.status_code >= 400:
        body = response.json()
        err = body["error"]
        if path == "/v1/messages":  # Anthropic's error shape on the Anthropic route
            assert body["type"] == "error" and {"message", "type"} <= set(err)
        else:
            assert {"message", "type", "param", "code"} <= set(err)


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_no_server_errors(fuzz_proxy, mode):
    # Driven through hypothesis directly: schemathesis' own pytest plugin does not support this pytest.
    schema = schemathesis.openapi.from_url(fuzz_proxy.url + "/openapi.json")
    operations = [r.ok() for r in schema.get_all_operations()]
    assert {f"{op.method.upper()} {op.path}" for op in operations} >= {
        "POST /v1/chat/completions", "POST /v1/completions", "GET /v1/models", "GET /healthz", "GET /readyz",
        "POST /v1/embeddings", "POST /v1/messages", "POST /v1/responses"}
    calls = 0
    for op in operations:
        if mode is schemathesis.GenerationMode.NEGATIVE and op.method.upper() != "POST":
            continue  # nothing to get wrong in a parameterless GET
        examples = 50 if op.method.upper() == "POST" else 5

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
        def run(case) -> None:  # noqa: ANN001
            nonlocal calls
            calls += 1
            _check(case.call(timeout=30), op.path)

        run()
    assert calls >= 100
