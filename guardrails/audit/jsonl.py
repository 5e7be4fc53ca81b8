"""JSONL file sink: one line per record (canonical body plus its hash), signed marks inline.

Line kinds: the header ``{"trustwall_audit":1,"chain":...}``; records (they carry ``seq``); marks
``{"mark":{...signed payload...},"sig":...}``. Appends hold an exclusive flock on ``FILE.lock`` so
several processes can share one file; each process catches up on lines others appended before it
stamps its own. Meant for small deployments and for shipping logs; reads scan the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from guardrails.audit.base import Filters, Head, Mark, PruneResult, Stored, make_mark
from guardrails.audit.record import GENESIS, canonical, index_columns, seal
from guardrails.audit.signing import Signer
from guardrails.errors import ConfigError


def _mark_line(m: Mark) -> str:
    return '{"mark":' + m.payload + ',"sig":"' + m.sig + '"}'


def _parse(line: str) -> tuple[str, Any]:
    """-> ("header", dict) | ("record", Stored) | ("mark", Mark) | ("bad", line)."""
    try:
        obj = json.loads(line)
    except ValueError:
        return "bad", line
    if not isinstance(obj, dict):
        return "bad", line
    if "mark" in obj:
        payload = obj["mark"]
        return "mark", Mark(payload.get("kind", "?"), int(payload.get("seq", -1)), payload.get("hash", ""),
                            canonical(payload), str(obj.get("sig", "")))
    if "trustwall_audit" in obj:
        return "header", obj
    h = obj.pop("hash", "")
    try:
        body = canonical(obj)
        cols = index_columns(obj)
        return "record", Stored(int(obj["seq"]), cols[0], cols[1], cols[2], cols[3], cols[4], body, str(h))
    except (KeyError, TypeError, ValueError):
        return "record", Stored(int(obj.get("seq", -1)) if str(obj.get("seq", "")).isdigit() else -1,
                                "", 0.0, "", "", None, canonical(obj), str(h))


class JsonlSink:
    def __init__(self, path: str | Path, signer: Signer, checkpoint_every: int = 1000):
        self.path = Path(path)
        self.url = f"jsonl:///{self.path}"
        self.signer = signer
        self.every = max(1, int(checkpoint_every))
        self._lock = threading.Lock()
        self._pos = 0
        self._head = Head(0, GENESIS, 0, "")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lockfile = open(str(self.path) + ".lock", "a+")  # noqa: SIM115 - held for the sink's life
        except OSError as exc:
            raise ConfigError(f"cannot open audit file {self.path}: {exc}") from None
        with self._locked():
            if not self.path.exists() or self.path.stat().st_size == 0:
                with open(self.path, "a", encoding="utf-8") as fh:
                    fh.write(canonical({"trustwall_audit": 1, "chain": secrets.token_hex(8)}) + "\n")

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_EX)
            try:
                self._catch_up()
                yield
            finally:
                fcntl.flock(self._lockfile.fileno(), fcntl.LOCK_UN)

    def _catch_up(self) -> None:
        """Fold lines appended since we last looked (by us or another process) into the head."""
        if not self.path.exists():
            return
        size = self.path.stat().st_size
        if size < self._pos:  # rewritten (pruned) by someone: rescan
            self._pos, self._head = 0, Head(0, GENESIS, 0, "")
        if size == self._pos:
            return
        with open(self.path, "rb") as fh:
            fh.seek(self._pos)
            for raw in fh:
                if not raw.endswith(b"\n"):
                    break
                self._pos += len(raw)
                kind, item = _parse(raw.decode("utf-8"))
                if kind == "header":
                    self._head.chain = str(item.get("chain", ""))
                elif kind == "record":
                    self._head.seq, self._head.hash = item.seq, item.hash
                elif kind == "mark" and item.kind == "checkpoint":
                    self._head.cp_seq = max(self._head.cp_seq, item.seq)
                elif kind == "mark" and item.kind == "prune" and self._head.seq < item.seq:
                    self._head.seq, self._head.hash, self._head.cp_seq = item.seq, item.hash, item.seq

    def _write(self, lines: Sequence[str]) -> None:
        data = ("\n".join(lines) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        self._pos += len(data)

    # -- AuditSink --------------------------------------------------------------------------------

    def chain_id(self) -> str:
        return self.head().chain

    def head(self) -> Head:
        with self._locked():
            return Head(self._head.seq, self._head.hash, self._head.cp_seq, self._head.chain)

    def append(self, bodies: Sequence[dict[str, Any]]) -> int:
        with self._locked():
            h = self._head
            seq, prev, cp = h.seq, h.hash, h.cp_seq
            lines: list[str] = []
            now = time.time()
            for body in bodies:
                seq += 1
                text, prev = seal(body, seq, prev)
                lines.append(text[:-1] + ',"hash":"' + prev + '"}')
                if seq % self.every == 0:
                    lines.append(_mark_line(make_mark(self.signer, h.chain, "checkpoint", seq, prev, cp, now)))
                    cp = seq
            if lines:
                self._write(lines)
            h.seq, h.hash, h.cp_seq = seq, prev, cp
            return seq

    def checkpoint(self) -> Mark | None:
        with self._locked():
            h = self._head
            if h.seq == 0 or h.cp_seq >= h.seq:
                return None
            mark = make_mark(self.signer, h.chain, "checkpoint", h.seq, h.hash, h.cp_seq, time.time())
            self._write([_mark_line(mark)])
            h.cp_seq = h.seq
            return mark

    def _lines(self) -> Iterator[tuple[str, Any]]:
        with open(self.path, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield _parse(line)

    def records(self, filters: Filters | None = None, *, batch: int = 1000) -> Iterator[Stored]:
        """Records in file order (which is seq order unless someone reordered lines)."""
        for kind, item in self._lines():
            if kind == "record" and (filters is None or filters.match(item.ts, item.principal, item.action)):
                yield item
            elif kind == "bad":
                yield Stored(-1, "", 0.0, "", "", None, str(item), "")

    def count(self, filters: Filters | None = None) -> int:
        return sum(1 for _ in self.records(filters))

    def marks(self) -> list[Mark]:
        return sorted((m for k, m in self._lines() if k == "mark"), key=lambda m: (m.seq, m.kind))

    def prune(self, before: float) -> PruneResult:
        with self._locked():
            first_new = next((r.seq for r in self.records() if r.ts >= before), self._head.seq + 1)
            have = {r.seq for r in self.records() if r.seq < first_new}
            cps = [m for m in self.marks() if m.kind == "checkpoint" and m.seq < first_new and m.seq in have]
            if not cps:
                return PruneResult(None, 0, "nothing to prune: no signed checkpoint precedes the first record to keep")
            anchor = cps[-1]
            tmp = self.path.with_suffix(self.path.suffix + ".prune")
            deleted = 0
            with open(tmp, "w", encoding="utf-8") as out:
                out.write(canonical({"trustwall_audit": 1, "chain": self._head.chain}) + "\n")
                out.write(_mark_line(make_mark(self.signer, self._head.chain, "prune", anchor.seq, anchor.hash, 0,
                                               time.time(), before=before, deleted=len(have & set(range(anchor.seq + 1)))))
                          + "\n")
                out.write(_mark_line(anchor) + "\n")
                with open(self.path, encoding="utf-8") as fh:
                    for line in fh:
                        kind, item = _parse(line)
                        if kind == "header":
                            continue
                        if kind in ("record", "mark") and item.seq <= anchor.seq:
                            deleted += kind == "record"
                            continue
                        out.write(line if line.endswith("\n") else line + "\n")
            os.replace(tmp, self.path)
            self._pos, self._head = 0, Head(0, GENESIS, 0, "")
            self._catch_up()
        return PruneResult(anchor.seq, deleted, f"pruned {deleted} records; the chain is now anchored at the signed "
                                                f"checkpoint of record {anchor.seq}")

    def close(self) -> None:
        with self._lock:
            try:
                self._lockfile.close()
            except OSError:  # pragma: no cover
                pass
