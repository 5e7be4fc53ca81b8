"""Text leaves of JSON-shaped values: find every string a model or a caller will read, and put checked
strings back, without mutating the original.

A *path* is a tuple of keys: a str for a mapping key, an int for a list position, and ("#", k) for the
element of a list of deltas whose `index` field is k (streamed tool calls are merged by that index, not
by position). Paths are plain tuples so that they can key dictionaries (one stream window a path).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping
from typing import Any, Union

Key = Union[str, int, tuple[str, int]]
Path = tuple[Key, ...]


def to_plain(obj: Any) -> Any:
    """A JSON-shaped copy of `obj`: SDK (pydantic) objects dumped with their extra fields, dataclasses
    as dicts; dicts and lists copied shallowly-recursively so writes never reach the caller's object."""
    dump = getattr(obj, "model_dump", None)
    if callable(dump) and not isinstance(obj, type):
        return dump(mode="json", exclude_unset=True, warnings=False)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    return obj


def from_plain(template: Any, data: Any) -> Any:
    """`data` in the shape of `template`: the same SDK type when `template` is one (validated, so the
    caller gets the objects it expects), else the plain value."""
    cls = type(template)
    validate = getattr(cls, "model_validate", None)
    if callable(validate) and not isinstance(template, Mapping):
        try:
            return validate(data)
        except ValueError:  # a shape the SDK's types do not declare (content parts in an answer, audio
            construct = getattr(cls, "construct", None) or cls.model_construct  # without its data): keep it as is
            return construct(**data)
    return data


def leaves(obj: Any, *, skip: frozenset[str] = frozenset(), prefix: Path = ()) -> Iterator[tuple[Path, str]]:
    """(path, text) for every non-empty string under `obj`, mapping keys in sorted order. Values under a key in
    `skip` are not visited (identifiers, enums, binary payloads)."""
    if isinstance(obj, str):
        if obj:
            yield prefix, obj
    elif isinstance(obj, Mapping):
        for k in sorted(obj, key=str):  # one order whatever the source (JSON text or an SDK model's fields)
            if k not in skip:
                yield from leaves(obj[k], skip=skip, prefix=(*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            key: Key = ("#", v["index"]) if isinstance(v, Mapping) and isinstance(v.get("index"), int) else i
            yield from leaves(v, skip=skip, prefix=(*prefix, key))


def _find(items: list[Any], key: Key) -> int:
    if isinstance(key, tuple):
        for i, v in enumerate(items):
            if isinstance(v, Mapping) and v.get("index") == key[1]:
                return i
        raise KeyError(key)
    return key


def put(obj: Any, path: Path, value: Any) -> Any:
    """A copy of `obj` with the leaf at `path` set to `value` (only the containers on the path are copied)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(obj, Mapping):
        out = dict(obj)
        out[head] = put(obj[head], rest, value)  # type: ignore[index]
        return out
    if isinstance(obj, list):
        out_l = list(obj)
        i = _find(out_l, head)
        out_l[i] = put(out_l[i], rest, value)
        return out_l
    raise KeyError(path)


def build(path: Path, value: Any) -> Any:
    """The smallest value that holds `value` at `path`: a delta fragment (("#", k) becomes a one-element
    list whose element carries `index: k`)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    inner = build(rest, value)
    if isinstance(head, tuple):
        return [{"index": head[1], **inner}] if isinstance(inner, dict) else [inner]
    if isinstance(head, int):
        return [inner]
    return {head: inner}


def merge(a: Any, b: Any) -> Any:
    """Deep-merge two delta fragments: dicts by key, lists of indexed elements by `index`, strings joined."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if k in out else v
        return out
    if isinstance(a, list) and isinstance(b, list):
        out_l = list(a)
        for item in b:
            idx = item.get("index") if isinstance(item, dict) else None
            pos = next((i for i, x in enumerate(out_l) if isinstance(x, dict) and idx is not None
                        and x.get("index") == idx), None)
            if pos is None:
                out_l.append(item)
            else:
                out_l[pos] = merge(out_l[pos], item)
        return out_l
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    return b


def without(obj: Any, paths: set[Path], prefix: Path = ()) -> Any:
    """`obj` with the leaves at `paths` removed; containers stay (an emptied `function: {}` of a streamed
    tool call keeps the shape clients expect)."""
    if prefix in paths:
        return _GONE
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            nv = without(v, paths, (*prefix, k))
            if nv is not _GONE:
                out[k] = nv
        return out
    if isinstance(obj, list):
        out_l = []
        for i, v in enumerate(obj):
            key: Key = ("#", v["index"]) if isinstance(v, Mapping) and isinstance(v.get("index"), int) else i
            nv = without(v, paths, (*prefix, key))
            if nv is not _GONE:
                out_l.append(nv)
        return out_l
    return obj


_GONE = object()


def strip(obj: Any, paths: set[Path]) -> Any:
    """`without`, but an emptied top level comes back as an empty dict."""
    out = without(obj, paths)
    return {} if out is _GONE else out
