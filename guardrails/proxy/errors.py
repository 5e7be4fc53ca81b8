"""OpenAI-style error bodies and the typed errors the proxy raises internally."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

REQUEST_ID_HEADER = "x-trustwall-request-id"
ACTION_HEADER = "x-trustwall-action"

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
          429: "rate_limit_error", 502: "upstream_error", 503: "server_error", 504: "timeout_error"}


def dumps(obj: Any) -> bytes:
    """JSON for the wire. Falls back to ASCII escapes when a string holds a lone surrogate."""
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(obj, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status_code=status, headers=headers, media_type="application/json")


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None,
               **extra: Any) -> dict[str, Any]:
    err: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code}
    err.update({k: v for k, v in extra.items() if v is not None})
    return {"error": err}


class ProxyError(Exception):
    """An outcome the proxy answers with an OpenAI-style error body."""

    def __init__(self, status: int, message: str, code: str | None = None, *, type_: str | None = None,
                 param: str | None = None, action: str = "error", retry_after: float | None = None,
                 extra: dict[str, Any] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.type = type_ or _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        self.param = param
        self.action = action
        self.retry_after = retry_after
        self.extra = extra or {}

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        return error_body(self.message, self.type, self.code, self.param, request_id=request_id, **self.extra)

    def response(self, request_id: str) -> Response:
        headers = {REQUEST_ID_HEADER: request_id, ACTION_HEADER: self.action}
        if self.retry_after is not None:
            headers["retry-after"] = str(max(1, int(-(-self.retry_after // 1))))
        return json_response(self.body(request_id), self.status, headers)


class UpstreamError(ProxyError):
    """The upstream failed: unreachable (502), timed out (504), answered 5xx or garbage (502), or
    refused the request itself (its 4xx status and message passed back)."""

    def __init__(self, status: int, message: str, code: str | None = "upstream_error", *, kind: str = "error",
                 type_: str | None = None, param: str | None = None, retry_after: float | None = None):
        super().__init__(status, message, code, type_=type_, param=param, retry_after=retry_after)
        self.kind = kind
