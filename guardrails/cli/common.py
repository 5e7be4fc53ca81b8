"""What every `trustwall` sub-command shares: exit codes, the one-line error exit, and settings built from
the environment plus the global options (`--data-dir`) and per-command overrides."""

from __future__ import annotations

import typer

from guardrails.settings import Settings

EXIT_USAGE = 2  # usage, policy and configuration errors
EXIT_BLOCK = 3  # scan: the policy blocks


def fail(message: str, code: int = EXIT_USAGE) -> None:
    """Print one line on stderr and exit (never a traceback)."""
    typer.echo(f"trustwall: {message}", err=True)
    raise typer.Exit(code)


def settings_from(ctx: typer.Context | None = None, **overrides: object) -> Settings:
    """Settings from the environment, with the global options and per-command overrides applied."""
    base: dict[str, object] = {}
    root = ctx.find_root() if ctx is not None else None
    if root is not None and isinstance(root.obj, dict):
        base.update({k: v for k, v in root.obj.items() if v is not None})
    base.update({k: v for k, v in overrides.items() if v is not None})
    return Settings(**base)  # type: ignore[arg-type]
