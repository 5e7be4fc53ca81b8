"""bench_proxy's rows for the routes other than chat completions (issue 17): the same request sent
straight to the test upstream (the baseline a user would otherwise pick: the chat or embeddings
endpoint of the upstream itself) and through the proxy's /v1/embeddings, /v1/messages (Anthropic
Messages, translated to chat) and /v1/responses (translated to chat), one at a time."""

from __future__ import annotations

import json
from typing import Any


def bodies(prompt: str, answer: str) -> list[tuple[str, bytes, str, bytes]]:
    """(route name, direct body, proxied path, proxied body) for each route, the chat route first as the
    reference; the direct request goes to the upstream's /v1/chat/completions, except embeddings
    (/v1/embeddings)."""
    chat: dict[str, Any] = {"model": "bench-model", "messages": [{"role": "user", "content": prompt}],
                            "test_reply": answer}
    emb = {"model": "bench-embed", "input": [prompt], "encoding_format": "float"}
    messages = {"model": "bench-model", "max_tokens": 512, "messages": [{"role": "user", "content": prompt}],
                "test_reply": answer}
    responses = {"model": "bench-model", "input": prompt, "test_reply": answer}
    enc = json.dumps
    return [
        ("/v1/chat/completions (reference)", enc(chat).encode(), "/v1/chat/completions", enc(chat).encode()),
        ("/v1/embeddings", enc(emb).encode(), "/v1/embeddings", enc(emb).encode()),
        ("/v1/messages (Anthropic, to a chat upstream)", enc(chat).encode(), "/v1/messages", enc(messages).encode()),
        ("/v1/responses (to a chat upstream)", enc(chat).encode(), "/v1/responses", enc(responses).encode()),
    ]


def direct_path(route: str) -> str:
    return "/v1/embeddings" if route == "/v1/embeddings" else "/v1/chat/completions"


async def route_rows(sequential: Any, row: Any, up_port: int, px_port: int, n: int, label: str, prompt: str,
                     answer: str, errs: list[str]) -> list[str]:
    """One row per route: `sequential(port, body, n, path=...)` directly and through the proxy."""
    rows = []
    for name, direct_body, path, body in bodies(prompt, answer):
        await sequential(up_port, direct_body, 3, path=direct_path(name))
        await sequential(px_port, body, 3, path=path)
        d = await sequential(up_port, direct_body, n, path=direct_path(name))
        p = await sequential(px_port, body, n, path=path)
        rows.append(row(f"{label}, {name}, 1 at a time", d, p, errs=errs))
    return rows
