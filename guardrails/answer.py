"""Checking answers: the plain answer and its streamed chunks, for every way in.

`check_answer` checks every text of a (plain, JSON-shaped) answer and writes it back restored;
`ChunkGuard` does the same for a stream of chunks, one sliding window (`OutputStream`) per choice and
text field, so no byte of any field leaves before it has been checked: content, refusal, reasoning,
tool-call names and arguments, audio transcripts and fields added later all go through a window.
Only the control values of a chunk (role, ids, types, indexes, finish reasons, usage) pass at once.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Sequence
from typing import Any

from guardrails.streaming import OutputStream
from guardrails.types import Action, CallContext, Decision
from guardrails.vault import PLACEHOLDER_RE
from guardrails.wire import openai as wire
from guardrails.wire.fields import Path, build, merge, strip

_CHOICE_CONTROL = ("index", "finish_reason", "logprobs")


def _meaningful(control: dict[str, Any]) -> bool:
    """Whether a choice's control part says anything (a role, a tool call's id) beyond empty text."""
    for k, v in control.items():
        if k == "delta" and isinstance(v, dict):
            if any(dv not in (None, "", {}, []) for dv in v.values()):
                return True
        elif v not in (None, {}, [], ""):
            return True
    return False


class MalformedStream(ValueError):
    """An upstream chunk that is not a chunk: no list of choices, a choice that is not an object."""


def merge_decisions(decisions: Sequence[Decision]) -> Decision:
    """One decision for several windows (the most severe action wins; judgements and texts kept)."""
    if len(decisions) == 1:
        return decisions[0]
    first = decisions[0]
    return dataclasses.replace(
        first,
        action=max(d.action for d in decisions),
        judgements=tuple(j for d in decisions for j in d.judgements),
        texts=tuple(t for d in decisions for t in d.texts),
        timings=tuple(t for d in decisions for t in d.timings),
        message=next((d.message for d in decisions if d.message), None),
        errors=tuple(sorted({e for d in decisions for e in d.errors})),
    )


class Restore:
    """Puts back the pseudonyms this call's vault holds (for the categories the principal may see):
    plain in text, JSON-escaped in tool-call arguments. Placeholders the vault does not hold (typed by the
    caller, invented by the model) stay as they are."""

    _HOLD = re.compile(r"<[^<>]{0,62}$")

    def __init__(self, pipeline: Any, ctx: CallContext, *, enabled: bool = True):
        self._pipeline = pipeline
        self._ctx = ctx
        self._vault = ctx.vault if enabled else None
        self._allowed = pipeline.restore_allowed(ctx)
        self._pending: dict[Any, str] = {}

    @property
    def active(self) -> bool:
        return self._vault is not None and len(self._vault) > 0

    def _sub_json(self, m: re.Match[str]) -> str:
        hit = self._vault.lookup(m.group(1), m.group(2)) if self._vault is not None else None
        if hit is None or not self._allowed(hit[0]):
            return m.group(0)
        return wire.json_escape(hit[1])

    def text(self, text: str, path: Path = ()) -> str:
        if not self.active:
            return text
        if wire.is_arguments(path):
            return PLACEHOLDER_RE.sub(self._sub_json, text)
        return self._pipeline.restore(text, self._ctx)

    def feed(self, key: Any, fragment: str, path: Path) -> str:
        """Streamed arguments: hold back a placeholder split across fragments until it closes."""
        text = self._pending.pop(key, "") + fragment
        m = self._HOLD.search(text)
        if m:
            self._pending[key] = text[m.start():]
            text = text[:m.start()]
        return self.text(text, path)

    def flush(self, key: Any, path: Path) -> str:
        return self.text(self._pending.pop(key, ""), path)


async def check_answer(pipeline: Any, ctx: CallContext, resp: dict[str, Any], kind: wire.Kind, *,
                       restore: bool = True) -> tuple[Decision, dict[str, Any]]:
    """Output-check every text of a plain answer; the answer to send (refused when blocked)."""
    found = wire.read_answer(resp, kind)
    dec = await pipeline.check_output(list(found.texts), ctx)
    if dec.blocked:
        message = dec.message or pipeline.policy.messages.block_output
        return dec, wire.refused_answer(resp, kind, message, request_id=ctx.request_id, model=ctx.model,
                                        created=int(time.time()))
    rest = Restore(pipeline, ctx, enabled=restore)
    changed = dec.action >= Action.REDACT
    out = wire.write_answer(resp, found, dec.texts, changed=changed, restore=rest.text)
    return dec, out


class ChunkGuard:
    """Streamed chunks (plain JSON) in, chunks safe to send out. Feed it batches of upstream chunks (a
    batch's text is checked together, so a slow check means fewer, larger windows); `finish` at the
    end. When a check blocks, `blocked` holds the decision and nothing more is released."""

    def __init__(self, pipeline: Any, ctx: CallContext, kind: wire.Kind, *, restore: bool = True):
        self._p = pipeline
        self._ctx = ctx
        self.kind = kind
        self._restore_on = restore
        self._rest = Restore(pipeline, ctx, enabled=restore)
        self._streams: dict[tuple[int, Path], OutputStream] = {}
        self._finished: set[int] = set()
        self._seen: list[int] = []
        self.meta: dict[str, Any] = {}
        self.blocked: Decision | None = None
        self.tokens: tuple[int | None, int | None] = (None, None)

    # -- chunks out ---------------------------------------------------------------------------

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        m = self.meta
        obj: dict[str, Any] = {
            "id": m.get("id") or f"chatcmpl-{self._ctx.request_id}",
            "object": "chat.completion.chunk" if self.kind == "chat" else "text_completion",
            "created": m.get("created") or int(time.time()), "model": m.get("model") or self._ctx.model or "",
            "choices": choices}
        if m.get("system_fingerprint"):
            obj["system_fingerprint"] = m["system_fingerprint"]
        obj.update(extra)
        return obj

    def _choice(self, idx: int, body: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if self.kind == "chat":
            return {"index": idx, "delta": body.get("delta", {}), **{k: v for k, v in body.items() if k != "delta"},
                    "finish_reason": finish}
        return {"index": idx, "text": body.get("text", ""), **{k: v for k, v in body.items() if k != "text"},
                "finish_reason": finish, "logprobs": None}

    def refusal(self, message: str) -> list[dict[str, Any]]:
        idxs = sorted(set(self._seen) | {0})
        key = "delta" if self.kind == "chat" else "text"
        value: Any = {"content": message} if self.kind == "chat" else message
        return [self.chunk([self._choice(i, {key: value}, "content_filter") for i in idxs])]

    # -- chunks in ----------------------------------------------------------------------------

    def _stream(self, key: tuple[int, Path]) -> OutputStream:
        s = self._streams.get(key)
        if s is None:
            # arguments are restored JSON-escaped after the check, everything else by the window itself
            s = self._streams[key] = OutputStream(self._p, self._ctx,
                                                  restore=self._restore_on and not wire.is_arguments(key[1]))
        return s

    def _released(self, key: tuple[int, Path], text: str) -> str:
        return self._rest.feed(key, text, key[1]) if wire.is_arguments(key[1]) else text

    def _split(self, ch: dict[str, Any]) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
        body = {k: v for k, v in ch.items() if k not in _CHOICE_CONTROL}
        found = wire.answer_leaves(body)
        control = strip(body, {p for p, _ in found})
        delta = control.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("audio"), dict) and "data" in delta["audio"]:
            # streamed audio cannot be checked before it plays: only its (checked) transcript goes out
            control["delta"] = {**delta, "audio": {k: v for k, v in delta["audio"].items() if k != "data"}}
        if self.kind == "completions":
            control.pop("text", None)
        return control, found

    async def feed(self, events: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.blocked is not None:
            return []
        out: list[dict[str, Any]] = []
        pending: dict[tuple[int, Path], list[str]] = {}
        reasons: dict[int, str] = {}
        late: list[dict[str, Any]] = []
        for ev in events:
            if not isinstance(ev, dict):
                raise MalformedStream("a stream event is not an object")
            for k in ("id", "created", "model", "system_fingerprint"):
                if ev.get(k) is not None:
                    self.meta[k] = ev[k]
            p, c = wire.usage(ev)
            if p is not None or c is not None:
                self.tokens = (p, c)
            choices = ev.get("choices")
            if not isinstance(choices, list):
                raise MalformedStream("a stream event has no list of choices")
            if not choices:
                if ev.get("usage") is not None:
                    late.append(self.chunk([], usage=ev["usage"]))
                continue
            for ch in choices:
                if not isinstance(ch, dict):
                    raise MalformedStream("a stream choice is not an object")
                idx = ch.get("index", 0)
                idx = idx if isinstance(idx, int) else 0
                if idx not in self._seen:
                    self._seen.append(idx)
                control, found = self._split(ch)
                if _meaningful(control) and idx not in self._finished:
                    out.append(self.chunk([self._choice(idx, control)]))
                for path, text in found:
                    self._stream((idx, path))
                    pending.setdefault((idx, path), []).append(text)
                reason = ch.get("finish_reason")
                if reason and idx not in self._finished:
                    reasons[idx] = str(reason)
        by_choice: dict[int, Any] = {}
        for key, parts in pending.items():
            s = self._streams[key]
            released = await s.feed("".join(parts))
            if s.blocked:
                self.blocked = s.decision
                return out
            released = self._released(key, released)
            if released:
                frag = build(key[1], released)
                by_choice[key[0]] = merge(by_choice[key[0]], frag) if key[0] in by_choice else frag
        for idx, body in by_choice.items():
            out.append(self.chunk([self._choice(idx, body)]))
        for idx, reason in reasons.items():
            held = await self._close(idx)
            if held is None:
                return out
            if held:
                out.append(self.chunk([self._choice(idx, held)]))
            self._finished.add(idx)
            out.append(self.chunk([self._choice(idx, {}, reason)]))
        out.extend(late)
        return out

    async def _close(self, idx: int) -> dict[str, Any] | None:
        """Check and release what choice `idx` still holds; None when a check blocked."""
        body: dict[str, Any] = {}
        for key in [k for k in self._streams if k[0] == idx]:
            s = self._streams[key]
            tail = await s.finish()
            if s.blocked:
                self.blocked = s.decision
                return None
            if wire.is_arguments(key[1]):
                tail = self._rest.feed(key, tail, key[1]) + self._rest.flush(key, key[1])
            if tail:
                frag = build(key[1], tail)
                body = merge(body, frag) if body else frag
        return body

    async def finish(self) -> list[dict[str, Any]]:
        """The end of the upstream stream: check and release every choice still open."""
        out: list[dict[str, Any]] = []
        if self.blocked is not None:
            return out
        for idx in [i for i in self._seen if i not in self._finished]:
            held = await self._close(idx)
            if held is None:
                return out
            self._finished.add(idx)
            if held:
                out.append(self.chunk([self._choice(idx, held)]))
        return out

    def decision(self) -> Decision:
        if self.blocked is not None:
            return self.blocked
        decs = [s.decision for s in self._streams.values()]
        if not decs:
            decs = [OutputStream(self._p, self._ctx).decision]
        return merge_decisions(decs)
