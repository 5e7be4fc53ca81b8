"""Which argument of a guarded function is the prompt (and which the principal), and how to call the
function again with the checked prompt."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guardrails.inprocess.prompt import Prompt
from guardrails.types import Principal

if TYPE_CHECKING:  # pragma: no cover

    pass

# -------------------------------------------------------------------------------- argument binding


@dataclasses.dataclass
class Bound:
    binder: Binder
    bound: inspect.BoundArguments
    prompt: Prompt
    principal: Principal | str | None

    def with_prompt(self, value: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
        args = self.bound.arguments
        b = self.binder
        if b.var_kw is not None and b.name not in b.sig.parameters:
            args[b.var_kw] = {**args[b.var_kw], b.name: value}
        elif b.var_pos_index is not None:
            items = list(args[b.name])
            items[0] = value
            args[b.name] = tuple(items)
        else:
            args[b.name] = value
        return self.bound.args, self.bound.kwargs


class Binder:
    """Finds the prompt (and the principal) among a function's arguments."""

    def __init__(self, fn: Callable[..., Any], input_arg: str | int | None, principal_arg: str | None):
        self.sig = inspect.signature(fn)
        params = list(self.sig.parameters.values())
        self.var_kw = next((p.name for p in params if p.kind is p.VAR_KEYWORD), None)
        self.var_pos_index: int | None = None
        positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)]
        if positional and positional[0].name in ("self", "cls"):
            positional = positional[1:]
        if isinstance(input_arg, int):
            if input_arg >= len(positional):
                raise TypeError(f"{fn.__qualname__} has no positional parameter {input_arg}")
            name = positional[input_arg].name
        elif isinstance(input_arg, str):
            if input_arg not in self.sig.parameters and self.var_kw is None:
                raise TypeError(f"{fn.__qualname__} has no parameter {input_arg!r}")
            name = input_arg
        else:
            name = next((n for n in ("prompt", "messages") if n in self.sig.parameters), None)
            if name is None:
                if not positional and self.var_kw is None:
                    raise TypeError(f"cannot guard {fn.__qualname__}: it takes no prompt argument")
                name = positional[0].name if positional else "messages"
        param = self.sig.parameters.get(name)
        if param is not None and param.kind is param.VAR_POSITIONAL:
            self.var_pos_index = 0
        self.name = name
        self.principal_arg = principal_arg
        if principal_arg is not None and principal_arg not in self.sig.parameters and self.var_kw is None:
            raise TypeError(f"{fn.__qualname__} has no parameter {principal_arg!r}")
        self.qualname = fn.__qualname__

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Bound:
        bound = self.sig.bind(*args, **kwargs)
        arguments = bound.arguments
        if self.name in self.sig.parameters:
            param = self.sig.parameters[self.name]
            if self.name in arguments:
                value = arguments[self.name]
                if self.var_pos_index is not None:
                    if not value:
                        raise TypeError(f"{self.qualname}() was called without a prompt")
                    value = value[0]
            elif param.default is not param.empty:
                value = param.default
                arguments[self.name] = value
            else:  # pragma: no cover - bind() raised already
                raise TypeError(f"{self.qualname}() missing the prompt argument {self.name!r}")
        else:
            extra = arguments.get(self.var_kw or "", {})
            if self.name not in extra:
                raise TypeError(f"{self.qualname}() was called without a {self.name!r} argument")
            value = extra[self.name]
        principal = None
        if self.principal_arg is not None:
            principal = arguments.get(self.principal_arg)
            if principal is None and self.var_kw is not None:
                principal = arguments.get(self.var_kw, {}).get(self.principal_arg)
        return Bound(self, bound, Prompt.read(value), principal)
