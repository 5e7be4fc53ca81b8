"""Verification of a stored chain: streamed, flat memory, first break reported.

Checked, in one pass in seq order from the anchor (genesis, or the latest signed prune mark):
seq contiguity (deletion, insertion, duplication), each body's own seq and prev link (reordering,
insertion), each hash over the canonical body (edits), the indexed columns against the body (edits
that would fool filters), every signed checkpoint against the record at its seq (a rewritten chain),
the checkpoints' own chain (a deleted checkpoint), and checkpoints or a head beyond the last record
(truncation). Records after the last checkpoint are reported as not yet signed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from guardrails.audit.base import AuditSink, Mark
from guardrails.audit.record import GENESIS, entry_hash, index_columns


@dataclass
class VerifyReport:
    ok: bool
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    anchor_seq: int = 0
    checkpoints: int = 0
    last_checkpoint: int = 0
    last_checkpoint_hash: str | None = None
    unsigned_tail: int = 0
    first_bad_seq: int | None = None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        if self.ok:
            span = f"records {self.first_seq}..{self.last_seq}" if self.records else "no records"
            tail = f"; {self.unsigned_tail} record(s) after the last checkpoint are not signed yet" if self.unsigned_tail else ""
            note = f"; note {self.last_checkpoint}:{self.last_checkpoint_hash} elsewhere" if self.last_checkpoint_hash else ""
            return (f"OK: chain intact, {self.records} records ({span}), anchored at {self.anchor_seq}, "
                    f"{self.checkpoints} signed checkpoint(s), last at {self.last_checkpoint}{tail}{note}")
        return f"BROKEN at record {self.first_bad_seq}: {self.reason}"


def _check_marks(marks: list[Mark], chain: str, verifiers: Mapping[str, Any]) -> tuple[list[Mark], str | None, int]:
    good: list[Mark] = []
    for m in marks:
        try:
            data = m.data
        except ValueError:
            return good, f"{m.kind} mark at seq {m.seq} is not valid JSON", m.seq
        where = f"signed {m.kind} at record {m.seq}"
        if data.get("chain") != chain:
            return good, f"{where} belongs to another chain ({data.get('chain')!r}, this chain is {chain!r})", m.seq
        if data.get("seq") != m.seq or data.get("hash") != m.hash or data.get("kind") != m.kind:
            return good, f"{where}: its columns differ from what was signed", m.seq
        v = verifiers.get(str(data.get("key_id")))
        if v is None:
            return good, f"{where}: no key here verifies key id {data.get('key_id')} ({data.get('alg')})", m.seq
        if getattr(v, "alg", None) != data.get("alg") or not v.verify(data, m.sig):
            return good, f"{where}: bad signature", m.seq
        good.append(m)
    return good, None, 0


def verify_sink(sink: AuditSink, verifiers: Mapping[str, Any], *, expect: tuple[int, str] | None = None) -> VerifyReport:
    """`expect`: (seq, hash) of a record noted outside the store earlier (e.g. the last checkpoint that
    `audit verify` printed and you shipped elsewhere): the chain must still hold it. This catches a
    truncation that also removed the checkpoints covering it."""
    chain = sink.chain_id()
    marks, bad, bad_seq = _check_marks(sink.marks(), chain, verifiers)
    rep = VerifyReport(ok=False)
    if bad is not None:
        return _fail(rep, bad_seq, bad)
    prunes = [m for m in marks if m.kind == "prune"]
    anchor = max(prunes, key=lambda m: m.seq) if prunes else None
    expected = (anchor.seq + 1) if anchor else 1
    prev = anchor.hash if anchor else GENESIS
    rep.anchor_seq = anchor.seq if anchor else 0
    cps = sorted((m for m in marks if m.kind == "checkpoint" and m.seq >= rep.anchor_seq), key=lambda m: m.seq)
    # the checkpoints form their own chain: each names the one before it
    last_cp = rep.anchor_seq
    for i, m in enumerate(cps):
        if m.seq == rep.anchor_seq:
            continue
        if int(m.data.get("prev_cp", -1)) != last_cp:
            return _fail(rep, last_cp + 1, f"signed checkpoint at record {m.seq} follows checkpoint "
                                            f"{m.data.get('prev_cp')}, which is missing (a checkpoint was deleted)")
        last_cp = m.seq
    by_seq = {m.seq: m for m in cps}
    last_good_cp = rep.anchor_seq
    for r in sink.records():
        if r.seq != expected:
            if r.seq < 0:
                return _fail(rep, expected, "unreadable line or record without seq (edited or inserted)")
            if r.seq < expected:
                return _fail(rep, expected, f"record {r.seq} appears again or out of order after record {expected - 1} "
                                            "(inserted or reordered)")
            missing = f"{expected}" if r.seq == expected + 1 else f"{expected}..{r.seq - 1}"
            return _fail(rep, expected, f"record(s) {missing} missing (deleted)")
        try:
            body = json.loads(r.body)
        except ValueError:
            return _fail(rep, r.seq, "body is not valid JSON (edited)")
        if body.get("seq") != r.seq:
            return _fail(rep, r.seq, f"body says seq {body.get('seq')} (records reordered or renumbered)")
        if body.get("prev") != prev:
            return _fail(rep, r.seq, "does not link to the record before it (deleted, inserted or reordered)")
        if entry_hash(r.body) != r.hash:
            return _fail(rep, r.seq, "content does not match its hash (edited)")
        try:
            cols = index_columns(body)
        except (KeyError, TypeError, ValueError):
            return _fail(rep, r.seq, "body lacks required fields (edited)")
        if (cols[0], cols[1], cols[2], cols[3], cols[4]) != (r.id, r.ts, r.principal, r.action, r.model):
            return _fail(rep, r.seq, "indexed columns differ from the hashed body (edited)")
        if expect is not None and r.seq == expect[0] and r.hash != expect[1]:
            return _fail(rep, r.seq, f"record {r.seq} differs from the hash noted outside the store (rewritten)")
        cp = by_seq.get(r.seq)
        if cp is not None:
            if cp.hash != r.hash:
                return _fail(rep, last_good_cp + 1, f"records {last_good_cp + 1}..{r.seq} do not match the signed "
                                                    f"checkpoint at {r.seq} (edited and re-chained)")
            last_good_cp = r.seq
            rep.last_checkpoint_hash = r.hash
            rep.checkpoints += 1
        if rep.first_seq is None:
            rep.first_seq = r.seq
        rep.records += 1
        rep.last_seq = r.seq
        prev = r.hash
        expected += 1
    end = expected - 1
    late = [m.seq for m in cps if m.seq > end]
    if late:
        return _fail(rep, end + 1, f"log ends at record {end} but a signed checkpoint covers record {late[0]} "
                                   "(truncated)")
    if expect is not None and expect[0] > end:
        return _fail(rep, end + 1, f"log ends at record {end} but record {expect[0]} was noted outside the store "
                                   "(truncated)")
    if expect is not None and expect[0] <= rep.anchor_seq:
        rep.warnings.append(f"record {expect[0]} was pruned; the expectation could not be checked")
    head = sink.head()
    if head.seq > end:
        return _fail(rep, end + 1, f"log ends at record {end} but its head says {head.seq} (truncated)")
    if anchor is not None and rep.anchor_seq not in by_seq:
        rep.warnings.append(f"the checkpoint at the prune anchor {rep.anchor_seq} is gone; the prune mark stands for it")
    rep.last_checkpoint = last_good_cp
    rep.unsigned_tail = end - last_good_cp if end > last_good_cp else 0
    rep.ok = True
    return rep


def _fail(rep: VerifyReport, seq: int, reason: str) -> VerifyReport:
    rep.ok = False
    rep.first_bad_seq = seq
    rep.reason = reason
    return rep
