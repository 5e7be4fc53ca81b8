"""Issue 18 end to end: an A/B experiment over two real upstreams behind the proxy (official openai client,
real SQLite audit log), its report against the audit log, sticky assignment that follows the weights,
model licences refused on every path (proxy, @guard, wrap_openai) and shown by GET /v1/models."""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from detectors.registry import builtin_registry
from guardrails.audit import open_store
from guardrails.audit.rows import rows_from_file, rows_from_store
from guardrails.inprocess import Guard
from guardrails.errors import AccessDenied
from guardrails.experiment_report import build_report
from guardrails.experiments import bucket
from guardrails.keys import SQLiteKeyStore
from guardrails.policy import parse_policy
from guardrails.proxy import create_app
from guardrails.ratelimit import MemoryRateLimiter
from guardrails.runtime import build_runtime
from guardrails.settings import Settings
from guardrails.types import Principal

from .proxy_helpers import MemRecorder, ServerThread
from .proxy_upstream import make_upstream_app

ROOT = Path(__file__).resolve().parents[3]

POLICY = """
policy: {{id: ab-test}}
detectors:
  - name: kw
    type: keywords
    stages: [input, output]
    options:
      terms: {{secret: ["project bluebird"], toxicity: ["stupid idiot"], PERSON: ["Grace Hopper"]}}
    input_rules:
      secret: {{action: block}}
      toxicity: {{action: flag}}
      PERSON: {{action: redact}}
    output_rules:
      toxicity: {{action: block}}
      "*": {{action: allow}}
licences:
  llama3.1-community: {{name: Llama 3.1 Community License, terms_url: "https://www.llama.com/llama3_1/license/",
                        use: [commercial, research]}}
upstreams:
  - {{name: a, url: "{a}/v1", models: ["gpt-*"], licence: MIT, timeout_s: 5}}
  - {{name: b, url: "{b}/v1", models: ["gpt-*", "llama-*"], licence: llama3.1-community, timeout_s: 5,
      model_licences: {{"gpt-*": Apache-2.0}}}}
default_upstream: a
experiments:
  - name: ab
    models: ["gpt-ab"]
    sticky: principal
    variants:
      - {{name: control, upstream: a, weight: 3}}
      - {{name: llama, upstream: b, model: llama-8b, weight: 1}}
access:
  anonymous_role: local
  roles:
    local: {{}}
    admin: {{admin: true}}
    user: {{}}
    mitonly: {{licences: [MIT]}}
    nothing: {{licences: [GPL-3.0-only]}}
"""

PRINCIPALS = 200
CALLS_EACH = 5


@pytest.fixture(scope="module")
def ups():
    sa, la = make_upstream_app("a")
    sb, lb = make_upstream_app("b")
    a, b = ServerThread(sa).start(), ServerThread(sb).start()
    yield a, la, b, lb
    a.stop()
    b.stop()


def _policy(ups: Any) -> Any:
    a, _, b, _ = ups
    return parse_policy(POLICY.format(a=a.url, b=b.url), source="ab-test.yaml", registry=builtin_registry())


def _client(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=30)


def _kind(i: int) -> tuple[str, dict[str, Any]]:
    """A deterministic mix: mostly plain calls, some blocked at input, flagged, toxic answers, upstream errors."""
    r = i % 20
    if r == 3:
        return "about project bluebird", {}
    if r in (5, 6):
        return "you stupid idiot, summarise this", {}
    if r == 9:
        return "hello", {"test_reply": "What a stupid idiot question."}
    if r == 13:
        return "hello", {"test_mode": "fail-500"}
    if r == 17:
        return "I met Grace Hopper", {}
    return f"question {i}", {}


