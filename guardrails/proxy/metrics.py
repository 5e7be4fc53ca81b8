"""Prometheus metrics of one app instance (its own CollectorRegistry: no process-global state)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from guardrails.types import Decision

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("trustwall_requests_total", "Guarded requests by route, final action and status",
                                ["route", "action", "status"], registry=self.registry)
        self.latency = Histogram("trustwall_request_seconds", "Time to answer a guarded request (to the last byte "
                                 "for streams)", ["route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.detector = Histogram("trustwall_detector_seconds", "Detector latency per check", ["detector", "stage"],
                                  buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.upstream = Histogram("trustwall_upstream_seconds", "Upstream latency (to the last byte)", ["upstream"],
                                  buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.upstream_errors = Counter("trustwall_upstream_errors_total", "Upstream failures by kind",
                                       ["upstream", "kind"], registry=self.registry)

    def observe_decision(self, decision: Decision | None) -> None:
        if decision is None:
            return
        for t in decision.timings:
            self.detector.labels(t.detector, t.stage).observe(t.ms / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
