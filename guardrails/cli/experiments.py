"""`trustwall experiments report NAME`: compare an experiment's variants from the audit log (a store URL,
SQLite or PostgreSQL or JSONL, or an export file), as a table, JSON or CSV.

Exit codes: 0 success, 2 usage or configuration error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from guardrails.cli.common import fail as _fail
from guardrails.cli.common import settings_from as _settings

app = typer.Typer(help="A/B experiments across upstreams: reports from the audit log.", no_args_is_help=True)


@app.command("report")
def report_cmd(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="The experiment's name (as in the policy)."),
    since: Optional[str] = typer.Option(None, help="Only calls at or after this time (2026-11-23, ISO 8601, unix s)."),
    until: Optional[str] = typer.Option(None, help="Only calls before this time."),
    fmt: str = typer.Option("table", "--format", "-f", help="table, json or csv."),
    url: Optional[str] = typer.Option(None, "--url", help="Audit store URL (default: TRUSTWALL_AUDIT_URL, else SQLite "
                                                          "in the data dir)."),
    export: Optional[Path] = typer.Option(None, "--from", help="Read an export file (.jsonl, .csv, .parquet) instead "
                                                               "of the store."),
) -> None:
    """Per variant: calls, block / flag / redact rates per category, output refusals, upstream errors,
    latency p50/p95, tokens; Wilson 95% intervals and a chi-square test between variants."""
    from guardrails.audit.export import make_filters
    from guardrails.audit.rows import rows_from_file, rows_from_store
    from guardrails.errors import TrustwallError
    from guardrails.experiment_report import build_report, csv_text, render_table

    if fmt not in ("table", "json", "csv"):
        _fail(f"--format must be table, json or csv (got {fmt!r})")
    try:
        filters = make_filters(since, until)
    except ValueError as exc:
        _fail(str(exc))
    store: Any = None
    try:
        if export is not None:
            if not export.exists():
                _fail(f"{export}: file not found")
            report = build_report(name, rows_from_file(export, filters))
        else:
            from guardrails.audit import open_store

            store = open_store(_settings(ctx), url)
            report = build_report(name, rows_from_store(store, filters))
    except (TrustwallError, ValueError, OSError) as exc:
        _fail(str(exc))
    finally:
        if store is not None:
            store.close()
    if fmt == "json":
        typer.echo(json.dumps(report, indent=2, sort_keys=True))
    elif fmt == "csv":
        typer.echo(csv_text(report), nl=False)
    else:
        from rich.console import Console

        render_table(report, Console(width=160))
