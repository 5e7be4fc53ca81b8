"""The detector contract and the explicit registry of detector types.

A detector judges texts and reports spans; it never rewrites text. It is built once, in
`build_runtime`, from its policy entry; heavy models load then, never at import time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from guardrails.errors import PolicyError
from guardrails.types import CallContext, Finding, Stage

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.policy import DetectorSpec
    from guardrails.settings import Settings


@runtime_checkable
class Detector(Protocol):
    """What every detector provides."""

    name: str

    async def detect(self, texts: Sequence[str], ctx: CallContext, stage: Stage) -> list[list[Finding]]:
        """Return one list of findings per input text, in order, for the stage being checked ("input" or
        "output"). Spans are code-point offsets."""
        ...


@runtime_checkable
class Describable(Protocol):
    """Optional: what a detector loaded, and on which device (`/readyz`, `trustwall models`)."""

    def info(self) -> dict[str, Any]: ...


@runtime_checkable
class Closable(Protocol):
    """Optional: release what the detector holds (sessions, threads) when its runtime closes."""

    async def aclose(self) -> None: ...


class Options(BaseModel):
    """Base for detector options: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoOptions(Options):
    pass


class Resources:
    """Heavy things shared between detectors of one runtime (a spaCy pipeline, an ONNX session).

    One instance per runtime: created by build_runtime, never global.
    """

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}

    def get_or_create(self, key: str, factory: Callable[[], Any]) -> Any:
        if key not in self._items:
            self._items[key] = factory()
        return self._items[key]

    def items(self) -> Mapping[str, Any]:
        return dict(self._items)


@dataclass
class BuildContext:
    """What a detector factory receives besides its own spec."""

    settings: Settings
    resources: Resources = field(default_factory=Resources)
    policy_dir: Path | None = None


Factory = Callable[["DetectorSpec", Any, BuildContext], Detector]


@dataclass(frozen=True)
class DetectorType:
    """One entry of the registry: the YAML `type:` name, its options model, and its factory.

    `factory(spec, options, build_ctx)` gets validated options (an instance of options_model).
    `categories` lists the categories the type can report (for `policy check` and validation).
    """

    name: str
    options_model: type[Options]
    factory: Factory
    categories: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ("input", "output")
    description: str = ""


class Registry:
    """An explicit mapping from `type:` names to DetectorType. No directory scans, no globals."""

    def __init__(self, types: Mapping[str, DetectorType] | None = None):
        self._types: dict[str, DetectorType] = dict(types or {})

    def register(self, dtype: DetectorType) -> None:
        if dtype.name in self._types:
            raise ValueError(f"detector type {dtype.name!r} registered twice")
        self._types[dtype.name] = dtype

    def get(self, name: str) -> DetectorType:
        try:
            return self._types[name]
        except KeyError:
            raise PolicyError(
                f"unknown detector type {name!r}; known types: {', '.join(sorted(self._types)) or 'none'}"
            ) from None

    def __contains__(self, name: object) -> bool:
        return name in self._types

    def names(self) -> list[str]:
        return sorted(self._types)

    def copy(self) -> Registry:
        return Registry(self._types)


async def memo(ctx: CallContext, key: Any, compute: Callable[[], Awaitable[Any]]) -> Any:
    """Compute `key` once per call and share it between detectors (e.g. the spaCy Docs).

    Concurrent callers await the same task, so two detectors needing one parse cause one parse. When
    every caller waiting on it is cancelled (they all timed out), the computation is cancelled too, so
    that queued model work nobody waits for is dropped instead of holding a worker (issue 20).
    """
    cache: dict[Any, asyncio.Future[Any]] = ctx.cache
    fut = cache.get(key)
    if fut is None:
        fut = asyncio.ensure_future(compute())
        cache[key] = fut
    waiters: dict[Any, int] = ctx.cache.setdefault(("__memo_waiters__",), {})
    waiters[key] = waiters.get(key, 0) + 1
    try:
        return await asyncio.shield(fut)
    except asyncio.CancelledError:
        if waiters.get(key, 0) <= 1 and not fut.done():
            fut.cancel()
        raise
    finally:
        waiters[key] = waiters.get(key, 1) - 1
