"""HTTP protocol classes for uvicorn that answer malformed HTTP with an OpenAI-style JSON error.

uvicorn answers a request its parser rejects (negative or duplicate Content-Length, Content-Length with
Transfer-Encoding, a bad chunk, a NUL in a header, a garbled request line) with a bare text line,
before the ASGI app sees anything. These subclasses keep uvicorn's parsing and connection handling and
change only that answer: `400` with `{"error": {"message", "type", "param", "code"}}`, `connection:
close`, and the connection closed. Use `http_protocol()` as uvicorn's `http=` setting.
"""

from __future__ import annotations

import json
from typing import Any

MESSAGE = "The HTTP request could not be parsed (malformed request line, headers, length or chunked body)."


def error_body() -> bytes:
    return json.dumps({"error": {"message": MESSAGE, "type": "invalid_request_error", "param": None,
                                 "code": "invalid_http_request"}}).encode("ascii")


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode("ascii")),
            (b"connection", b"close")]


def _h11_class() -> type:
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class JsonErrorH11Protocol(H11Protocol):
        def send_400_response(self, msg: str) -> None:  # noqa: ARG002 - uvicorn's text is replaced
            body = error_body()
            try:
                out = self.conn.send(h11.Response(status_code=400, headers=_headers(body), reason=b"Bad Request"))
                out = (out or b"") + (self.conn.send(h11.Data(data=body)) or b"")
                out += self.conn.send(h11.EndOfMessage()) or b""
            except h11.LocalProtocolError:  # h11 refuses to answer in its state: write the bytes ourselves
                out = _raw(body)
            self.transport.write(out)
            self.transport.close()

    return JsonErrorH11Protocol


def _raw(body: bytes) -> bytes:
    head = b"HTTP/1.1 400 Bad Request\r\n" + b"".join(k + b": " + v + b"\r\n" for k, v in _headers(body))
    return head + b"\r\n" + body


def _httptools_class() -> type | None:
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools not installed
        return None

    class JsonErrorHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:  # noqa: ARG002
            self.transport.write(_raw(error_body()))
            self.transport.close()

    return JsonErrorHttpToolsProtocol


def http_protocol(kind: str = "auto") -> Any:
    """The protocol class for uvicorn's `http=`: httptools when installed (uvicorn's own "auto"), else h11."""
    if kind in ("auto", "httptools"):
        cls = _httptools_class()
        if cls is not None:
            return cls
        if kind == "httptools":
            raise RuntimeError("httptools is not installed")
    return _h11_class()
