"""The proxy in front of the all-routes test upstream (tests/support/routes_upstream.py), with the
decorator kit's policy (keyword PII pseudonymisation, secrets blocked, toxic output blocked), an openai
upstream, an anthropic upstream and the echo upstream, and API keys for a full and a limited role."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import decorator_kit as kit
from support.routes_upstream import serve_routes_upstream

from .proxy_helpers import Proxy, start_proxy

ANTHROPIC_KEY_ENV = "TW_TEST_ANTHROPIC_KEY"
LIMITED = """
    limited: {models: ["small-*"], restore: []}
    capped: {models: ["*"], restore: ["*"], rate_limit: {requests_per_minute: 60, burst: 1}}
"""


def routes_policy(up: str) -> str:
    text = kit.POLICY.replace('    limited: {models: ["small-*"], restore: []}\n', LIMITED)
    return text + f"""
upstreams:
  - {{name: model, kind: openai, url: "{up}"}}
  - {{name: claude, kind: anthropic, url: "{up}", models: ["claude-*"], api_key_env: {ANTHROPIC_KEY_ENV}}}
  - {{name: native, kind: openai, api: responses, url: "{up}", models: ["native-*"], api_key_env: {ANTHROPIC_KEY_ENV}}}
  - {{name: echo, kind: echo, models: ["echo-*"]}}
default_upstream: model
"""


@dataclass
class Routes:
    proxy: Proxy
    log: list[dict[str, Any]]
    headers: list[dict[str, str]]
    key: str
    limited_key: str
    capped_key: str

    @property
    def base_url(self) -> str:
        return self.proxy.base_url

    @property
    def records(self) -> list[Any]:
        return self.proxy.recorder.records

    def record_after(self, before: int, route: str, status: int, timeout: float = 10.0) -> Any:
        """The first audit record after index `before` with this route and status, waited for: a stream's
        record is written once the proxy has closed the stream, which can be after the client saw its end."""
        deadline = time.monotonic() + timeout
        while True:
            hit = next((r for r in self.records[before:] if r.route == route and r.status == status), None)
            if hit is not None:
                return hit
            if time.monotonic() > deadline:
                got = [(r.route, r.status) for r in self.records[before:]]
                raise AssertionError(f"no audit record {route} {status} after #{before} in {timeout} s; got {got}")
            time.sleep(0.01)


def serve_routes(tmp: Path) -> Iterator[Routes]:
    os.environ[ANTHROPIC_KEY_ENV] = "sk-ant-test-upstream-key"
    with serve_routes_upstream() as (up, log, headers):
        p = start_proxy(tmp, kit.policy(routes_policy(up)), registry=kit.registry())
        try:
            yield Routes(p, log, headers, p.keys.create("local")[1], p.keys.create("limited")[1],
                         p.keys.create("capped")[1])
        finally:
            p.server.stop()
            asyncio.run(p.runtime.aclose())
