"""Upstream kinds: OpenAI-compatible with its own key, Azure OpenAI (deployment path, api-version,
api-key header), echo; the --upstream override; the lean HTTP/1.1 client's edge cases."""

from __future__ import annotations

import asyncio

import openai
import pytest

from detectors.registry import builtin_registry
from guardrails.errors import ConfigError
from guardrails.policy import parse_policy
from guardrails.proxy import http11
from guardrails.proxy.app import upstream_specs

from .proxy_helpers import start_proxy

KINDS = """
policy: {{id: kinds}}
upstreams:
  - {{name: az, kind: azure, url: "{cloud}", api_key_env: TW_TEST_AZURE_KEY, api_version: "2024-10-21", models: ["gpt-az*"]}}
  - {{name: oa, kind: openai, url: "{cloud}/v1", api_key_env: TW_TEST_OPENAI_KEY, headers: {{x-extra: "1"}}}}
default_upstream: oa
"""


@pytest.fixture
def kinds_proxy(cloud, tmp_path, monkeypatch):
    monkeypatch.setenv("TW_TEST_AZURE_KEY", "az-secret")
    monkeypatch.setenv("TW_TEST_OPENAI_KEY", "oa-secret")
    p = start_proxy(tmp_path, parse_policy(KINDS.format(cloud=cloud[0].url), registry=builtin_registry()))
    yield p
    p.server.stop()


def test_azure_and_openai_upstreams_get_their_own_credentials(kinds_proxy, logs):
    cloud = logs[0]
    c = openai.OpenAI(base_url=kinds_proxy.base_url, api_key="client-key", max_retries=0)
    assert c.chat.completions.create(model="gpt-az-4o", messages=[{"role": "user", "content": "hi az"}]).choices[0].message.content == "hi az"
    h = cloud.headers[-1]
    assert h["api-key"] == "az-secret" and "authorization" not in h
    text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
        model="gpt-az-4o", messages=[{"role": "user", "content": "streamed from azure"}], stream=True) if ch.choices)
    assert text == "streamed from azure"
    assert c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi oa"}]).choices
    h = cloud.headers[-1]
    assert h["authorization"] == "Bearer oa-secret" and h["x-extra"] == "1"
    assert all("client-key" not in str(v) for hs in cloud.headers for v in hs.values())


def test_upstream_override():
    policy = parse_policy("policy: {id: o}\nupstreams: [{name: main, kind: echo}, {name: other, kind: echo}]")
    specs, default = upstream_specs(policy, "http://127.0.0.1:8000/v1")
    assert default == "main" and specs[0].kind == "openai" and specs[0].url == "http://127.0.0.1:8000/v1"
    assert specs[1].name == "other"
    specs, _ = upstream_specs(policy, "echo")
    assert specs[0].kind == "echo"
    with pytest.raises(ConfigError):
        upstream_specs(policy, "127.0.0.1:8000")


async def _raw_server(handler):  # noqa: ANN001
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def test_http11_client_bodies_and_keepalive():
    seen = []

    async def handler(reader, writer):  # noqa: ANN001
        seen.append(1)
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            n = int([ln for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")][0].split(b":")[1])
            body = await reader.readexactly(n)
            if body == b"chunked":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n")
            elif body == b"close":
                writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil close")
                await writer.drain()
                writer.close()
                break
            else:
                writer.write(b"HTTP/1.1 201 Created\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    server, port = await _raw_server(handler)
    c = http11.HTTP11Client(f"http://127.0.0.1:{port}/base", read_timeout=5)
    r = await c.request("POST", "/x", b"ping")
    assert r.status_code == 201 and r.content == b"ping"
    r = await c.request("POST", "/x", b"chunked")
    assert r.content == b"hello world"
    r = await c.request("POST", "/x", b"close")
    assert r.content == b"until close"
    r = await c.request("POST", "/x", b"again", stream=True)
    assert [line async for line in r.aiter_lines()] == ["again"]
    assert len(seen) == 2  # one connection reused, a second after the server closed the first
    await c.aclose()
    server.close()


async def test_http11_client_faults():
    async def silent(reader, writer):  # noqa: ANN001
        await asyncio.sleep(5)

    async def garbage(reader, writer):  # noqa: ANN001
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()

    async def cut(reader, writer):  # noqa: ANN001
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    s1, p1 = await _raw_server(silent)
    with pytest.raises(http11.ReadTimeout):
        await http11.HTTP11Client(f"http://127.0.0.1:{p1}", read_timeout=0.2).request("POST", "/", b"x")
    s2, p2 = await _raw_server(garbage)
    with pytest.raises(http11.ProtocolError):
        await http11.HTTP11Client(f"http://127.0.0.1:{p2}").request("POST", "/", b"x")
    s3, p3 = await _raw_server(cut)
    with pytest.raises(http11.ProtocolError):
        await http11.HTTP11Client(f"http://127.0.0.1:{p3}").request("POST", "/", b"x")
    with pytest.raises(http11.ConnectError):
        await http11.HTTP11Client("http://127.0.0.1:9").request("POST", "/", b"x")
    with pytest.raises(ValueError):
        http11.HTTP11Client("ftp://x")
    for s in (s1, s2, s3):
        s.close()
