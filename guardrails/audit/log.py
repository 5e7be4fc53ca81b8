"""AuditLog: the runtime's recorder. Builds the privacy-safe body on the caller's side (cheap, pure) and
hands it to one writer thread through a bounded queue, so the store is never on the request path.

The writer signs a checkpoint when it has been idle for `idle_checkpoint_s` (default 60 s) with
unsigned records, besides every policy.audit.checkpoint_every records. When the queue is full, policy.audit.on_full decides: ``wait`` (the call waits for room, off the event
loop) or ``refuse`` (AuditUnavailable, which adapters answer with 503). A record is never dropped: a
failing store is retried with backoff while the queue fills up. ``aclose()`` flushes, signs a final
checkpoint and closes the store. The writer is a thread, not a task, so one log serves any event loop
(a sync decorator may run each call in its own loop) and plain threads alike.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
import weakref
from typing import Any

from guardrails.audit.base import AuditSink
from guardrails.audit.record import TextMode, build_body
from guardrails.errors import TrustwallError
from guardrails.types import CallRecord

log = logging.getLogger("trustwall.audit")

_STOP = object()


class AuditUnavailable(TrustwallError):
    """The audit log cannot take the record now (queue full with on_full: refuse, or the log is closed or
    failing). Adapters answer 503 with Retry-After; the call is refused rather than left unaudited."""

    status = 503
    code = "audit_unavailable"

    def __init__(self, message: str, *, retry_after: float = 1.0):
        self.retry_after = retry_after
        super().__init__(message)


class AuditLog:
    def __init__(self, sink: AuditSink, *, policy_id: str = "", policy_version: str = "", text_mode: TextMode = "redacted",
                 hash_key: bytes = b"", queue_size: int = 10_000, on_full: str = "wait", batch: int = 512,
                 flush_timeout_s: float = 60.0, idle_checkpoint_s: float | None = 60.0, wait_timeout_s: float = 30.0):
        if text_mode == "hash" and not hash_key:
            raise ValueError("text_mode 'hash' needs a hash key")
        self.sink = sink
        self.policy_id, self.policy_version = policy_id, policy_version
        self.text_mode: TextMode = text_mode
        self._hash_key = hash_key
        self.on_full = on_full
        self.wait_timeout_s = wait_timeout_s
        self.batch = max(1, batch)
        self.flush_timeout_s = flush_timeout_s
        self.idle_checkpoint_s = idle_checkpoint_s
        self._q: queue.Queue[Any] = queue.Queue(maxsize=max(1, queue_size))
        self._closed = False
        self._failing: str | None = None
        self.written = 0
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._finalizer: Any = None

    # -- recording --------------------------------------------------------------------------------

    def body(self, rec: CallRecord) -> dict[str, Any]:
        return build_body(rec, policy_id=self.policy_id, policy_version=self.policy_version,
                          text_mode=self.text_mode, hash_key=self._hash_key)

    async def record(self, record: CallRecord) -> None:
        body = self.body(record)
        self._admit()
        try:
            self._q.put_nowait(body)
            return
        except queue.Full:
            if self.on_full == "refuse":
                raise AuditUnavailable(f"audit queue full ({self._q.maxsize} records waiting); call refused") from None
        deadline = time.monotonic() + self.wait_timeout_s
        pause = 0.002
        while True:  # wait for room without blocking the event loop, but never forever
            try:
                self._q.put_nowait(body)
                return
            except queue.Full:
                if self._closed:
                    raise AuditUnavailable("audit log closed while the call waited for room") from None
                if time.monotonic() >= deadline:
                    raise AuditUnavailable(f"audit queue still full after {self.wait_timeout_s:g} s (is the audit "
                                           "store down?); call refused") from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)

    def record_sync(self, record: CallRecord) -> None:
        """For plain threads: same contract, blocking wait."""
        body = self.body(record)
        self._admit()
        if self.on_full == "refuse":
            try:
                self._q.put_nowait(body)
            except queue.Full:
                raise AuditUnavailable(f"audit queue full ({self._q.maxsize} records waiting); call refused") from None
        else:
            try:
                self._q.put(body, timeout=self.wait_timeout_s)
            except queue.Full:
                raise AuditUnavailable(f"audit queue still full after {self.wait_timeout_s:g} s (is the audit "
                                       "store down?); call refused") from None

    def _admit(self) -> None:
        if self._closed:
            raise AuditUnavailable("audit log is closed")
        if self._thread is None:
            with self._start_lock:
                if self._thread is None:
                    t = threading.Thread(target=self._run, name="trustwall-audit-writer", daemon=True)
                    t.start()
                    self._thread = t
                    # an interpreter exit without aclose() still flushes what is queued
                    self._finalizer = weakref.finalize(self, _flush_at_exit, self._q, t, self.flush_timeout_s)

    # -- the writer thread ------------------------------------------------------------------------

    def _run(self) -> None:
        stop = False
        unsigned = False
        while not stop:
            try:
                item = self._q.get(timeout=self.idle_checkpoint_s)
            except queue.Empty:  # idle for a while: sign what was written, so the tail is not left open
                if unsigned:
                    unsigned = not self._checkpoint()
                continue
            items = [item]
            while len(items) < self.batch:
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            bodies = [b for b in items if b is not _STOP]
            stop = len(bodies) != len(items)
            if bodies:
                self._write(bodies)
                unsigned = True
            for _ in items:
                self._q.task_done()

    def _checkpoint(self) -> bool:
        try:
            self.sink.checkpoint()
            return True
        except Exception as exc:  # noqa: BLE001 - retried at the next idle period and at shutdown
            log.warning("audit checkpoint failed: %s", type(exc).__name__)
            return False

    def _write(self, bodies: list[dict[str, Any]]) -> None:
        delay = 0.05
        while True:
            try:
                self.sink.append(bodies)
                self.written += len(bodies)
                if self._failing is not None:
                    log.warning("audit store %s recovered", self.sink.url)
                    self._failing = None
                return
            except Exception as exc:  # noqa: BLE001 - keep the records, retry; never drop
                msg = f"{type(exc).__name__}: {str(exc)[:200]}"
                if self._failing is None:
                    log.error("audit store append failed (%s); %d records kept, retrying", msg, len(bodies))
                self._failing = msg
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    # -- lifecycle --------------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        return self._q.unfinished_tasks

    def info(self) -> dict[str, Any]:
        return {"url": self.sink.url, "pending": self.pending, "written": self.written, "failing": self._failing,
                "text": self.text_mode, "on_full": self.on_full, "queue_size": self._q.maxsize}

    def flush_sync(self, timeout: float | None = None) -> bool:
        deadline = time.monotonic() + (self.flush_timeout_s if timeout is None else timeout)
        while self._q.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    async def flush(self, timeout: float | None = None) -> bool:
        return await asyncio.to_thread(self.flush_sync, timeout)

    def close(self) -> None:
        """Flush every queued record, sign a final checkpoint, close the store."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._q.put(_STOP)
            self._thread.join(self.flush_timeout_s)
            if self._thread.is_alive():
                left = self.pending
                raise AuditUnavailable(f"audit store {self.sink.url} failing ({self._failing}); "
                                       f"{left} records could not be written before shutdown")
            if self._finalizer is not None:
                self._finalizer.detach()
        try:
            self.sink.checkpoint()
        finally:
            self.sink.close()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)


def _flush_at_exit(q: queue.Queue[Any], thread: threading.Thread, timeout: float) -> None:
    if thread.is_alive():
        q.put(_STOP)
        thread.join(timeout)
