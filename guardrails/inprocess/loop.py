"""The Guard's private event loop, in a daemon thread: detectors and the audit writer only ever see one
loop, sync callers block on it and async callers await it from their own loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from guardrails.errors import TrustwallError

if TYPE_CHECKING:  # pragma: no cover

    pass

# ------------------------------------------------------------------------------- the private loop


T = TypeVar("T")
log = logging.getLogger("trustwall.inprocess")


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    loop.call_soon(started.set)
    try:
        loop.run_forever()
    finally:
        try:
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            loop.close()


class LoopThread:
    """One event loop in one daemon thread, started on first use. Thread-safe. Owned by one Guard."""

    def __init__(self, name: str = "trustwall-guard") -> None:
        self._name = name
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def started(self) -> bool:
        return self._loop is not None

    @property
    def closed(self) -> bool:
        return self._closed

    def _ensure(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is not None and not self._closed:
            return loop
        with self._lock:
            if self._closed:
                raise TrustwallError("this Guard is closed")
            if self._loop is None:
                loop = asyncio.new_event_loop()
                started = threading.Event()
                thread = threading.Thread(target=_serve, args=(loop, started), name=self._name, daemon=True)
                thread.start()
                started.wait()
                self._thread, self._loop = thread, loop
            return self._loop

    def in_loop_thread(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        try:
            loop = self._ensure()
            return asyncio.run_coroutine_threadsafe(coro, loop)
        except BaseException:
            coro.close()
            raise

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the loop and block this thread until it is done."""
        if self.in_loop_thread():
            coro.close()
            raise TrustwallError("a synchronous Guard method was called from inside the Guard's own event loop; "
                                 "use the async API there")
        return self.submit(coro).result()

    async def arun(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await `coro` on the loop from any other loop (cancellation propagates)."""
        if self.in_loop_thread():
            return await coro
        return await asyncio.wrap_future(self.submit(coro))

    def close(self, last: Callable[[], Coroutine[Any, Any, Any]] | None = None, timeout: float = 30.0) -> None:
        """Run `last()` on the loop (if it was started), then stop the loop and join its thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            if last is not None and not self.in_loop_thread():
                asyncio.run_coroutine_threadsafe(last(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            if not self.in_loop_thread():
                thread.join(timeout)
