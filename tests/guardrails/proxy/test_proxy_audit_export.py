"""GET /v1/audit/export: admin roles only, streams the real audit log, never raw values."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import openai

from detectors.registry import builtin_registry
from guardrails.keys import SQLiteKeyStore
from guardrails.policy import parse_policy
from guardrails.proxy import create_app
from guardrails.ratelimit import MemoryRateLimiter
from guardrails.runtime import build_runtime
from guardrails.settings import Settings

from .proxy_helpers import ServerThread

POLICY = """
policy: {id: export-test}
detectors:
  - name: kw
    type: keywords
    stages: [input]
    options: {terms: {PERSON: [Grace Hopper]}}
    rules: {PERSON: {action: pseudonymise}}
upstreams: [{name: echo, kind: echo}]
access:
  anonymous_role: local
  roles:
    local: {}
    admin: {admin: true}
"""


def test_audit_export_admin_only_and_privacy_safe(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, hash_key="k")
    policy = parse_policy(POLICY, registry=builtin_registry())
    runtime = build_runtime(settings, policy=policy, audit=True)
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    _, admin_key = keys.create("admin")
    _, user_key = keys.create("local")
    server = ServerThread(create_app(runtime, keys=keys, limiter=MemoryRateLimiter(), key_cache_ttl_s=0)).start()
    try:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key=user_key)
        resp = client.chat.completions.with_raw_response.create(
            model="echo", messages=[{"role": "user", "content": "I am Grace Hopper"}])
        rid = resp.headers["x-trustwall-request-id"]
        assert resp.parse().choices[0].message.content == "I am <PERSON_1>"  # echo: what the model receives

        denied = httpx.get(server.url + "/v1/audit/export", headers={"authorization": f"Bearer {user_key}"})
        assert denied.status_code == 403 and denied.json()["error"]["code"] == "admin_only"
        assert httpx.get(server.url + "/v1/audit/export").status_code == 401
        bad = httpx.get(server.url + "/v1/audit/export?format=xml", headers={"authorization": f"Bearer {admin_key}"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "format"

        deadline = time.monotonic() + 20
        while True:
            got = httpx.get(server.url + "/v1/audit/export?format=jsonl&action=redact",
                            headers={"authorization": f"Bearer {admin_key}"}, timeout=30)
            assert got.status_code == 200 and got.headers["content-type"].startswith("application/x-ndjson")
            lines = [json.loads(x) for x in got.text.splitlines() if x.strip()]
            if any(rid in json.dumps(x) for x in lines) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert any(rid in json.dumps(x) for x in lines)
        assert "Grace" not in got.text and "Hopper" not in got.text
    finally:
        server.stop()
        asyncio.run(runtime.aclose())
