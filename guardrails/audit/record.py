"""AuditRecord bodies: built from a CallRecord, privacy-safe by construction, canonically encoded.

Pure functions, no I/O. The body never holds a raw prompt, answer, PII value or secret:

- findings keep detector, category, score, span offsets, action and operator; evidence keeps only
  numbers, booleans and a few id-like keys (never free text);
- text is kept as the policy says: ``none``; ``redacted`` (the passed-on text, with *every* span any
  detector reported replaced by ``<CATEGORY>``, whether or not the policy redacted it for the model:
  flagged, routed, below-threshold and blocked spans included); ``hash`` (HMAC-SHA256 of each
  passed-on text under the hash key).
- restored pseudonyms never reach the audit: the output decision holds the answer *before* the vault
  restores placeholders, and that is the only output text read here.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from guardrails.types import Action, CallRecord, Decision, Judgement, Operator

TextMode = Literal["none", "redacted", "hash"]
GENESIS = "0" * 64
SCHEMA_VERSION = 1

# what Renderer writes for redact / hash / pseudonymise: <EMAIL_ADDRESS>, <PERSON_1>, <IBAN_CODE:9f2c...>
_PLACEHOLDER = re.compile(r"<([^<>\n]{1,80})>")
_SAFE_EVIDENCE_KEYS = frozenset({"source_id", "source", "recognizer", "rule", "pattern", "kind", "label", "model",
                                 "entity", "keep_last", "matched_span", "similarity", "window"})
_SEARCH = 8  # how far left of its computed place a replacement may start (grapheme widening)
_OPENERS = frozenset("([{\"'>")
_CLOSERS = frozenset(")]}\"'<,;.!?:")
_ID_LIKE = re.compile(r"^[A-Za-z0-9_.:/\-]{1,80}$")


# ------------------------------------------------------------------------------------------ encoding


def canonical(obj: Any) -> str:
    """The one JSON form that is hashed: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def entry_hash(body_text: str) -> str:
    """Hash of a stored record: sha256 over its canonical text (which carries `seq` and `prev`)."""
    return hashlib.sha256(body_text.encode("utf-8")).hexdigest()


def seal(body: dict[str, Any], seq: int, prev: str) -> tuple[str, str]:
    """Stamp chain position on a body; return (canonical text, hash)."""
    body["seq"] = seq
    body["prev"] = prev
    text = canonical(body)
    return text, entry_hash(text)


def iso_time(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_time(value: str | float | _dt.datetime | _dt.date) -> float:
    """A CLI/HTTP date (2026-11-23, 2026-11-23T10:00, ...Z, unix seconds) as unix seconds (UTC if naive)."""
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, _dt.datetime):
        dt = value
    elif isinstance(value, _dt.date):
        dt = _dt.datetime(value.year, value.month, value.day)
    else:
        s = str(value).strip()
        try:
            return float(s)
        except ValueError:
            pass
        try:
            dt = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not a date or time: {value!r} (use e.g. 2026-11-23 or 2026-11-23T10:00:00Z)") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=_dt.timezone.utc)
    return dt.timestamp()


# ------------------------------------------------------------------------------------- privacy: text


def _op_of(j: Judgement) -> Operator:
    return j.operator or Operator.REDACT


def _merge(spans: Iterable[tuple[int, int, Any]]) -> list[tuple[int, int, Any]]:
    out: list[tuple[int, int, Any]] = []
    for s, e, tag in sorted(spans, key=lambda x: (x[0], -x[1])):
        if out and s <= out[-1][1]:
            ps, pe, ptag = out[-1]
            out[-1] = (ps, max(pe, e), ptag)
        else:
            out.append((s, e, tag))
    return out


