"""The drop-in OpenAI-compatible proxy: point an OpenAI client's base_url here and every call is guarded.

`create_app(runtime_or_settings, ...)` builds the FastAPI app; `trustwall serve` runs it under uvicorn.
"""

from __future__ import annotations

from typing import Any


def create_app(*args: Any, **kwargs: Any) -> Any:
    from guardrails.proxy.app import create_app as _create

    return _create(*args, **kwargs)


__all__ = ["create_app"]
