"""SQLite (default) and PostgreSQL sinks: one table of records, one of signed marks, one head row.

Appends are serialised by the database itself, so several processes (SQLite) or replicas
(PostgreSQL) append to one chain: SQLite takes the write lock with BEGIN IMMEDIATE; PostgreSQL locks
the head row with SELECT ... FOR UPDATE inside the append transaction.
"""

from __future__ import annotations

import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from guardrails.audit.base import Filters, Head, Mark, PruneResult, Stored, make_mark
from guardrails.audit.record import GENESIS, index_columns, seal
from guardrails.audit.signing import Signer
from guardrails.errors import ConfigError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")

_DDL = [
    """CREATE TABLE IF NOT EXISTS {p}audit_records (
        seq BIGINT PRIMARY KEY, id TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, principal TEXT NOT NULL,
        action TEXT NOT NULL, model TEXT, body TEXT NOT NULL, hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS {i}audit_records_ts ON {p}audit_records (ts)",
    "CREATE INDEX IF NOT EXISTS {i}audit_records_principal ON {p}audit_records (principal, ts)",
    """CREATE TABLE IF NOT EXISTS {p}audit_marks (
        kind TEXT NOT NULL, seq BIGINT NOT NULL, hash TEXT NOT NULL, payload TEXT NOT NULL, sig TEXT NOT NULL,
        PRIMARY KEY (kind, seq))""",
    """CREATE TABLE IF NOT EXISTS {p}audit_head (
        id INTEGER PRIMARY KEY, seq BIGINT NOT NULL, hash TEXT NOT NULL, cp_seq BIGINT NOT NULL, chain TEXT NOT NULL)""",
]


class SqlSink:
    """The shared implementation; `SqliteSink` and `PostgresSink` supply connections and dialect."""

    url: str
    paramstyle = "?"
    for_update = ""

    def __init__(self, signer: Signer, checkpoint_every: int, *, prefix: str = "", index_prefix: str = ""):
        self.signer = signer
        self.every = max(1, int(checkpoint_every))
        self._p = prefix
        self._ip = index_prefix
        self._lock = threading.Lock()
        self._chain: str | None = None

    # -- dialect hooks ----------------------------------------------------------------------------

    def _conn(self) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    @contextmanager
    def _write_tx(self) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    @contextmanager
    def _read_cursor(self, batch: int) -> Iterator[Any]:  # pragma: no cover - abstract
        raise NotImplementedError
        yield

    def _q(self, sql: str) -> str:
        sql = sql.replace("{p}", self._p).replace("{i}", self._ip)
        return sql if self.paramstyle == "?" else sql.replace("?", "%s")

    # -- schema -----------------------------------------------------------------------------------

    def _init_schema(self) -> None:
        with self._write_tx() as cur:
            for ddl in _DDL:
                cur.execute(self._q(ddl))
            cur.execute(self._q("SELECT chain FROM {p}audit_head WHERE id = 1"))
            if cur.fetchone() is None:
                cur.execute(self._q("INSERT INTO {p}audit_head (id, seq, hash, cp_seq, chain) VALUES (1, 0, ?, 0, ?)"
                                    + (" ON CONFLICT (id) DO NOTHING" if self.paramstyle != "?" else "")),
                            (GENESIS, secrets.token_hex(8)))

    def _head(self, cur: Any, lock: bool = True) -> Head:
        cur.execute(self._q("SELECT seq, hash, cp_seq, chain FROM {p}audit_head WHERE id = 1"
                            + (self.for_update if lock else "")))
        row = cur.fetchone()
        if row is None:
            raise ConfigError(f"audit store {self.url} has no head row (not initialised or damaged)")
        return Head(int(row[0]), row[1], int(row[2]), row[3])

    def chain_id(self) -> str:
        if self._chain is None:
            self._chain = self.head().chain
        return self._chain

    def head(self) -> Head:
        with self._read_cursor(1) as cur:
            return self._head(cur, lock=False)

    # -- writing ----------------------------------------------------------------------------------

    def append(self, bodies: Sequence[dict[str, Any]]) -> int:
        if not bodies:
            return self.head().seq
        with self._write_tx() as cur:
            head = self._head(cur)
            seq, prev, cp = head.seq, head.hash, head.cp_seq
            rows, marks = [], []
            now = time.time()
            for body in bodies:
                seq += 1
                text, prev = seal(body, seq, prev)
                rows.append((seq, *index_columns(body), text, prev))
                if seq % self.every == 0:
                    marks.append(make_mark(self.signer, head.chain, "checkpoint", seq, prev, cp, now))
                    cp = seq
            cur.executemany(self._q("INSERT INTO {p}audit_records (seq, id, ts, principal, action, model, body, hash) "
                                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"), rows)
            self._insert_marks(cur, marks)
            cur.execute(self._q("UPDATE {p}audit_head SET seq = ?, hash = ?, cp_seq = ? WHERE id = 1"), (seq, prev, cp))
        return seq

    def _insert_marks(self, cur: Any, marks: Sequence[Mark]) -> None:
        if marks:
            cur.executemany(self._q("INSERT INTO {p}audit_marks (kind, seq, hash, payload, sig) VALUES (?, ?, ?, ?, ?)"),
                            [(m.kind, m.seq, m.hash, m.payload, m.sig) for m in marks])

    def checkpoint(self) -> Mark | None:
        with self._write_tx() as cur:
            head = self._head(cur)
            if head.seq == 0 or head.cp_seq >= head.seq:
                return None
            mark = make_mark(self.signer, head.chain, "checkpoint", head.seq, head.hash, head.cp_seq, time.time())
            self._insert_marks(cur, [mark])
            cur.execute(self._q("UPDATE {p}audit_head SET cp_seq = ? WHERE id = 1"), (head.seq,))
            return mark

    def prune(self, before: float) -> PruneResult:
        with self._write_tx() as cur:
            head = self._head(cur)
            cur.execute(self._q("SELECT MIN(seq) FROM {p}audit_records WHERE ts >= ?"), (before,))
            first_new = cur.fetchone()[0]
            limit = int(first_new) if first_new is not None else head.seq + 1
            cur.execute(self._q("SELECT m.seq, m.hash FROM {p}audit_marks m JOIN {p}audit_records r ON r.seq = m.seq "
                                "WHERE m.kind = 'checkpoint' AND m.seq < ? ORDER BY m.seq DESC LIMIT 1"), (limit,))
            row = cur.fetchone()
            if row is None:
                return PruneResult(None, 0, "nothing to prune: no signed checkpoint precedes the first record to keep")
            anchor, anchor_hash = int(row[0]), row[1]
            cur.execute(self._q("DELETE FROM {p}audit_records WHERE seq <= ?"), (anchor,))
            deleted = cur.rowcount if cur.rowcount is not None else -1
            cur.execute(self._q("DELETE FROM {p}audit_marks WHERE kind = 'checkpoint' AND seq < ?"), (anchor,))
            mark = make_mark(self.signer, head.chain, "prune", anchor, anchor_hash, 0, time.time(),
                             before=before, deleted=deleted)
            cur.execute(self._q("DELETE FROM {p}audit_marks WHERE kind = 'prune' AND seq = ?"), (anchor,))
            self._insert_marks(cur, [mark])
        return PruneResult(anchor, deleted, f"pruned {deleted} records; the chain is now anchored at the signed "
                                            f"checkpoint of record {anchor}")

    # -- reading ----------------------------------------------------------------------------------

    def _where(self, f: Filters | None) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if f is not None:
            if f.since is not None:
                clauses.append("ts >= ?")
                args.append(f.since)
            if f.until is not None:
                clauses.append("ts < ?")
                args.append(f.until)
            if f.principal is not None:
                clauses.append("principal = ?")
                args.append(f.principal)
            if f.actions:
                clauses.append("action IN (" + ", ".join("?" for _ in f.actions) + ")")
                args.extend(f.actions)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", args

    def records(self, filters: Filters | None = None, *, batch: int = 1000) -> Iterator[Stored]:
        where, args = self._where(filters)
        sql = self._q("SELECT seq, id, ts, principal, action, model, body, hash FROM {p}audit_records"
                      + where + " ORDER BY seq")
        with self._read_cursor(batch) as cur:
            cur.execute(sql, args)
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                for r in rows:
                    yield Stored(int(r[0]), r[1], float(r[2]), r[3], r[4], r[5], r[6], r[7])

    def count(self, filters: Filters | None = None) -> int:
        where, args = self._where(filters)
        with self._read_cursor(1) as cur:
            cur.execute(self._q("SELECT COUNT(*) FROM {p}audit_records" + where), args)
            return int(cur.fetchone()[0])

    def marks(self) -> list[Mark]:
        with self._read_cursor(1000) as cur:
            cur.execute(self._q("SELECT kind, seq, hash, payload, sig FROM {p}audit_marks ORDER BY seq, kind"))
            return [Mark(r[0], int(r[1]), r[2], r[3], r[4]) for r in cur.fetchall()]


# ---------------------------------------------------------------------------------------------- SQLite


class SqliteSink(SqlSink):
    """SQLite in WAL mode. Safe across threads (one lock) and processes (BEGIN IMMEDIATE)."""

    def __init__(self, path: str | Path, signer: Signer, checkpoint_every: int = 1000):
        super().__init__(signer, checkpoint_every)
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._connect()
            self._db.execute("PRAGMA journal_mode=WAL")
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open audit database {self.path}: {exc}") from None
        self._init_schema()

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), timeout=60.0, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout=60000")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def _write_tx(self) -> Iterator[Any]:
        with self._lock:
            cur = self._db.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    @contextmanager
    def _read_cursor(self, batch: int) -> Iterator[Any]:
        db = self._connect()  # its own connection: a long export never blocks the writer (WAL)
        try:
            cur = db.cursor()
            cur.arraysize = batch
            yield cur
        finally:
            db.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()


# ------------------------------------------------------------------------------------------ PostgreSQL


def _split_pg_url(url: str) -> tuple[str, str | None]:
    """postgresql://...?schema=NAME -> (conninfo without our parameter, schema)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), None)
    rest = [(k, v) for k, v in query if k != "schema"]
    scheme = "postgresql" if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg") else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment)), schema


class PostgresSink(SqlSink):
    """PostgreSQL: replicas share one chain; each append holds the head row lock (FOR UPDATE).

    `?schema=NAME` in the URL puts the tables in that schema (created if missing)."""

    paramstyle = "%s"
    for_update = " FOR UPDATE"

    def __init__(self, url: str, signer: Signer, checkpoint_every: int = 1000):
        conninfo, schema = _split_pg_url(url)
        if schema is not None and not _IDENT.match(schema):
            raise ConfigError(f"invalid schema name {schema!r} in audit_url")
        super().__init__(signer, checkpoint_every, prefix=f'"{schema}".' if schema else "", index_prefix="")
        self.url = url
        self._conninfo = conninfo
        self._schema = schema
        try:
            self._db = self._connect()
            if schema:
                self._db.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except Exception as exc:  # noqa: BLE001 - psycopg raises many kinds; the message names no secret
            raise ConfigError(f"cannot connect to the audit database: {type(exc).__name__}: {_scrub(str(exc))}") from None
        self._init_schema()

    def _connect(self) -> Any:
        import psycopg

        return psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)

    def _live(self) -> Any:
        """The connection, reopened if the server dropped it (the writer retries through this)."""
        if self._db.closed or getattr(self._db, "broken", False):
            try:
                self._db.close()
            finally:
                self._db = self._connect()
        return self._db

    @contextmanager
    def _write_tx(self) -> Iterator[Any]:
        with self._lock:
            db = self._live()
            with db.transaction():
                with db.cursor() as cur:
                    yield cur

    @contextmanager
    def _read_cursor(self, batch: int) -> Iterator[Any]:
        import psycopg

        db = psycopg.connect(self._conninfo, connect_timeout=10)
        try:
            with db.transaction():
                with db.cursor(name=f"tw_audit_{secrets.token_hex(4)}") as cur:
                    cur.itersize = batch
                    yield cur
        finally:
            db.close()

    def _init_schema(self) -> None:
        # CREATE TABLE IF NOT EXISTS races between replicas starting together: serialise it
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(7340291)")
            for ddl in _DDL:
                self._db.execute(self._q(ddl).replace("{i}", ""))
            self._db.execute(self._q("INSERT INTO {p}audit_head (id, seq, hash, cp_seq, chain) VALUES (1, 0, ?, 0, ?) "
                                     "ON CONFLICT (id) DO NOTHING"), (GENESIS, secrets.token_hex(8)))

    def head(self) -> Head:
        with self._lock, self._live().cursor() as cur:
            return self._head(cur, lock=False)

    def count(self, filters: Filters | None = None) -> int:
        where, args = self._where(filters)
        with self._lock, self._live().cursor() as cur:
            cur.execute(self._q("SELECT COUNT(*) FROM {p}audit_records" + where), args)
            return int(cur.fetchone()[0])

    def marks(self) -> list[Mark]:
        with self._lock, self._live().cursor() as cur:
            cur.execute(self._q("SELECT kind, seq, hash, payload, sig FROM {p}audit_marks ORDER BY seq, kind"))
            return [Mark(r[0], int(r[1]), r[2], r[3], r[4]) for r in cur.fetchall()]

    def drop(self) -> None:
        """Remove this store's tables (and its schema when one was named). For tests and benchmarks."""
        with self._lock, self._db.transaction():
            if self._schema:
                self._db.execute(f'DROP SCHEMA IF EXISTS "{self._schema}" CASCADE')
            else:
                for t in ("audit_records", "audit_marks", "audit_head"):
                    self._db.execute(f"DROP TABLE IF EXISTS {t}")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _scrub(message: str) -> str:
    return re.sub(r"password=\S+|://[^@/\s]+@", "://***@", message)[:300]
