"""The upstream clients of one proxy by name: the policy's upstreams built by kind (OpenAI-compatible,
Azure, echo, and the translated Anthropic / native-Responses ones), and the model-name-to-upstream map."""

from __future__ import annotations

from collections.abc import Iterable

from guardrails.access import glob_match
from guardrails.policy import Upstream
from guardrails.proxy.upstream import EchoUpstream, HTTPUpstream
from guardrails.proxy.upstream_translate import AnthropicUpstream, ResponsesUpstream

UpstreamClient = HTTPUpstream | EchoUpstream


def make_upstream(spec: Upstream) -> UpstreamClient:
    if spec.kind == "anthropic":
        return AnthropicUpstream(spec)
    if spec.api == "responses":  # an OpenAI upstream that speaks the Responses API natively
        return ResponsesUpstream(spec)
    return EchoUpstream(spec) if spec.kind == "echo" else HTTPUpstream(spec)


class Upstreams:
    """The policy's upstreams by name, and the model-name-to-upstream map."""

    def __init__(self, specs: Iterable[Upstream], default: str):
        self.clients: dict[str, UpstreamClient] = {s.name: make_upstream(s) for s in specs}
        self.default = default

    def __getitem__(self, name: str) -> UpstreamClient:
        return self.clients[name]

    def for_model(self, model: str) -> UpstreamClient | None:
        """The upstream serving `model`: an exact name beats a glob, a glob beats '*'; among equals the
        default upstream wins, then policy order."""
        best: tuple[int, int, int] | None = None
        chosen: UpstreamClient | None = None
        for order, c in enumerate(self.clients.values()):
            score = -1
            for p in c.spec.models:
                if p == model:
                    score = max(score, 2)
                elif p != "*" and glob_match(model, [p]):
                    score = max(score, 1)
                elif p == "*":
                    score = max(score, 0)
            if score < 0:
                continue
            key = (score, 1 if c.name == self.default else 0, -order)
            if best is None or key > best:
                best, chosen = key, c
        return chosen

    async def model_names(self) -> dict[str, str]:
        """Model id -> upstream name: names the policy lists, plus what openai-kind upstreams with
        glob patterns report at GET /models (filtered by those patterns)."""
        out: dict[str, str] = {}
        for c in self.clients.values():
            concrete = [m for m in c.spec.models if not any(ch in m for ch in "*?[")]
            for m in concrete:
                out.setdefault(m, c.name)
            if len(concrete) < len(c.spec.models):
                for m in await c.models():
                    if glob_match(m, c.spec.models):
                        out.setdefault(m, c.name)
        return out

    async def aclose(self) -> None:
        for c in self.clients.values():
            await c.aclose()