def _merge_regions(js: Sequence[Judgement]) -> list[tuple[int, int, Judgement, frozenset[str]]]:
    """Merged REDACT regions with every placeholder name their judgements could have rendered."""
    out: list[tuple[int, int, Judgement, set[str]]] = []
    for j in sorted(js, key=lambda j: (j.finding.span[0], -j.finding.span[1])):  # type: ignore[index]
        s, e = j.finding.span  # type: ignore[misc]
        cat = str(j.finding.category)
        names = {cat, re.sub(r"[^A-Za-z0-9]", "_", cat.upper()) or "ENTITY"}
        if out and s <= out[-1][1]:
            ps, pe, pj, pn = out[-1]
            out[-1] = (ps, max(pe, e), pj, pn | names)
        else:
            out.append((s, e, j, names))
    return [(s, e, j, frozenset(n)) for s, e, j, n in out]


def _placeholder_at(text: str, pos: int, names: frozenset[str]) -> re.Match[str] | None:
    """A replacement the Renderer could have written for one of `names`, starting at `pos`."""
    m = _PLACEHOLDER.match(text, pos)
    if m is None:
        return None
    inner = m.group(1)
    name = inner.split(":", 1)[0] if ":" in inner else inner
    if name in names or re.sub(r"_\d+$", "", name) in names:
        return m
    return None


def _word(text: str, s: int, e: int, widen: bool) -> tuple[int, int]:
    """Widen a cut to the whole whitespace-delimited word(s) it touches (when positions may drift)."""
    if not widen:
        return s, e
    while s > 0 and not text[s - 1].isspace() and text[s - 1] not in _OPENERS:
        s -= 1
    while e < len(text) and not text[e].isspace() and text[e] not in _CLOSERS:
        e += 1
    return s, e


def safe_text(text: str, judgements: Sequence[Judgement], blocked: bool = False) -> str | None:
    """The passed-on `text` with every reported span replaced by ``<CATEGORY>``.

    `judgements` are those of this one text, with spans in the coordinates of the text the detectors
    read. The REDACT spans may already be rewritten in `text` (placeholders, masks) or not (a blocked
    call passes nothing on and keeps the original); each is recognised at its shifted position. Every
    other span (flagged, routed, allowed below threshold) is mapped through those shifts and replaced.
    Returns None (text withheld) when a spanless redaction was not applied.

    `blocked`: the decision blocked, so the redactions may not have been applied at all (the pipeline
    passes nothing on and keeps the original) or only partly (a stream released redacted text before
    a later window blocked). Both readings are cut then: their union is safe either way.
    """
    redacts = [j for j in judgements if j.action is Action.REDACT]
    others = [j for j in judgements if j.action is not Action.REDACT and j.finding.span is not None]
    if any(j.finding.span is None for j in redacts):
        # a whole-text redaction: either applied (the text is one placeholder) or not (withhold)
        return text if _PLACEHOLDER.fullmatch(text) else None
    if not redacts and not others:
        return text
    regions = _merge_regions(redacts)
    # Walk the REDACT regions: find each at its shifted position and learn the shift it introduces.
    # The pipeline widens spans to whole grapheme clusters, which can move a replacement a few code
    # points left of where the raw span says (found by a short leftward search) and end it a few
    # points later (not visible here: later positions may then be computed slightly too far right).
    # Cuts after an applied region are therefore widened left to the start of their word, and cuts of
    # unapplied regions to its end, which absorbs that drift.
    starts: list[int] = []  # original start of each region
    table: list[tuple[int, int, int, int]] = []  # (orig_s, orig_e, new_s, new_e)
    cut: list[tuple[int, int, str, bool]] = []  # spans of `text` to replace, category, drift possible
    shift = 0
    last_end = 0
    drift = False
    for s, e, j, names in regions:
        p = s + shift
        m = _placeholder_at(text, p, names) if p >= last_end else None
        d = 1
        while m is None and d <= _SEARCH and p - d >= last_end:
            m = _placeholder_at(text, p - d, names)
            if m is not None and m.end() <= p:  # a look-alike in the text before the span, not its replacement
                m = None
            d += 1
        if m is not None:  # applied: <CAT>, <CAT_1>, <CAT:hash>; already safe
            ns, ne = m.start(), m.end()
        else:  # a mask (same length) or not applied (a blocked call): cut it
            ns, ne = max(p, last_end), min(len(text), p + (e - s))
            if ns < len(text):
                cut.append((ns, ne, j.finding.category, True))
        table.append((s, e, ns, ne))
        starts.append(s)
        shift, last_end = ne - e, ne
        drift = drift or m is not None

    def to_new(x: int, side: int) -> tuple[int, bool]:
        # side 0: a span start (regions starting at x count); side 1: a span end (they do not)
        i = (bisect.bisect_right(starts, x) if side == 0 else bisect.bisect_left(starts, x)) - 1
        if i < 0:
            return x, False
        s, e, ns, ne = table[i]
        if (side == 0 and x < e) or (side == 1 and x <= e):
            return (ns if side == 0 else ne), True  # inside a region: widen to the whole replacement
        return x + (ne - e), True

    for j in others:
        s, e = j.finding.span  # type: ignore[misc]
        (ns, moved), (ne, _) = to_new(s, 0), to_new(e, 1)
        ns, ne = max(0, min(ns, len(text))), max(0, min(ne, len(text)))
        if ne > ns:
            cut.append((ns, ne, j.finding.category, drift and moved))
    cut = [(*_word(text, s, e, widen), c) for s, e, c, widen in cut]
    if blocked:  # the other reading: nothing applied, every span where the detector saw it
        for j in judgements:
            if j.finding.span is not None:
                s0, e0 = max(0, min(j.finding.span[0], len(text))), max(0, min(j.finding.span[1], len(text)))
                if e0 > s0:
                    cut.append((s0, e0, j.finding.category))
    if not cut:
        return text
    if not text.isascii():
        from guardrails.spans import grapheme_boundaries, snap

        bounds = grapheme_boundaries(text)
        cut = [(*snap((s, e), text, bounds), c) for s, e, c in cut]
    parts: list[str] = []
    pos = 0
    for s, e, cat in _merge(cut):  # type: ignore[arg-type]
        if s < pos:
            continue
        parts.append(text[pos:s])
        parts.append(f"<{re.sub(r'[^A-Za-z0-9_]', '_', str(cat).upper()) or 'ENTITY'}>")
        pos = e
    parts.append(text[pos:])
    return "".join(parts)


