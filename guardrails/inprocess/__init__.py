"""The in-process ways in: `Guard` (manual checks), the `@guard` decorator and `wrap_openai`. Each is a
thin adapter over the one call lifecycle (guardrails.call.Call) and the wire codec (guardrails.wire).

    principal.py   who is calling (a ContextVar)        loop.py      the Guard's private event loop
    prompt.py      prompts in the caller's shape        outputs.py   reading / writing what a function returns
    streams.py     guarded generators and stream drivers binding.py   which argument is the prompt
    guard.py       Guard, @guard                        objects.py   ChatCompletion / chunk objects
    openai_client.py   wrap_openai(client)

Importing this package is cheap: nothing here loads a model or the pipeline until a Guard is built.
"""

from __future__ import annotations

from typing import Any

from guardrails.inprocess.guard import Guard, InputCheck, OutputCheck, guard
from guardrails.inprocess.outputs import OutputAdapter, ReaderOutput, TextOutput
from guardrails.inprocess.principal import as_principal, current_principal, trustwall_principal
from guardrails.inprocess.prompt import Prompt
from guardrails.inprocess.streams import ROUTE_NAME, OnBlock

__all__ = ["ROUTE_NAME", "Guard", "GuardedOpenAI", "InputCheck", "OnBlock", "OutputAdapter", "OutputCheck", "Prompt",
           "ReaderOutput", "TextOutput", "as_principal", "current_principal", "guard", "trustwall_principal",
           "wrap_openai"]


def __getattr__(name: str) -> Any:
    if name in ("wrap_openai", "GuardedOpenAI"):  # imports the answer checks: only when asked for
        from guardrails.inprocess import openai_client

        return getattr(openai_client, name)
    raise AttributeError(f"module 'guardrails.inprocess' has no attribute {name!r}")
