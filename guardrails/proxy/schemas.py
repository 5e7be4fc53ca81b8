"""Request models of the OpenAI API subset the proxy understands, and JSON-body parsing.

Only what the proxy reads is modelled; every other field is allowed (extra="allow") and forwarded to
the upstream untouched (tools, tool_choice, response_format, temperature, ...). Models are strict, so a
wrong type is a 400 rather than a silent coercion.
"""

from __future__ import annotations

import json
import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from guardrails.proxy.errors import ProxyError


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow", strict=True)


class ContentPart(_Open):
    type: str = Field(max_length=64)
    text: str | None = None


class ChatMessage(_Open):
    role: str = Field(min_length=1, max_length=64)
    content: str | list[ContentPart] | None = None
    name: str | None = None


class StreamOptions(_Open):
    include_usage: bool | None = None


class ChatCompletionRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1)
    stream: bool | None = False
    n: int | None = Field(None, ge=1, le=16)
    stream_options: StreamOptions | None = None


class CompletionRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    prompt: str | list[str] = Field(description="text prompts only: token-id prompts cannot be checked")
    stream: bool | None = False
    n: int | None = Field(None, ge=1, le=16)
    stream_options: StreamOptions | None = None


class EmbeddingRequest(_Open):
    model: str = Field(min_length=1, max_length=256)
    input: str | list[str] = Field(description="text inputs only: token-id inputs cannot be checked")
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: int | None = Field(None, ge=1, le=65536)
    user: str | None = None


class AnthropicBlock(_Open):
    type: str = Field(min_length=1, max_length=64)


class AnthropicMessage(_Open):
    role: Literal["user", "assistant"]
    content: str | list[AnthropicBlock]


class AnthropicMessagesRequest(_Open):
    """POST /v1/messages (Anthropic Messages API)."""

    model: str = Field(min_length=1, max_length=256)
    max_tokens: int = Field(ge=1)
    messages: list[AnthropicMessage] = Field(min_length=1)
    system: str | list[AnthropicBlock] | None = None
    stream: bool | None = False
    tools: list[dict[str, Any]] | None = None
    stop_sequences: list[str] | None = None


class ResponseItem(_Open):
    type: str | None = Field(None, max_length=64)
    role: str | None = Field(None, max_length=64)


class ResponsesRequest(_Open):
    """POST /v1/responses (OpenAI Responses API), translated to chat completions."""

    model: str = Field(min_length=1, max_length=256)
    input: str | list[ResponseItem]
    instructions: str | None = None
    stream: bool | None = False
    max_output_tokens: int | None = Field(None, ge=1)
    tools: list[dict[str, Any]] | None = None


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | None = None
    request_id: str | None = None
    categories: list[str] | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class LicenceCard(BaseModel):
    id: str
    name: str
    terms_url: str | None = None
    use: list[str] = []


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str
    licence: LicenceCard | None = None  # issue 18: the model's declared licence (null: none declared)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


def _finite(s: str) -> float:
    v = float(s)
    if not math.isfinite(v):
        raise ValueError("number out of range")
    return v


def _no_constant(s: str) -> Any:
    raise ValueError(f"{s} is not valid JSON")


def parse_body(raw: bytes) -> Any:
    """Strict JSON: valid UTF-8, no NaN/Infinity, finite numbers, bounded depth. 400 otherwise."""
    if not raw.strip():
        raise ProxyError(400, "The request body is empty: send a JSON object.", "invalid_json")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ProxyError(400, "The request body is not valid UTF-8.", "invalid_encoding") from None
    try:
        return json.loads(text, parse_float=_finite, parse_constant=_no_constant)
    except RecursionError:
        raise ProxyError(400, "The request body is nested too deeply.", "invalid_json") from None
    except ValueError as exc:
        raise ProxyError(400, f"We could not parse the JSON body of your request: {str(exc)[:200]}",
                         "invalid_json") from None


_UNION_TAGS = {"str", "int", "float", "bool", "none", "ContentPart", "StreamOptions", "ChatMessage", "AnthropicBlock",
               "AnthropicMessage", "ResponseItem"}


def validate(model: type[BaseModel], data: Any) -> Any:
    if not isinstance(data, dict):
        raise ProxyError(400, "The request body must be a JSON object.", "invalid_request")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in _UNION_TAGS or "[" in str(p)))
        msg = err["msg"]
        if err["type"] == "missing":
            msg = f"Missing required parameter: '{loc}'."
        else:
            msg = f"Invalid value for '{loc}': {msg}."
        raise ProxyError(400, msg, "invalid_value" if err["type"] != "missing" else "missing_required_parameter",
                         param=loc) from None
