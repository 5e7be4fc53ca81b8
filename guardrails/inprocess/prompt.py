"""Prompts in the caller's shape: a string, or messages (dicts, SDK objects, dataclasses), read with the
wire codec (every text field: content and its parts, names, refusals, earlier tool calls) and rebuilt
in the same shape with the checked texts."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from guardrails.wire import openai as wire
from guardrails.wire.fields import Path as FieldPath
from guardrails.wire.fields import put, to_plain

# ------------------------------------------------------------------------------- prompts and messages


def field_of(obj: Any, key: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(key)
    return getattr(obj, key, None)


def has_field(obj: Any, key: str) -> bool:
    return key in obj if isinstance(obj, Mapping) else hasattr(obj, key)


def is_message(obj: Any) -> bool:
    return has_field(obj, "content") and (has_field(obj, "role") or isinstance(obj, Mapping))


def replace_field(obj: Any, key: str, value: Any) -> Any:
    """A copy of `obj` with `key` set to `value`; the caller's object is never mutated."""
    if isinstance(obj, Mapping):
        out = dict(obj)
        out[key] = value
        return out
    model_copy = getattr(obj, "model_copy", None)  # pydantic v2 (OpenAI SDK types)
    if callable(model_copy):
        return model_copy(update={key: value})
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{key: value})
    dup = copy.copy(obj)
    setattr(dup, key, value)
    return dup


_MESSAGE_FIELDS = ("role", "content", "name", "tool_calls", "function_call", "refusal", "tool_call_id")


def plain_message(m: Any, i: int) -> dict[str, Any]:
    """A message as plain JSON (dicts, SDK objects and dataclasses alike; other objects by attribute)."""
    plain = to_plain(m)
    if isinstance(plain, dict) and ("content" in plain or "tool_calls" in plain or "function_call" in plain):
        return plain
    if isinstance(plain, dict) or not has_field(m, "content"):  # never let an unreadable message through unchecked
        raise TypeError(f"message {i} ({type(m).__name__}) has no 'content': messages are dicts or objects "
                        "with role/content")
    return {k: to_plain(getattr(m, k)) for k in _MESSAGE_FIELDS if getattr(m, k, None) is not None}


@dataclasses.dataclass(frozen=True)
class Prompt:
    """The texts of a prompt (a string, or messages: dicts or SDK objects, with every text field the
    wire codec reads: content and its text parts, names, refusals, earlier tool calls and their
    arguments), and how to rebuild the prompt in the caller's own shape with other texts."""

    value: Any
    texts: tuple[str, ...]
    slots: tuple[tuple[int, FieldPath], ...]  # (message index, path in the message); (-1, ()) = the prompt is a str
    kind: Literal["str", "list", "tuple", "one"]
    roles: tuple[str | None, ...] = ()

    @classmethod
    def read(cls, value: Any) -> Prompt:
        if isinstance(value, str):
            return cls(value, (value,), ((-1, ()),), "str", ("user",))
        if isinstance(value, (bytes, bytearray)):
            raise TypeError("the prompt must be text (str), not bytes")
        if isinstance(value, Mapping) or is_message(value):  # one message (pydantic models are iterable too)
            texts, slots, roles = cls._read_messages([value])
            return cls(value, texts, slots, "one", roles)
        if isinstance(value, Iterable):
            kind: Literal["list", "tuple"] = "tuple" if isinstance(value, tuple) else "list"
            items = list(value)
            texts, slots, roles = cls._read_messages(items)
            return cls(items, texts, slots, kind, roles)
        raise TypeError(f"cannot read a prompt from {type(value).__name__}: pass a string or a list of messages "
                        "(dicts or objects with role/content), or name the argument with input_arg=")

    @staticmethod
    def _read_messages(items: Sequence[Any]) -> tuple[tuple[str, ...], tuple[tuple[int, FieldPath], ...],
                                                       tuple[str | None, ...]]:
        texts: list[str] = []
        slots: list[tuple[int, FieldPath]] = []
        roles: list[str | None] = []
        for i, m in enumerate(items):
            if isinstance(m, str):  # a list of plain strings
                texts.append(m)
                slots.append((i, ()))
                roles.append("user")
                continue
            if isinstance(m, (bytes, bytearray)):
                raise TypeError(f"message {i}: cannot read bytes")
            plain = plain_message(m, i)
            content = plain.get("content")
            if content is not None and not isinstance(content, (str, list)):
                raise TypeError(f"message {i}: cannot read its content ({type(content).__name__})")
            found = wire.read_request({"messages": [plain]}, "chat")
            for path, text, role in zip(found.paths, found.texts, found.roles):
                texts.append(text)
                slots.append((i, path[2:]))
                roles.append(role)
        return tuple(texts), tuple(slots), tuple(roles)

    def rebuild(self, texts: Sequence[str]) -> Any:
        """The prompt with its texts replaced, in the caller's shape (unchanged messages are shared)."""
        if len(texts) != len(self.texts):
            raise ValueError("text count mismatch")
        if self.kind == "str":
            return texts[0]
        items: list[Any] = [self.value] if self.kind == "one" else list(self.value)
        changed: dict[int, Any] = {}
        for (i, path), old, new in zip(self.slots, self.texts, texts):
            if new == old:
                continue
            if not path:
                items[i] = new
                continue
            base = changed[i] if i in changed else plain_message(items[i], i)
            changed[i] = put(base, path, new)
        for i, plain in changed.items():
            items[i] = in_shape(items[i], plain)
        if self.kind == "one":
            return items[0]
        return tuple(items) if self.kind == "tuple" else items


def in_shape(original: Any, plain: dict[str, Any]) -> Any:
    """`plain` (a message) in the shape of `original`: a dict, the same SDK type, or a copy of the object
    with its changed fields replaced."""
    if isinstance(original, Mapping):
        return {**original, **{k: v for k, v in plain.items() if k in original or k in _MESSAGE_FIELDS}}
    if callable(getattr(type(original), "model_validate", None)):
        return type(original).model_validate(plain)
    out = original
    for key in _MESSAGE_FIELDS:
        if key in plain and has_field(original, key) and to_plain(field_of(original, key)) != plain[key]:
            out = replace_field(out, key, plain[key])
    return out
