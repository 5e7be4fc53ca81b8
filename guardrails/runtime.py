"""build_runtime(settings) -> Runtime: the policy, its detectors (built once), the pipeline, the audit sink.

The only place heavy models are loaded. Adapters (proxy lifespan, Guard, CLI) build one runtime and
share it; `aclose()` releases it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from guardrails.detector import BuildContext, Closable, Describable, Detector, Registry, Resources
from guardrails.errors import DetectorError, PolicyError
from guardrails.pipeline import Pipeline
from guardrails.policy import Policy, load_policy
from guardrails.settings import Settings
from guardrails.types import CallRecord

log = logging.getLogger("trustwall.runtime")


class Recorder(Protocol):
    """What the runtime needs from an audit sink."""

    async def record(self, record: CallRecord) -> None: ...

    async def aclose(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    policy: Policy
    registry: Registry
    detectors: dict[str, Detector]
    pipeline: Pipeline
    resources: Resources
    audit: Recorder | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    async def record(self, record: CallRecord) -> None:
        if self.audit is not None:
            await self.audit.record(record)

    def info(self) -> dict[str, Any]:
        """What is loaded, and on which device (read back from the detectors)."""
        dets = {}
        for name, det in self.detectors.items():
            dets[name] = det.info() if isinstance(det, Describable) else {}
        return {"policy": self.policy.id, "policy_version": self.policy.digest, "detectors": dets}

    async def aclose(self) -> None:
        for det in self.detectors.values():
            if isinstance(det, Closable):
                await det.aclose()
        for res in self.resources.items().values():  # shared spaCy workers, model batchers: idempotent closes
            if isinstance(res, Closable):
                await res.aclose()
            elif callable(getattr(res, "close", None)):
                await asyncio.to_thread(res.close)
        if self.audit is not None:
            await self.audit.aclose()


def build_detectors(policy: Policy, registry: Registry, build: BuildContext) -> dict[str, Detector]:
    out: dict[str, Detector] = {}
    for i, spec in enumerate(policy.detectors):
        if not spec.enabled:
            continue
        dtype = registry.get(spec.type)
        try:
            options = dtype.options_model.model_validate(spec.options)
        except Exception as exc:  # pragma: no cover - load_policy validated already
            raise PolicyError(str(exc), path=policy.source, field=f"detectors[{i}].options") from None
        try:
            out[spec.name] = dtype.factory(spec, options, build)
        except (PolicyError, DetectorError):
            raise
        except Exception as exc:
            raise DetectorError(spec.name, f"failed to load: {type(exc).__name__}: {exc}") from exc
        log.info("detector %s (%s) loaded", spec.name, spec.type)
    return out


WARMUP_TEXT = "Warm-up: Jane Doe wrote to jane@example.com from Paris. All good, thanks."


def warm_up(detectors: dict[str, Detector]) -> dict[str, float]:
    """Run every detector once on a short text, so lazy first-call costs (spaCy vocab, ONNX graph
    optimisation, recogniser compilation) are paid at start-up, not by the first request. Runs on a
    private event loop in a helper thread, so it is safe to call from sync code inside a running loop.
    Returns ms per detector; failures are logged, not raised (the first real call will report them)."""
    import threading
    import time

    from guardrails.types import CallContext

    timings: dict[str, float] = {}

    async def run_all() -> None:
        for name, det in detectors.items():
            t0 = time.perf_counter()
            try:
                await det.detect([WARMUP_TEXT], CallContext(route="warmup"))
            except Exception as exc:  # noqa: BLE001
                log.warning("warm-up of detector %s failed: %s", name, exc)
            timings[name] = (time.perf_counter() - t0) * 1000

    thread = threading.Thread(target=lambda: asyncio.run(run_all()), name="trustwall-warmup")
    thread.start()
    thread.join()
    return timings


def limit_blas_threads(n: int) -> int | None:
    """Cap the BLAS thread pools of this process at `n` (process-wide, so servers call it, not libraries).

    Returns the previous maximum, or None where no BLAS pool was found. The spaCy pipelines run their
    matrix products through numpy's BLAS (detectors.nlp.use_numpy_gemm); one NER pass over 1,000
    characters measured 10.9 ms wall / 10.9 ms CPU with one thread against 10.0 ms wall / 19 ms CPU with
    two, and much worse when the other core was busy."""
    import numpy  # noqa: F401 - load numpy's BLAS first, or there is nothing to cap yet
    from threadpoolctl import threadpool_info, threadpool_limits

    pools = [p for p in threadpool_info() if p.get("user_api") == "blas"]
    if not pools:
        return None
    before = max(int(p.get("num_threads", 1)) for p in pools)
    threadpool_limits(limits=n, user_api="blas")
    return before


def build_runtime(settings: Settings | None = None, *, policy: Policy | None = None,
                  registry: Registry | None = None, audit: Recorder | None | bool = True,
                  warmup: bool = True) -> Runtime:
    """Load the policy (if not given), build every enabled detector once, and the pipeline.

    `audit=True` opens the sink configured in settings; `False`/None runs without an audit log; a
    Recorder instance is used as is. `warmup` runs each detector once before returning.
    """
    settings = settings or Settings()
    if registry is None:
        from detectors.registry import builtin_registry

        registry = builtin_registry()
    if policy is None:
        policy = load_policy(settings.policy_path(), registry)
    if settings.blas_threads:
        limit_blas_threads(settings.blas_threads)
    resources = Resources()
    build = BuildContext(settings=settings, resources=resources,
                         policy_dir=None if policy.source is None else __import__("pathlib").Path(policy.source).parent)
    detectors = build_detectors(policy, registry, build)
    if warmup and detectors:
        log.info("warm-up ms: %s", warm_up(detectors))
    pipeline = Pipeline(policy, detectors, hash_key=settings.hash_key_bytes())
    sink: Recorder | None
    if audit is True:
        from guardrails.audit import open_sink  # the audit package owns sink selection

        sink = open_sink(settings, policy)
    elif audit is False or audit is None:
        sink = None
    else:
        sink = audit
    return Runtime(settings, policy, registry, detectors, pipeline, resources, sink)


async def abuild_runtime(settings: Settings | None = None, **kw: Any) -> Runtime:
    """build_runtime off the event loop (model loading is CPU and disk bound)."""
    return await asyncio.to_thread(build_runtime, settings, **kw)
