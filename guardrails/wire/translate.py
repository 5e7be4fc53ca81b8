"""What the translating codecs (Anthropic Messages, Responses) share: the error they raise for a
request they cannot translate, and the state of a streamed answer rebuilt from checked chat chunks."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


class Untranslatable(ValueError):
    """A request part with no counterpart in the chat shape the checks read (the route answers 400)."""

    def __init__(self, message: str, code: str = "unsupported_parameter", param: str | None = None):
        super().__init__(message)
        self.code = code
        self.param = param


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else ""


def parse_args(arguments: str) -> Any:
    """Tool-call arguments (JSON text) as a value; text that is not JSON is kept under `_raw`."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {"_raw": arguments}
    return value if isinstance(value, dict) else {"_value": value}


@dataclass
class ToolCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass
class StreamState:
    """A streamed answer as the checked chat chunks have built it so far (choice 0 only: Anthropic
    Messages and Responses have one answer)."""

    id: str | None = None
    model: str | None = None
    text: str = ""
    finish: str | None = None
    tools: dict[int, ToolCall] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def take(self, chunk: dict[str, Any]) -> tuple[str, list[int]]:
        """Fold one chat chunk in; the new text of choice 0 and the tool calls it touched."""
        if isinstance(chunk.get("id"), str) and self.id is None:
            self.id = chunk["id"]
        if isinstance(chunk.get("model"), str) and chunk["model"]:
            self.model = chunk["model"]
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            p, c = usage.get("prompt_tokens"), usage.get("completion_tokens")
            self.prompt_tokens = p if isinstance(p, int) else self.prompt_tokens
            self.completion_tokens = c if isinstance(c, int) else self.completion_tokens
        new, touched = "", []
        for ch in chunk.get("choices") or []:
            if not isinstance(ch, dict) or ch.get("index", 0) != 0:
                continue
            delta = ch.get("delta") if isinstance(ch.get("delta"), dict) else {}
            for key in ("content", "refusal"):
                new += text_of(delta.get(key))
            for tc in delta.get("tool_calls") or []:
                if not isinstance(tc, dict):
                    continue
                k = tc.get("index", 0) if isinstance(tc.get("index"), int) else 0
                call = self.tools.setdefault(k, ToolCall())
                call.id = call.id or text_of(tc.get("id"))
                fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
                call.name += text_of(fn.get("name"))
                call.arguments += text_of(fn.get("arguments"))
                touched.append(k)
            if ch.get("finish_reason"):
                self.finish = str(ch["finish_reason"])
        self.text += new
        return new, touched


def chat_message(resp: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Choice 0's message of a chat answer and its finish reason."""
    choices = resp.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    msg = first.get("message") if isinstance(first.get("message"), dict) else {}
    return msg, first.get("finish_reason")


def chat_usage(resp: dict[str, Any]) -> tuple[int, int]:
    u = resp.get("usage") if isinstance(resp.get("usage"), dict) else {}
    p, c = u.get("prompt_tokens"), u.get("completion_tokens")
    return (p if isinstance(p, int) else 0), (c if isinstance(c, int) else 0)


def image_url_part(url: str) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": url}}


__all__ = ["StreamState", "ToolCall", "Untranslatable", "chat_message", "chat_usage", "image_url_part", "parse_args",
           "text_of"]
