"""How the texts of what a guarded function returns are read, and the checked texts written back:
a string (the default), a reader function, or an OpenAI ChatCompletion (guardrails.inprocess.objects)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from guardrails.inprocess.prompt import field_of
from guardrails.types import Decision

if TYPE_CHECKING:  # pragma: no cover
    from guardrails.call import Call


# ------------------------------------------------------------------------------------- outputs


@runtime_checkable
class OutputAdapter(Protocol):
    """How to read the texts of what a guarded function returns, and write the checked texts back."""

    def read(self, result: Any) -> list[str]: ...

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any: ...

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any: ...


class TextOutput:
    """The function returns a string (the default)."""

    def read(self, result: Any) -> list[str]:
        if not isinstance(result, str):
            raise TypeError(f"the guarded function returned {type(result).__name__}, not a string: pass output= a "
                            "callable that reads the text from it, or output='openai' for ChatCompletion objects")
        return [result]

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        return texts[0]

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        return message


class ReaderOutput:
    """`output=callable`: the text is read from the result by a function of the user; the guarded function
    then returns that text, checked and restored (the object itself could still hold unchecked text)."""

    def __init__(self, reader: Callable[[Any], str]):
        self.reader = reader

    def read(self, result: Any) -> list[str]:
        text = self.reader(result)
        if not isinstance(text, str):
            raise TypeError(f"output reader returned {type(text).__name__}, not a string")
        return [text]

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        return texts[0]

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        return message


class AutoOutput(TextOutput):
    """A string is the output; an OpenAI ChatCompletion (SDK object or dict) is read with the built-in
    adapter, every text field of every choice."""

    @staticmethod
    def _is_completion(result: Any) -> bool:
        return not isinstance(result, str) and field_of(result, "object") == "chat.completion"

    def _pick(self, result: Any) -> OutputAdapter:
        if self._is_completion(result):
            from guardrails.inprocess.objects import ChatCompletionOutput

            return ChatCompletionOutput()
        return TextOutput()

    def read(self, result: Any) -> Any:
        return self._pick(result).read(result)

    async def check(self, call: Call[Any], prepared: Any, result: Any) -> tuple[Decision, Any]:
        if self._is_completion(result):
            from guardrails.inprocess.objects import ChatCompletionOutput

            return await ChatCompletionOutput().check(call, prepared, result)
        dec, restored = await call.check_texts(prepared)
        return dec, (None if dec.blocked else restored[0])

    def write(self, result: Any, texts: Sequence[str], decision: Decision) -> Any:
        return self._pick(result).write(result, texts, decision)

    def refusal(self, message: str, decision: Decision, result: Any | None) -> Any:
        return self._pick(result).refusal(message, decision, result) if result is not None else message


def output_adapter(output: None | str | Callable[[Any], str] | OutputAdapter) -> OutputAdapter:
    if output is None or output == "auto":
        return AutoOutput()
    if output == "text":
        return TextOutput()
    if output == "openai":
        from guardrails.inprocess.objects import ChatCompletionOutput

        return ChatCompletionOutput()
    if isinstance(output, OutputAdapter):
        return output
    if callable(output):
        return ReaderOutput(output)
    raise TypeError(f"output= must be None, 'text', 'openai', a callable or an OutputAdapter, not {output!r}")
