"""Readiness of remote model backends, for /readyz: {detector name: {"ready", "reason", "url", "model"}}.

A detector is remote when its scorer's classifier has `readiness()` (guardrails.inference.remote).
Detectors sharing one scorer share one check; each check is cached for a second and runs off the loop.
"""

from __future__ import annotations

import asyncio
from typing import Any


def _remote_classifier(det: Any) -> Any:
    clf = getattr(getattr(det, "scorer", None), "clf", None)
    return clf if callable(getattr(clf, "readiness", None)) else None


async def remote_readiness(runtime: Any) -> dict[str, dict[str, Any]]:
    by_clf: dict[int, tuple[Any, list[str]]] = {}
    for name, det in runtime.detectors.items():
        clf = _remote_classifier(det)
        if clf is not None:
            by_clf.setdefault(id(clf), (clf, []))[1].append(name)
    if not by_clf:
        return {}
    checks = await asyncio.gather(*(asyncio.to_thread(clf.readiness) for clf, _ in by_clf.values()))
    out: dict[str, dict[str, Any]] = {}
    for (_clf, names), state in zip(by_clf.values(), checks):
        for n in names:
            out[n] = dict(state)
    return out
