"""The OpenAI wire format, read and written in one place for every way in (proxy, @guard, wrap_openai).

Requests (`chat/completions` and `completions`), answers and stream chunks are handled as plain JSON
values; SDK objects go through `fields.to_plain` / `fields.from_plain` at the edges.

The rule for requests: **every string the upstream receives is checked**, except the values of the
control keys listed in REQUEST_CONTROL / MESSAGE_CONTROL / SCHEMA_CONTROL (identifiers, enums, numbers,
binary payloads such as images and audio, which no text detector reads and which pass through as they
are), and the end-user identifiers in HASHED_IDS, which have no meaning to the model and are forwarded
as a keyed hash (stable per value, so the upstream's per-user abuse tracking still works).
Unknown fields are checked like any text.

The rule for answers: **every string the caller receives is checked** (content, refusal, reasoning,
tool-call names and arguments, legacy function_call, audio transcripts, annotations, and any field the
API adds later), except ANSWER_CONTROL values. Token `logprobs` are always dropped (they spell out text
the checks may have changed), and audio `data` is dropped whenever the answer is changed or refused
(its transcript was checked; the audio itself cannot be redacted) and always in streams.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from guardrails.wire.fields import Path, leaves, put

Kind = Literal["chat", "completions"]

REQUEST_CONTROL = frozenset({
    "model", "stream", "n", "temperature", "top_p", "max_tokens", "max_completion_tokens", "presence_penalty",
    "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "seed", "service_tier", "parallel_tool_calls",
    "stream_options", "modalities", "reasoning_effort", "store", "tool_choice", "function_call", "audio",
    "verbosity", "best_of", "echo", "top_k", "min_p", "repetition_penalty",
})
HASHED_IDS = frozenset({"user", "safety_identifier", "prompt_cache_key"})
MESSAGE_CONTROL = frozenset({"role", "type", "tool_call_id", "id", "index", "image_url", "input_audio", "file"})
SCHEMA_CONTROL = frozenset({"type", "name", "format", "pattern", "$ref", "required", "strict",
                            "additionalProperties"})
ANSWER_CONTROL = frozenset({"role", "type", "id", "index", "finish_reason", "logprobs", "expires_at",
                            "object", "created", "model", "system_fingerprint", "service_tier", "usage",
                            "start_index", "end_index"})


def is_audio_data(path: Path) -> bool:
    """The base64 audio of an answer (`audio.data`): not text; its transcript is what gets checked."""
    return len(path) >= 2 and path[-1] == "data" and path[-2] == "audio"


def answer_leaves(obj: Any, prefix: Path = ()) -> list[tuple[Path, str]]:
    """The text leaves of an answer or a chunk's choice: everything but control values and audio data."""
    return [(p, t) for p, t in leaves(obj, skip=ANSWER_CONTROL, prefix=prefix) if not is_audio_data(p)]
_SCHEMA_FIELDS = ("tools", "functions", "response_format")


# ----------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class RequestTexts:
    """The texts of a request that detectors see, where each came from, and who wrote it."""

    texts: tuple[str, ...]
    paths: tuple[Path, ...]
    roles: tuple[str | None, ...]


def _message_role(msg: Any, path: Path) -> str | None:
    role = msg.get("role") if isinstance(msg, dict) else None
    if "tool_calls" in path or "function_call" in path:
        return "assistant"  # the model wrote its earlier tool calls
    return role if isinstance(role, str) else None


def read_request(body: dict[str, Any], kind: Kind, *, pass_fields: frozenset[str] | Sequence[str] = ()) -> RequestTexts:
    """Every checked text of a request; `pass_fields` (the policy's wire.pass_fields) are not read."""
    texts: list[str] = []
    paths: list[Path] = []
    roles: list[str | None] = []

    def add(found: Any, role: str | Callable[[Path], str | None] | None) -> None:
        for path, text in found:
            texts.append(text)
            paths.append(path)
            roles.append(role(path) if callable(role) else role)

    for key, value in body.items():
        if key in REQUEST_CONTROL or key in HASHED_IDS or key in pass_fields:
            continue
        if key == "messages" and kind == "chat" and isinstance(value, list):
            for i, msg in enumerate(value):
                add(leaves(msg, skip=MESSAGE_CONTROL, prefix=("messages", i)),
                    lambda p, m=msg: _message_role(m, p))
        elif key in ("prompt", "suffix"):
            add(leaves(value, prefix=(key,)), "user")
        elif key == "prediction":
            add(leaves(value, skip=MESSAGE_CONTROL, prefix=(key,)), "assistant")
        elif key in _SCHEMA_FIELDS:
            add(leaves(value, skip=SCHEMA_CONTROL, prefix=(key,)), "developer")
        else:  # stop sequences, metadata values, and any field this version does not know
            add(leaves(value, prefix=(key,)), "user")
    return RequestTexts(tuple(texts), tuple(paths), tuple(roles))


