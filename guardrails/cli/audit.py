"""`trustwall audit ...`: export, verify, prune, stats, keygen.

Exit codes: 0 success (verify: chain intact), 1 verify found tampering, 2 usage or configuration error.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer

app = typer.Typer(help="The tamper-evident audit log: export, verify, prune, stats.", no_args_is_help=True)

EXIT_BROKEN = 1
_URL_HELP = "Audit store URL (default: TRUSTWALL_AUDIT_URL, else SQLite in the data dir)."


from guardrails.cli.common import fail as _fail  # noqa: E402
from guardrails.cli.common import settings_from as _settings  # noqa: E402


def _open(ctx: typer.Context, url: str | None) -> tuple[Any, Any]:
    from guardrails.audit import open_store
    from guardrails.errors import TrustwallError

    settings = _settings(ctx)
    try:
        return settings, open_store(settings, url)
    except TrustwallError as exc:
        _fail(str(exc))
    raise AssertionError  # pragma: no cover


def _filters(since: str | None, until: str | None, principal: str | None, actions: list[str] | None) -> Any:
    from guardrails.audit.export import make_filters

    try:
        return make_filters(since, until, principal, actions)
    except ValueError as exc:
        _fail(str(exc))


@app.command("export")
def export_cmd(
    ctx: typer.Context,
    fmt: str = typer.Option("jsonl", "--format", "-f", help="jsonl, csv or parquet."),
    since: Optional[str] = typer.Option(None, help="Only records at or after this time (2026-11-23, ISO 8601, unix s)."),
    until: Optional[str] = typer.Option(None, help="Only records before this time."),
    principal: Optional[str] = typer.Option(None, help="Only this principal id."),
    action: Optional[list[str]] = typer.Option(None, "--action", help="Only these final actions (repeat or comma-separate)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Output file (default: stdout)."),
    url: Optional[str] = typer.Option(None, "--url", help=_URL_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
) -> None:
    """Stream the audit log out (flat memory), with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from guardrails.audit.export import FORMATS, export_chunks

    if fmt not in FORMATS:
        _fail(f"--format must be one of {', '.join(FORMATS)} (got {fmt!r})")
    if out is None and fmt == "parquet" and sys.stdout.isatty():
        _fail("parquet is binary: give --out FILE or redirect stdout")
    filters = _filters(since, until, principal, action)
    _, store = _open(ctx, url)
    try:
        total = store.count(filters)
        sink = open(out, "wb") if out is not None else sys.stdout.buffer  # noqa: SIM115
        console = Console(stderr=True)
        written = 0
        try:
            with Progress(TextColumn("export"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                          console=console, disable=quiet, transient=False) as bar:
                task = bar.add_task("export", total=total)
                for chunk in export_chunks(store, fmt, filters, on_progress=lambda n: bar.advance(task, n)):
                    sink.write(chunk)
                    written += len(chunk)
        finally:
            if out is not None:
                sink.close()
            else:
                sink.flush()
    except OSError as exc:
        _fail(f"cannot write export: {exc}")
    finally:
        store.close()
    if not quiet:
        typer.echo(f"exported {total} records ({written} bytes, {fmt})" + (f" to {out}" if out else ""), err=True)


@app.command("verify")
def verify_cmd(
    ctx: typer.Context,
    url: Optional[str] = typer.Option(None, "--url", help=_URL_HELP),
    public_key: Optional[Path] = typer.Option(None, "--public-key", help="Ed25519 public key (PEM) of the signer."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    expect: Optional[str] = typer.Option(None, "--expect", metavar="SEQ:HASH",
                                         help="A record noted outside the store earlier (as printed by verify): "
                                              "it must still be there, unchanged."),
) -> None:
    """Check the hash chain and the signed checkpoints; report the first record where it breaks.
    Exit 0 only when intact."""
    from guardrails.audit import verify
    from guardrails.errors import TrustwallError

    expected: tuple[int, str] | None = None
    if expect is not None:
        seq_s, _, hash_s = expect.partition(":")
        if not seq_s.isdigit() or len(hash_s) != 64:
            _fail("--expect takes SEQ:HASH (a record number and its 64-hex-digit hash)")
        expected = (int(seq_s), hash_s.lower())
    settings, store = _open(ctx, url)
    try:
        report = verify(store, settings, public_key=public_key, expect=expected)
    except TrustwallError as exc:
        _fail(str(exc))
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.summary())
        for w in report.warnings:
            typer.echo(f"warning: {w}", err=True)
    if not report.ok:
        raise typer.Exit(EXIT_BROKEN)


@app.command("prune")
def prune_cmd(
    ctx: typer.Context,
    before: str = typer.Option(..., "--before", help="Delete records older than this (2026-01-01, ISO 8601)."),
    url: Optional[str] = typer.Option(None, "--url", help=_URL_HELP),
) -> None:
    """Delete old records up to the last signed checkpoint before DATE; the rest stays verifiable
    (anchored at that checkpoint by a signed prune mark)."""
    from guardrails.audit.record import parse_time

    try:
        ts = parse_time(before)
    except ValueError as exc:
        _fail(str(exc))
    _, store = _open(ctx, url)
    try:
        result = store.prune(ts)
    finally:
        store.close()
    typer.echo(result.message)


@app.command("stats")
def stats_cmd(
    ctx: typer.Context,
    since: Optional[str] = typer.Option(None, help="Only records at or after this time."),
    until: Optional[str] = typer.Option(None, help="Only records before this time."),
    principal: Optional[str] = typer.Option(None, help="Only this principal id."),
    url: Optional[str] = typer.Option(None, "--url", help=_URL_HELP),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Actions and categories by day, principal and model."""
    from rich.console import Console
    from rich.table import Table

    from guardrails.audit.export import stats

    filters = _filters(since, until, principal, None)
    _, store = _open(ctx, url)
    try:
        data = stats(store, filters)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps(data, indent=2, sort_keys=True))
        return
    console = Console()
    console.print(f"{data['total']} records")
    for group in ("day", "principal", "model"):
        table = Table(title=f"by {group}")
        table.add_column(group)
        for a in ("allow", "flag", "redact", "route", "block"):
            table.add_column(a, justify="right")
        table.add_column("top categories")
        for key, v in data[f"by_{group}"].items():
            top = sorted(v["categories"].items(), key=lambda kv: (-kv[1], kv[0]))[:5]
            table.add_row(str(key), *(str(v["actions"].get(a, 0)) for a in ("allow", "flag", "redact", "route", "block")),
                          ", ".join(f"{c} {n}" for c, n in top))
        console.print(table)


@app.command("keygen")
def keygen_cmd(ctx: typer.Context, force: bool = typer.Option(False, "--force", help="Replace an existing key.")) -> None:
    """Create an Ed25519 key pair in the data dir; checkpoints are then signed with it."""
    from guardrails.audit.signing import keygen
    from guardrails.errors import TrustwallError

    settings = _settings(ctx)
    try:
        priv, pub = keygen(Path(settings.data_dir), overwrite=force)
    except TrustwallError as exc:
        _fail(str(exc))
    typer.echo(f"wrote {priv} (keep secret) and {pub} (give to verifiers)")
