"""`trustwall bias ...`: the counterfactual probe for audits.

    trustwall bias probe "Women are bad drivers."            # swap each group for its counterpart
    echo "..." | trustwall bias probe --all-groups --json    # every other group of the same attribute

It reports the bias score (and the toxicity score when the policy has a toxicity detector) of the text and
of each variant with the group terms swapped, and the largest moves. `trustwall scan --counterfactual`
calls the same code (counterfactual_report in detectors/bias/counterfactual.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(name="bias", help="Bias audits: counterfactual probes over identity-group terms.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)


@app.callback()
def _group() -> None:
    """Bias audits: counterfactual probes over identity-group terms."""


from guardrails.cli.common import fail as _fail  # noqa: E402


@app.command("probe")
def probe_cmd(
    ctx: typer.Context,
    text: Optional[str] = typer.Argument(None, help="Text to probe (default: read stdin)."),
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy YAML (default: embedded)."),
    all_groups: bool = typer.Option(False, "--all-groups", help="Swap to every other group of the attribute."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Swap identity-group terms in TEXT and report how the bias and toxicity scores move."""
    from guardrails.errors import TrustwallError

    if text is None:
        text = sys.stdin.read().rstrip("\n")
    if not text.strip():
        _fail("no text given (argument or stdin)")
    try:
        from detectors.bias import counterfactual_report
        from guardrails.runtime import build_runtime
        from guardrails.cli.common import settings_from

        settings = settings_from(ctx, policy=policy)
        runtime = build_runtime(settings, audit=False)
    except TrustwallError as exc:
        _fail(str(exc))
        return
    try:
        report = asyncio.run(counterfactual_report(runtime, text, all_groups=all_groups))
    finally:
        asyncio.run(runtime.aclose())
    if as_json:
        typer.echo(json.dumps(report, ensure_ascii=False))
        return
    o = report["original"]
    tox = "" if o["toxicity"] is None else f"  toxicity={o['toxicity']:.3f}"
    typer.echo(f"original: bias={o['bias']:.3f}{tox}")
    for f in o["findings"]:
        typer.echo(f"  {f['category']} ({f['group']}) score={f['score']:.3f} span={f['span']}")
    if not report["variants"]:
        typer.echo("no identity-group terms to swap")
        return
    for v in report["variants"]:
        t = "" if v["toxicity"] is None else f"  toxicity={v['toxicity']:.3f} ({v['delta_toxicity']:+.3f})"
        typer.echo(f"{v['from']} -> {v['to']}: bias={v['bias']:.3f} ({v['delta_bias']:+.3f}){t}")
        typer.echo(f"  {v['text']}")
    typer.echo(f"max |delta bias| = {report['max_abs_delta_bias']:.3f}"
               + ("" if report["max_abs_delta_toxicity"] is None else f", max |delta toxicity| = {report['max_abs_delta_toxicity']:.3f}"))