def hash_id(key: bytes, value: str) -> str:
    return "tw-" + hmac.new(key or b"trustwall", value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()[:32]


def write_request(body: dict[str, Any], found: RequestTexts, texts: Sequence[str], *, hash_key: bytes) -> dict[str, Any]:
    """`body` with the checked texts put back and end-user identifiers hashed (only changed paths copied)."""
    out: Any = dict(body)
    for key in HASHED_IDS:
        if isinstance(out.get(key), str) and out[key]:
            out[key] = hash_id(hash_key, out[key])
    for path, old, new in zip(found.paths, found.texts, texts):
        if new != old:
            out = put(out, path, new)
    return out


# ------------------------------------------------------------------------------------------ answers


@dataclass(frozen=True)
class AnswerTexts:
    texts: tuple[str, ...]
    paths: tuple[Path, ...]


class MalformedAnswer(ValueError):
    """An answer with no list of choice objects."""


def read_answer(resp: dict[str, Any], kind: Kind) -> AnswerTexts:
    """Every text of an answer: each choice's message (or text) and every other field, in order."""
    choices = resp.get("choices") if isinstance(resp, dict) else None
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise MalformedAnswer("the answer has no list of choices")
    found = answer_leaves(resp)
    return AnswerTexts(tuple(t for _, t in found), tuple(p for p, _ in found))


def is_arguments(path: Path) -> bool:
    """Tool-call and function-call arguments are JSON text: restored values must be JSON-escaped."""
    return bool(path) and path[-1] == "arguments"


def json_escape(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)[1:-1]


def write_answer(resp: dict[str, Any], found: AnswerTexts, texts: Sequence[str], *, changed: bool,
                 restore: Callable[[str, Path], str] | None) -> dict[str, Any]:
    """The answer with checked texts put back, pseudonyms restored (`restore(text, path)`), token
    logprobs dropped, and audio data dropped when `changed` (the transcript differs from the audio)."""
    out: Any = resp
    for path, text in zip(found.paths, texts):
        out = put(out, path, restore(text, path) if restore is not None else text)
    choices = []
    for c in out.get("choices", []):
        c = dict(c)
        if c.get("logprobs") is not None:
            c["logprobs"] = None
        msg = c.get("message")
        if changed and isinstance(msg, dict) and isinstance(msg.get("audio"), dict) and "data" in msg["audio"]:
            c["message"] = {**msg, "audio": {k: v for k, v in msg["audio"].items() if k != "data"}}
        choices.append(c)
    return {**out, "choices": choices}


def refused_answer(resp: dict[str, Any] | None, kind: Kind, message: str, *, request_id: str,
                   model: str | None, created: int) -> dict[str, Any]:
    """The answer a caller gets when the output is withheld: every choice says `message` and nothing
    else of the model's answer (no tool calls, no other fields) survives."""
    n = len(resp.get("choices") or []) if isinstance(resp, dict) else 0
    choices = []
    for i in range(max(n, 1)):
        if kind == "chat":
            choices.append({"index": i, "finish_reason": "content_filter", "logprobs": None,
                            "message": {"role": "assistant", "content": message}})
        else:
            choices.append({"index": i, "finish_reason": "content_filter", "logprobs": None, "text": message})
    base = resp if isinstance(resp, dict) else {}
    out = {"id": base.get("id") or f"chatcmpl-{request_id}",
           "object": base.get("object") or ("chat.completion" if kind == "chat" else "text_completion"),
           "created": base.get("created") or created, "model": base.get("model") or model or "",
           "choices": choices}
    if isinstance(base.get("usage"), dict):
        out["usage"] = base["usage"]
    return out


UNCHECKED_PAYLOADS = ("image_url", "input_audio", "file")


def unchecked_parts(body: dict[str, Any]) -> tuple[tuple[str, int], ...]:
    """The non-text payloads of a request's messages that no text check reads and that are forwarded as
    they are (images, audio, files), counted by kind, for the audit record."""
    counts: dict[str, int] = {}

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                if k in UNCHECKED_PAYLOADS and x:
                    counts[k] = counts.get(k, 0) + 1
                else:
                    walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)

    walk(body.get("messages"))
    return tuple(sorted(counts.items()))


def usage(obj: Any) -> tuple[int | None, int | None]:
    u = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(u, dict):
        return None, None
    p, c = u.get("prompt_tokens"), u.get("completion_tokens")
    return (p if isinstance(p, int) else None), (c if isinstance(c, int) else None)


__all__ = ["AnswerTexts", "Kind", "MalformedAnswer", "RequestTexts", "hash_id", "is_arguments",
           "json_escape", "read_answer", "read_request", "refused_answer", "unchecked_parts", "usage",
           "write_answer", "write_request"]
