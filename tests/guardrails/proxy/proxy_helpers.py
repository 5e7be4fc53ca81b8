"""Helpers of the proxy tests: real servers on loopback ephemeral ports (fake OpenAI upstreams and the
proxy under uvicorn), an in-memory audit recorder, the test policy. Fixtures are in conftest.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import uvicorn



from detectors.registry import builtin_registry
from guardrails.keys import SQLiteKeyStore
from guardrails.policy import parse_policy
from guardrails.proxy import create_app
from guardrails.ratelimit import MemoryRateLimiter
from guardrails.runtime import build_runtime
from guardrails.settings import Settings
from guardrails.types import CallRecord


class ServerThread:
    """uvicorn in a thread, bound to 127.0.0.1 on an ephemeral port."""

    def __init__(self, app: Any, http: Any = "auto"):
        from guardrails.proxy.protocol import http_protocol

        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on",
                                     timeout_graceful_shutdown=2, http=http_protocol(http))
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.port = 0

    def start(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class MemRecorder:
    """An in-memory audit sink (the runtime's Recorder protocol)."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []
        self.fail = False

    async def record(self, record: CallRecord) -> None:
        if self.fail:
            raise RuntimeError("sink down")
        self.records.append(record)

    async def aclose(self) -> None:
        return None

    def by_id(self, rid: str) -> CallRecord:
        deadline = time.monotonic() + 10
        while True:
            for r in self.records:
                if r.request_id == rid:
                    return r
            if time.monotonic() > deadline:
                raise AssertionError(f"no audit record for {rid}")
            time.sleep(0.01)


POLICY = """
policy: {{id: proxy-test, version: "1"}}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options:
      terms:
        PERSON: ["Alice Smith", "Bob Jones"]
        secret: ["project bluebird"]
        toxicity: ["stupid idiot"]
      patterns:
        US_SSN: ['\\b\\d{{3}}-\\d{{2}}-\\d{{4}}\\b']
        EMAIL_ADDRESS: ['[A-Za-z0-9._+-]+@[A-Za-z0-9-]+\\.[A-Za-z.]+']
    input_rules:
      PERSON: {{action: pseudonymise}}
      EMAIL_ADDRESS: {{action: pseudonymise}}
      US_SSN: {{action: redact}}
      secret: {{action: block, message: "Confidential project names may not be sent."}}
      toxicity: {{action: allow}}
    output_rules:
      toxicity: {{action: block}}
      secret: {{action: block}}
      US_SSN: {{action: redact}}
      PERSON: {{action: allow}}
      EMAIL_ADDRESS: {{action: allow}}
messages:
  block_output: "The answer was withheld by policy."
streaming: {{window_chars: 64, min_chars: 16, hold_chars: 24, context_chars: 40}}
# the test upstream's steering fields: no meaning to a model, forwarded unchecked by this rule
wire: {{pass_fields: [test_reply, test_chunks, test_mode, test_delay, test_args, test_arg_chunks, test_prefix]}}
access:
  anonymous_role: local
  roles:
    local: {{models: ["*"]}}
    user: {{models: ["gpt-*"], rate_limit: {{requests_per_minute: 60, burst: 3}}}}
    small: {{models: ["*"], max_request_bytes: 2000}}
    norestore: {{models: ["*"], restore: []}}
    cloudonly: {{models: ["*"], upstreams: {{cloud: ["*"], inhouse: []}}}}
upstreams:
  - {{name: cloud, kind: openai, url: "{cloud}/v1", timeout_s: {timeout}, connect_timeout_s: 2}}
  - {{name: inhouse, kind: openai, url: "{inhouse}/v1", timeout_s: {timeout}}}
  - {{name: echo, kind: echo, models: ["echo"]}}
  - {{name: dead, kind: openai, url: "http://127.0.0.1:9/v1", models: ["dead-*"], connect_timeout_s: 1}}
default_upstream: cloud
routes:
  - name: ssn-stays-home
    when: {{categories: [US_SSN]}}
    upstream: inhouse
"""


def make_policy(cloud_url: str, inhouse_url: str, timeout: float = 3.0, text: str = POLICY):
    return parse_policy(text.format(cloud=cloud_url, inhouse=inhouse_url, timeout=timeout), source="proxy-test.yaml",
                        registry=builtin_registry())


class Proxy:
    """A running proxy with its key store, recorder and base URL."""

    def __init__(self, server: ServerThread, keys: SQLiteKeyStore, recorder: MemRecorder, runtime: Any):
        self.server = server
        self.keys = keys
        self.recorder = recorder
        self.runtime = runtime

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"


def start_proxy(tmp_path: Path, policy: Any, registry: Any = None, limiter: Any = None, **kw: Any) -> Proxy:
    settings = Settings(data_dir=tmp_path, hash_key="test-hash-key")
    recorder = MemRecorder()
    runtime = build_runtime(settings, policy=policy, registry=registry or builtin_registry(), audit=recorder)
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    app = create_app(runtime, keys=keys, limiter=limiter or MemoryRateLimiter(), key_cache_ttl_s=0, **kw)
    server = ServerThread(app).start()
    return Proxy(server, keys, recorder, runtime)
