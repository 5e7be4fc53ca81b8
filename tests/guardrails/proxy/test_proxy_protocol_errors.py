"""Malformed HTTP (rejected by the parser before the app runs) gets an OpenAI-style JSON error body."""

from __future__ import annotations

import json
import socket

import pytest

from .proxy_helpers import ServerThread

BAD = {
    "negative content-length": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}",
    "content-length and transfer-encoding": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                             b"Connection: close\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad chunk": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"zz\r\nhello\r\n0\r\n\r\n"),
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "garbled request line": b"GET\x01 / HTTP/1.1\r\n\r\n",
    "two content-lengths": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}",
}


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(raw)
        chunks = []
        while True:
            try:
                b = s.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not b:  # the server closed the connection: clean close after the answer
                break
            chunks.append(b)
    return b"".join(chunks)


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request, proxy):
    s = ServerThread(proxy.server.config.app, http=request.param).start()
    yield s
    s.stop()


@pytest.mark.parametrize("case", sorted(BAD))
def test_protocol_errors_answer_with_a_json_error_and_close(server, case):
    reply = _exchange(server.port, BAD[case])
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply[:200]
    assert b"content-type: application/json" in head.lower()
    err = json.loads(body)["error"]
    assert err["type"] == "invalid_request_error" and err["message"]
    if err["code"] == "invalid_http_request":  # refused by the parser: the connection is closed
        assert b"connection: close" in head.lower()
    else:  # h11 reads TE over CL (RFC 9112 6.3) and the app rejects the empty body, as any bad body
        assert case == "content-length and transfer-encoding" and err["code"]


def test_well_formed_requests_are_unaffected(server):
    reply = _exchange(server.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200")