def decision_texts(dec: Decision | None, mode: TextMode, hash_key: bytes) -> list[str | None] | None:
    """The texts of one stage as the audit keeps them. None for a text = withheld. When a check of the
    stage did not complete (error, timeout: listed in the record's `detector_errors`) nothing it would
    have found can be cut, so "redacted" keeps no text of that stage at all (hash mode keeps hashes)."""
    if dec is None or mode == "none":
        return None
    if mode == "redacted" and dec.errors:
        return [None for _ in dec.texts]
    if mode == "hash":
        return [hmac.new(hash_key, t.encode("utf-8"), hashlib.sha256).hexdigest() for t in dec.texts]
    by_msg: dict[int, list[Judgement]] = {}
    for j in dec.judgements:
        idx = j.finding.message_index
        if idx is None:
            if len(dec.texts) == 1:
                idx = 0
            else:
                continue  # about the whole request (a detector error): no span to cut
        by_msg.setdefault(idx, []).append(j)
    return [safe_text(t, by_msg.get(i, ()), dec.action is Action.BLOCK) for i, t in enumerate(dec.texts)]


# ---------------------------------------------------------------------------------- privacy: findings


def _safe_evidence(evidence: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not isinstance(evidence, dict):
        try:
            evidence = dict(evidence)
        except Exception:  # noqa: BLE001
            return out
    for k, v in evidence.items():
        key = str(k)
        if isinstance(v, bool):
            out[key] = v
        elif isinstance(v, (int, float)) and v == v and abs(v) != float("inf"):
            out[key] = round(v, 6) if isinstance(v, float) else v
        elif key in _SAFE_EVIDENCE_KEYS and isinstance(v, str) and _ID_LIKE.match(v):
            out[key] = v
        elif key in _SAFE_EVIDENCE_KEYS and isinstance(v, (list, tuple)) and len(v) <= 4 \
                and all(isinstance(x, int) and not isinstance(x, bool) for x in v):
            out[key] = list(v)
    return out


def _finding(stage: str, j: Judgement) -> dict[str, Any]:
    f = j.finding
    return {
        "stage": stage,
        "detector": f.detector,
        "category": f.category,
        "score": round(float(f.score), 6),
        "span": [int(f.span[0]), int(f.span[1])] if f.span is not None else None,
        "message_index": f.message_index,
        "action": j.action.label,
        "operator": j.operator.value if j.operator else None,
        "rule": j.rule,
        "evidence": _safe_evidence(f.evidence),
    }


def _short(value: str | None, limit: int = 200) -> str | None:
    return None if value is None else str(value)[:limit]


# ------------------------------------------------------------------------------------------- the body


def build_body(rec: CallRecord, *, policy_id: str, policy_version: str, text_mode: TextMode,
               hash_key: bytes) -> dict[str, Any]:
    """The audit body of one guarded call (without `seq`/`prev`, which the sink stamps on append)."""
    findings: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    categories: set[str] = set()
    errors: list[str] = []
    for dec in (rec.input, rec.output):
        if dec is None:
            continue
        findings.extend(_finding(dec.stage, j) for j in dec.judgements)
        checks.extend({"stage": t.stage, "detector": t.detector, "ms": round(float(t.ms), 3), "status": t.status}
                      for t in dec.timings)
        categories.update(dec.categories)
        errors.extend(f"{dec.stage}:{e}" for e in dec.errors)
    pid = policy_id or (rec.input.policy_id if rec.input else "")
    pver = policy_version or (rec.input.policy_version if rec.input else "")
    body = {
        "v": SCHEMA_VERSION,
        "id": rec.request_id,
        "time": iso_time(rec.started_at),
        "ts": round(float(rec.started_at), 6),
        "principal": {"id": rec.principal.id, "role": rec.principal.role},
        "route": rec.route,
        "upstream": rec.upstream,
        "model": rec.model,
        "policy": {"id": pid, "version": pver},
        "final": Action(rec.final_action).label,
        "actions": {"input": rec.input.action.label if rec.input else None,
                    "output": rec.output.action.label if rec.output else None},
        "categories": sorted(categories),
        "findings": findings,
        "route_rule": _short(rec.input.route_rule) if rec.input else None,
        "detector_errors": errors,
        "status": rec.status,
        "error": _short(rec.error),
        "streamed": bool(rec.streamed),
        "latency_ms": {
            "total": None if rec.total_ms is None else round(float(rec.total_ms), 3),
            "upstream": None if rec.upstream_ms is None else round(float(rec.upstream_ms), 3),
            "checks": checks,
        },
        "tokens": {"prompt": rec.prompt_tokens, "completion": rec.completion_tokens},
        "text": {
            "mode": text_mode,
            "input": decision_texts(rec.input, text_mode, hash_key),
            "output": decision_texts(rec.output, text_mode, hash_key),
        },
    }
    # Optional keys (issue 18), present only when set, so older records keep their exact form.
    if rec.experiment is not None:
        body["experiment"] = {"name": _short(rec.experiment, 64), "variant": _short(rec.variant, 140)}
    if rec.licence is not None:
        body["licence"] = _short(rec.licence, 100)
    if rec.unchecked:  # issue 17: non-text parts (images, audio, files) forwarded without a check
        body["unchecked"] = {_short(k, 64): int(n) for k, n in rec.unchecked}
    return body


def index_columns(body: dict[str, Any]) -> tuple[str, float, str, str, str | None]:
    """(id, ts, principal id, final action, model): the columns sinks index for filtering."""
    return body["id"], float(body["ts"]), body["principal"]["id"], body["final"], body.get("model")
