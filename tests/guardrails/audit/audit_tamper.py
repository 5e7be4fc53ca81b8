"""An attacker with write access to the store but not the audit key: raw edits to each kind of store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from guardrails.audit.record import canonical, entry_hash
from guardrails.audit.sql import _split_pg_url


class Tamperer:
    """Rows are (seq, body_dict, hash). Subclasses load and save them raw."""

    def rows(self) -> list[tuple[int, dict[str, Any], str]]:
        raise NotImplementedError

    def save(self, rows: list[tuple[int, dict[str, Any], str]]) -> None:
        raise NotImplementedError

    def marks(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def save_marks(self, marks: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def set_head(self, seq: int, hash_: str) -> None:  # JSONL has no head row
        pass

    def set_column(self, seq: int, column: str, value: Any) -> None:
        raise NotImplementedError

    # -- attacks ------------------------------------------------------------------------------------

    def edit(self, seq: int, rechain: bool = False) -> None:
        rows = self.rows()
        i = next(k for k, r in enumerate(rows) if r[0] == seq)
        body = dict(rows[i][1])
        body["final"] = "allow" if body["final"] != "allow" else "flag"
        rows[i] = (seq, body, rows[i][2])
        if rechain:
            rows = self._rechain(rows, i)
        self.save(rows)

    def delete(self, seq: int, renumber: bool = False) -> None:
        rows = [r for r in self.rows() if r[0] != seq]
        if renumber:
            rows = [(s - 1 if s > seq else s, b, h) for s, b, h in rows]
            rows = self._rechain(rows, next(k for k, r in enumerate(rows) if r[0] >= seq))
        self.save(rows)

    def insert(self, after: int, rechain: bool = False) -> None:
        rows = self.rows()
        i = next(k for k, r in enumerate(rows) if r[0] == after)
        forged = dict(rows[i][1])
        forged["id"] = "forged"
        forged["seq"], forged["prev"] = after + 1, rows[i][2]
        new = [(s + 1 if s > after else s, b, h) for s, b, h in rows]
        new.insert(i + 1, (after + 1, forged, entry_hash(canonical(forged))))
        if rechain:
            new = self._rechain(new, i + 1)
        self.save(new)

    def swap(self, a: int, b: int) -> None:
        rows = self.rows()
        ia = next(k for k, r in enumerate(rows) if r[0] == a)
        ib = next(k for k, r in enumerate(rows) if r[0] == b)
        rows[ia], rows[ib] = (a, rows[ib][1], rows[ib][2]), (b, rows[ia][1], rows[ia][2])
        self.save(rows)

    def truncate(self, keep_through: int, fix_head: bool = True) -> None:
        rows = [r for r in self.rows() if r[0] <= keep_through]
        self.save(rows)
        if fix_head:
            self.set_head(rows[-1][0], rows[-1][2])

    def drop_mark(self, seq: int) -> None:
        self.save_marks([m for m in self.marks() if not (m["kind"] == "checkpoint" and m["seq"] == seq)])

    def forge_mark(self, seq: int) -> None:
        marks = self.marks()
        for m in marks:
            if m["kind"] == "checkpoint" and m["seq"] == seq:
                m["sig"] = ("0" if m["sig"][0] != "0" else "1") + m["sig"][1:]
        self.save_marks(marks)

    @staticmethod
    def _rechain(rows: list[tuple[int, dict[str, Any], str]], start: int) -> list[tuple[int, dict[str, Any], str]]:
        out = list(rows[:start])
        prev = out[-1][2] if out else rows[0][1]["prev"]
        for seq, body, _ in rows[start:]:
            body = dict(body, seq=seq, prev=prev)
            prev = entry_hash(canonical(body))
            out.append((seq, body, prev))
        return out


class SqlTamperer(Tamperer):
    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            self.db: Any = sqlite3.connect(url[len("sqlite:///"):] if url.startswith("sqlite:////") is False
                                           else url[len("sqlite:///"):], isolation_level=None)
            self.p, self.q = "", "?"
        else:
            import psycopg

            conninfo, schema = _split_pg_url(url)
            self.db = psycopg.connect(conninfo, autocommit=True)
            self.p, self.q = f'"{schema}".', "%s"

    def _x(self, sql: str, args: Any = ()) -> Any:
        return self.db.execute(sql.replace("{p}", self.p).replace("?", self.q), args)

    def rows(self) -> list[tuple[int, dict[str, Any], str]]:
        return [(int(s), json.loads(b), h) for s, b, h in
                self._x("SELECT seq, body, hash FROM {p}audit_records ORDER BY seq").fetchall()]

    def save(self, rows: list[tuple[int, dict[str, Any], str]]) -> None:
        from guardrails.audit.record import index_columns

        self._x("DELETE FROM {p}audit_records")
        for seq, body, h in rows:
            text = canonical(body)
            self._x("INSERT INTO {p}audit_records (seq, id, ts, principal, action, model, body, hash) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (seq, *index_columns(body), text, h))

    def marks(self) -> list[dict[str, Any]]:
        cur = self._x("SELECT kind, seq, hash, payload, sig FROM {p}audit_marks ORDER BY seq")
        return [dict(zip(("kind", "seq", "hash", "payload", "sig"), r)) for r in cur.fetchall()]

    def save_marks(self, marks: list[dict[str, Any]]) -> None:
        self._x("DELETE FROM {p}audit_marks")
        for m in marks:
            self._x("INSERT INTO {p}audit_marks (kind, seq, hash, payload, sig) VALUES (?, ?, ?, ?, ?)",
                    (m["kind"], m["seq"], m["hash"], m["payload"], m["sig"]))

    def set_head(self, seq: int, hash_: str) -> None:
        self._x("UPDATE {p}audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, hash_))

    def set_column(self, seq: int, column: str, value: Any) -> None:
        self._x(f"UPDATE {{p}}audit_records SET {column} = ? WHERE seq = ?", (value, seq))

    def close(self) -> None:
        self.db.close()


class JsonlTamperer(Tamperer):
    def __init__(self, url: str):
        self.path = Path(url[len("jsonl:///"):] if not url.startswith("jsonl:////") else url[len("jsonl:///"):])

    def _lines(self) -> list[dict[str, Any]]:
        return [json.loads(x) for x in self.path.read_text().splitlines() if x.strip()]

    def _write(self, objs: list[dict[str, Any]]) -> None:
        self.path.write_text("".join(canonical(o) + "\n" for o in objs))

    def rows(self) -> list[tuple[int, dict[str, Any], str]]:
        out = []
        for o in self._lines():
            if "seq" in o and "mark" not in o:
                h = o.pop("hash")
                out.append((o["seq"], o, h))
        return out

    def save(self, rows: list[tuple[int, dict[str, Any], str]]) -> None:
        others = [o for o in self._lines() if "seq" not in o or "mark" in o]
        header = [o for o in others if "trustwall_audit" in o]
        marks = [o for o in others if "mark" in o]
        self._write(header + [dict(b, hash=h) for _, b, h in rows] + marks)

    def marks(self) -> list[dict[str, Any]]:
        return [{"kind": o["mark"]["kind"], "seq": o["mark"]["seq"], "obj": o, "sig": o["sig"]}
                for o in self._lines() if "mark" in o]

    def save_marks(self, marks: list[dict[str, Any]]) -> None:
        keep = [o for o in self._lines() if "mark" not in o]
        self._write(keep + [dict(m["obj"], sig=m["sig"]) for m in marks])

    def set_column(self, seq: int, column: str, value: Any) -> None:
        raise NotImplementedError("JSONL has no separate columns")

    def close(self) -> None:
        pass


def tamperer(url: str) -> Tamperer:
    return JsonlTamperer(url) if url.startswith("jsonl") else SqlTamperer(url)