@pytest.mark.slow
def test_thousand_call_experiment_report_equals_audit_log(ups, tmp_path: Path) -> None:
    a, la, b, lb = ups
    la.clear()
    lb.clear()
    policy = _policy(ups)
    settings = Settings(data_dir=tmp_path, hash_key="k")
    runtime = build_runtime(settings, policy=policy, audit=True)
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    _, admin_key = keys.create("admin")
    users = [keys.create("user") for _ in range(PRINCIPALS)]
    server = ServerThread(create_app(runtime, keys=keys, limiter=MemoryRateLimiter(), key_cache_ttl_s=0)).start()
    seen: dict[str, set[str]] = defaultdict(set)  # principal -> upstreams that answered (x-trustwall-upstream)
    statuses: Counter[int] = Counter()
    try:
        i = 0
        for info, key in users:
            client = _client(server.url, key)
            for _ in range(CALLS_EACH):
                text, extra = _kind(i)
                i += 1
                try:
                    raw = client.chat.completions.with_raw_response.create(
                        model="gpt-ab", messages=[{"role": "user", "content": text}], extra_body=extra or None)
                    statuses[raw.status_code] += 1
                    seen[info.id].add(raw.headers["x-trustwall-upstream"])
                except openai.APIStatusError as exc:
                    statuses[exc.status_code] += 1
            client.close()
        assert sum(statuses.values()) == PRINCIPALS * CALLS_EACH
        assert statuses[400] == PRINCIPALS * CALLS_EACH // 20  # project bluebird
        assert statuses[502] == PRINCIPALS * CALLS_EACH // 20  # fail-500

        # sticky: every principal's calls went to one upstream, the one its keyed hash says
        exp = policy.experiments[0]
        assigned: dict[str, str] = {}
        for info, _ in users:
            point = bucket(exp, f"key:{info.id}")
            assigned[info.id] = "a" if point < 0.75 else "b"
            assert seen[info.id] <= {assigned[info.id]}, (info.id, seen[info.id])
        # ...and follows the weights (3:1) within statistical tolerance (binomial, 4 sigma)
        n_b = sum(1 for v in assigned.values() if v == "b")
        sd = math.sqrt(PRINCIPALS * 0.25 * 0.75)
        assert abs(n_b - PRINCIPALS * 0.25) < 4 * sd, n_b
        # the llama arm received the variant's model, the control arm the requested one
        assert lb.requests and all(r["model"] == "llama-8b" for r in lb.requests)
        assert la.requests and all(r["model"] == "gpt-ab" for r in la.requests)

        # the audit log (read back from the store) holds every call, with experiment and variant
        store = open_store(settings)
        deadline = time.monotonic() + 30
        while store.count() < PRINCIPALS * CALLS_EACH and time.monotonic() < deadline:
            time.sleep(0.1)
        rows = list(rows_from_store(store))
        assert len(rows) == PRINCIPALS * CALLS_EACH
        assert all(r["experiment"] == "ab" for r in rows)
        truth: dict[str, Counter[str]] = defaultdict(Counter)
        for r in rows:
            v = r["variant"]
            truth[v]["calls"] += 1
            truth[v][f"final_{r['final']}"] += 1
            truth[v]["output_refusal"] += r["output_action"] == "block"
            truth[v]["upstream_error"] += (r["error"] or "").startswith("upstream_")
            truth[v]["tokens"] += (r["prompt_tokens"] or 0) + (r["completion_tokens"] or 0)
            truth[v]["licence:" + str(r["licence"])] += 1
            assert r["upstream"] == {"control": "a", "llama": "b"}[v]
            assert assigned[r["principal_id"].removeprefix("key:")] == r["upstream"]
        assert truth["control"]["licence:MIT"] == truth["control"]["calls"]
        assert truth["llama"]["licence:llama3.1-community"] == truth["llama"]["calls"]

        report = build_report("ab", rows)
        assert report["calls"] == PRINCIPALS * CALLS_EACH
        for v in report["variants"]:
            t = truth[v["variant"]]
            assert v["calls"] == t["calls"]
            for act in ("block", "flag", "redact"):
                assert v["rates"][f"final_{act}"]["count"] == t[f"final_{act}"]
            assert v["rates"]["output_refusal"]["count"] == t["output_refusal"] > 0
            assert v["rates"]["upstream_error"]["count"] == t["upstream_error"] > 0
            assert v["tokens"]["prompt"] + v["tokens"]["completion"] == t["tokens"]
            lo, hi = v["rates"]["final_block"]["ci95"]
            assert lo <= v["rates"]["final_block"]["rate"] <= hi
            assert v["categories"]["secret:block"]["count"] == t["final_block"] - t["output_refusal"]
            assert v["latency_ms"]["total_p50"] <= v["latency_ms"]["total_p95"]
        # the same mix on both arms: no significant difference in the block rate
        assert report["tests"]["final_block"]["p"] > 0.001

        # the CLI gives the same counts from the store, and from a CSV and a JSONL export
        env = {**os.environ, "TRUSTWALL_DATA_DIR": str(tmp_path), "TRUSTWALL_HASH_KEY": "k", "PYTHONPATH": str(ROOT)}
        cli = [sys.executable, "-m", "guardrails.cli"]
        out = subprocess.run([*cli, "experiments", "report", "ab", "--format", "json"], capture_output=True,
                             text=True, env=env, cwd=ROOT, timeout=120)
        assert out.returncode == 0, out.stderr
        from_cli = json.loads(out.stdout)
        assert from_cli["variants"] == json.loads(json.dumps(report["variants"]))
        for fmt in ("csv", "jsonl"):
            path = tmp_path / f"audit.{fmt}"
            ex = subprocess.run([*cli, "audit", "export", "-f", fmt, "-o", str(path), "-q"], env=env, cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
            assert ex.returncode == 0, ex.stderr
            from_file = build_report("ab", rows_from_file(path))
            assert [(v["variant"], v["calls"], v["rates"], v["tokens"]) for v in from_file["variants"]] == \
                   [(v["variant"], v["calls"], v["rates"], v["tokens"]) for v in report["variants"]]
        csv_out = subprocess.run([*cli, "experiments", "report", "ab", "--from", str(tmp_path / "audit.csv"),
                                  "--format", "csv"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
        assert csv_out.returncode == 0, csv_out.stderr
        line = next(x for x in csv_out.stdout.splitlines() if x.startswith("ab,llama,final_block,"))
        assert int(line.split(",")[3]) == truth["llama"]["final_block"]
        table = subprocess.run([*cli, "experiments", "report", "ab"], capture_output=True, text=True, env=env,
                               cwd=ROOT, timeout=120)
        assert table.returncode == 0 and "control" in table.stdout and "llama" in table.stdout
        store.close()
    finally:
        server.stop()
        asyncio.run(runtime.aclose())


def _start(ups: Any, tmp_path: Path) -> tuple[ServerThread, SQLiteKeyStore, MemRecorder, Any]:
    settings = Settings(data_dir=tmp_path, hash_key="k")
    rec = MemRecorder()
    runtime = build_runtime(settings, policy=_policy(ups), audit=rec)
    keys = SQLiteKeyStore(tmp_path / "keys.sqlite3")
    server = ServerThread(create_app(runtime, keys=keys, limiter=MemoryRateLimiter(), key_cache_ttl_s=0)).start()
    return server, keys, rec, runtime


def test_proxy_refuses_forbidden_licence_and_lists_licences(ups, tmp_path: Path) -> None:
    _, la, _, lb = ups
    server, keys, rec, runtime = _start(ups, tmp_path)
    try:
        _, mit = keys.create("mitonly")
        _, nothing = keys.create("nothing")
        lb.clear()
        la.clear()
        # a model under a licence the role does not allow: 403 licence_not_allowed, upstream never called
        with pytest.raises(openai.PermissionDeniedError) as info:
            _client(server.url, mit).chat.completions.create(model="llama-8b", messages=[{"role": "user", "content": "hi"}])
        assert info.value.body["code"] == "licence_not_allowed"
        assert "llama3.1-community" in info.value.body["message"]
        assert lb.requests == []
        rid = info.value.response.headers["x-trustwall-request-id"]
        r = rec.by_id(rid)
        assert r.status == 403 and r.error == "licence_not_allowed"
        # in the experiment, the llama arm is skipped for this role: every call goes to the control arm
        for k in range(20):
            mk, key = keys.create("mitonly")
            raw = _client(server.url, key).chat.completions.with_raw_response.create(
                model="gpt-ab", messages=[{"role": "user", "content": f"q{k}"}])
            assert raw.headers["x-trustwall-upstream"] == "a"
            got = rec.by_id(raw.headers["x-trustwall-request-id"])
            assert (got.experiment, got.variant, got.licence) == ("ab", "control", "MIT")
        assert lb.requests == []
        # streamed chat and legacy completions take the same path
        _, key = keys.create("mitonly")
        client = _client(server.url, key)
        with client.chat.completions.with_streaming_response.create(
                model="gpt-ab", stream=True, messages=[{"role": "user", "content": "streamed"}]) as raw:
            assert raw.headers["x-trustwall-upstream"] == "a"
            assert "streamed" in "".join(raw.iter_lines())
            rid = raw.headers["x-trustwall-request-id"]
        got = rec.by_id(rid)
        assert (got.experiment, got.variant, got.streamed) == ("ab", "control", True)
        with pytest.raises(openai.PermissionDeniedError) as info:
            client.completions.create(model="llama-8b", prompt="hi")
        assert info.value.body["code"] == "licence_not_allowed"
        assert lb.requests == []
        # no variant left: a clear 403
        with pytest.raises(openai.PermissionDeniedError) as info:
            _client(server.url, nothing).chat.completions.create(model="gpt-ab", messages=[{"role": "user", "content": "hi"}])
        assert info.value.body["code"] == "licence_not_allowed"
        assert "no variant" in info.value.body["message"]
    finally:
        server.stop()
        asyncio.run(runtime.aclose())


def test_models_endpoint_shows_licences(tmp_path: Path) -> None:
    policy = parse_policy("""
policy: {id: m}
licences: {llama3.1-community: {name: Llama 3.1 Community License, terms_url: "https://example.org/l", use: [research]}}
upstreams:
  - {name: e, kind: echo, models: [echo, llama-8b, qwen-7b], licence: llama3.1-community,
     model_licences: {"qwen-*": Apache-2.0}}
  - {name: plain, kind: echo, models: [other]}
""", registry=builtin_registry())
    runtime = build_runtime(Settings(data_dir=tmp_path), policy=policy, audit=False)
    server = ServerThread(create_app(runtime, keys=SQLiteKeyStore(tmp_path / "k.sqlite3"),
                                     limiter=MemoryRateLimiter())).start()
    try:
        data = {m["id"]: m for m in httpx.get(server.url + "/v1/models").json()["data"]}
        assert data["llama-8b"]["licence"] == {"id": "llama3.1-community", "name": "Llama 3.1 Community License",
                                               "terms_url": "https://example.org/l", "use": ["research"]}
        assert data["qwen-7b"]["licence"]["id"] == "Apache-2.0"
        assert data["qwen-7b"]["licence"]["name"] == "Apache License 2.0"
        assert data["other"]["licence"] is None
    finally:
        server.stop()
        asyncio.run(runtime.aclose())


def test_guard_and_wrap_openai_refuse_forbidden_licence_and_follow_the_experiment(ups, tmp_path: Path) -> None:
    a, la, b, lb = ups
    rec = MemRecorder()
    runtime = build_runtime(Settings(data_dir=tmp_path, hash_key="k"), policy=_policy(ups), audit=rec)
    g = Guard(runtime, owns_runtime=True)
    try:
        la.clear()
        lb.clear()
        called: list[str] = []

        @g.guard(model="llama-8b", upstream="b", principal=Principal("p-mit", "mitonly"))
        def ask_llama(prompt: str) -> str:
            called.append(prompt)
            return "answer"

        with pytest.raises(AccessDenied) as info:
            ask_llama("hello")
        assert info.value.code == "licence_not_allowed" and info.value.status == 403
        assert called == []
        assert rec.records[-1].error == "licence_not_allowed"

        client_b = openai.OpenAI(base_url=b.url + "/v1", api_key="x", max_retries=0)
        wrapped_b = g.wrap_openai(client_b, upstream="b", principal=Principal("p-mit", "mitonly"))
        with pytest.raises(AccessDenied) as info:
            wrapped_b.chat.completions.create(model="llama-8b", messages=[{"role": "user", "content": "hi"}])
        assert info.value.code == "licence_not_allowed"
        assert lb.requests == []

        # the experiment on wrap_openai: routes={"b": client} serves the llama arm, with the variant's model
        client_a = openai.OpenAI(base_url=a.url + "/v1", api_key="x", max_retries=0)
        exp = runtime.policy.experiments[0]
        for k in range(40):
            who = Principal(f"user-{k}", "user")
            w = g.wrap_openai(client_a, upstream="a", principal=who, routes={"b": client_b})
            before_a, before_b = len(la.requests), len(lb.requests)
            w.chat.completions.create(model="gpt-ab", messages=[{"role": "user", "content": f"q{k}"}])
            arm_b = bucket(exp, who.id) >= 0.75
            assert (len(lb.requests) - before_b, len(la.requests) - before_a) == ((1, 0) if arm_b else (0, 1))
            if arm_b:
                assert lb.requests[-1]["model"] == "llama-8b"
            last = rec.records[-1]
            assert (last.experiment, last.variant, last.upstream) == ("ab", "llama" if arm_b else "control",
                                                                      "b" if arm_b else "a")
        assert lb.requests and la.requests

        # @guard with routes=: the variant's upstream picks the function; without one it is refused
        got: list[str] = []

        @g.guard(model="gpt-ab", upstream="a", routes={"b": lambda prompt: got.append("b") or "from b"})
        def ask(prompt: str) -> str:
            got.append("a")
            return "from a"

        for k in range(20):
            who = Principal(f"user-{k}", "user")
            from guardrails.inprocess import trustwall_principal

            with trustwall_principal(who):
                assert ask(f"q{k}") == ("from b" if bucket(exp, who.id) >= 0.75 else "from a")

        @g.guard(model="gpt-ab", upstream="a", on_block="refuse")
        def no_routes(prompt: str) -> str:
            return "from a"

        b_user = next(Principal(f"user-{k}", "user") for k in range(100) if bucket(exp, f"user-{k}") >= 0.75)
        from guardrails.inprocess import trustwall_principal

        with trustwall_principal(b_user):
            out = no_routes("hi")
        assert out != "from a" and "Experiment 'ab'" in out
    finally:
        g.close()
