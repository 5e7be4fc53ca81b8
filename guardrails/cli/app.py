"""The `trustwall` command line: scan, policy check, and the sub-commands each capability adds.

Exit codes: 0 allow/flag/redact/route (and success), 3 block, 2 usage, policy or configuration errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Optional

import typer

from guardrails.errors import TrustwallError
from guardrails.types import Action, CallContext, Principal

app = typer.Typer(
    name="trustwall",
    help="A trust-and-safety layer for language model calls.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
policy_app = typer.Typer(help="Validate and inspect policy files.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

from guardrails.cli.common import EXIT_BLOCK, EXIT_USAGE, settings_from  # noqa: E402
from guardrails.cli.common import fail as _fail  # noqa: E402




@app.callback()
def _root(
    ctx: typer.Context,
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", envvar="TRUSTWALL_DATA_DIR",
                                            help="Where the audit log, keys and indexes live."),
) -> None:
    ctx.obj = {"data_dir": data_dir}




@app.command()
def scan(
    ctx: typer.Context,
    stage: str = typer.Option("input", "--stage", help="input (pre-checks) or output (post-checks)."),
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy YAML (default: embedded)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    role: str = typer.Option("local", "--role", help="Role used for restoration rules."),
    message_role: str = typer.Option("user", "--message-role",
                                     help="Chat role the text arrives as (user, tool, system, ...): detectors "
                                          "scoped by role (injection reads user and tool) honour it."),
    counterfactual: bool = typer.Option(False, "--counterfactual",
                                        help="Also swap identity-group terms and report how scores move."),
) -> None:
    """Read text from stdin, run one stage of the policy over it and print the decision."""
    if stage not in ("input", "output"):
        _fail(f"--stage must be input or output, not {stage!r}")
    text = sys.stdin.read()
    if text.endswith("\n"):
        text = text[:-1]
    from guardrails.runtime import build_runtime

    settings = settings_from(ctx, policy=policy)
    runtime = build_runtime(settings, audit=False)
    try:
        rctx = CallContext(principal=Principal("cli", role), route="cli",
                           roles=(message_role,) if stage == "input" else None)
        decision = asyncio.run(runtime.pipeline.check(stage, [text], rctx))  # type: ignore[arg-type]
        extra = None
        if counterfactual:
            from detectors.bias import counterfactual_report  # owned by the bias detector

            extra = asyncio.run(counterfactual_report(runtime, text))
    finally:
        asyncio.run(runtime.aclose())
    if as_json:
        out = {
            "action": decision.action.label,
            "text": decision.text,
            "findings": [
                {"detector": j.finding.detector, "category": j.finding.category, "score": round(j.finding.score, 6),
                 "span": list(j.finding.span) if j.finding.span else None, "action": j.action.label,
                 "evidence": dict(j.finding.evidence)}
                for j in decision.judgements
            ],
            "categories": list(decision.categories),
            "message": decision.message,
            "route": decision.upstream,
            "timings": [t.to_dict() for t in decision.timings],
            "policy": {"id": decision.policy_id, "version": decision.policy_version},
        }
        if extra is not None:
            out["counterfactual"] = extra
        typer.echo(json.dumps(out, ensure_ascii=False))
    else:
        typer.echo(f"action: {decision.action.label}")
        for j in decision.judgements:
            span = f"[{j.finding.span[0]}:{j.finding.span[1]}]" if j.finding.span else "[text]"
            typer.echo(f"  {j.action.label:<6} {j.finding.detector}/{j.finding.category} score={j.finding.score:.3f} {span}")
        if decision.message:
            typer.echo(f"message: {decision.message}")
        typer.echo("text:")
        typer.echo(decision.text)
        if extra is not None:
            typer.echo("counterfactual:")
            typer.echo(json.dumps(extra, indent=2, ensure_ascii=False))
    if decision.action is Action.BLOCK:
        raise typer.Exit(EXIT_BLOCK)


@policy_app.command("check")
def policy_check(file: Path = typer.Argument(..., help="Policy YAML to validate.")) -> None:
    """Validate a policy (structure, detector types, detector options) and print what it enables."""
    from detectors.registry import builtin_registry
    from guardrails.policy import describe, load_policy

    from guardrails.licences import licence_warnings

    policy = load_policy(file, builtin_registry())
    typer.echo(f"{file}: OK")
    typer.echo(describe(policy))
    for w in licence_warnings(policy):  # issue 18: undeclared model licences
        typer.echo(f"warning: {w}", err=True)


@app.command()
def bench(
    quick: bool = typer.Option(False, "--quick", help="Small samples."),
    only: str = typer.Option("", "--only", help="Comma-separated benchmark names (pii, toxicity, ...)."),
) -> None:
    """Run the benchmarks in benchmarks/ (from a source checkout) and print their tables."""
    root = Path(__file__).resolve().parent.parent
    if not (root / "benchmarks" / "run_all.py").exists():
        _fail("benchmarks/ is not here: run this from a source checkout of trustwall")
    import subprocess

    cmd = [sys.executable, "-m", "benchmarks.run_all"] + (["--quick"] if quick else []) + (["--only", only] if only else [])
    raise typer.Exit(subprocess.call(cmd, cwd=root))


# --- sub-apps --- (each capability mounts its commands here, one line each)
from guardrails.cli import audit, bias, corpus, experiments, models, serve  # noqa: E402 - the sub-commands

app.add_typer(corpus.app, name="corpus")
app.add_typer(models.app, name="models")
app.add_typer(audit.app, name="audit")
app.add_typer(bias.app, name="bias")
app.add_typer(serve.app)  # serve, keys
app.add_typer(experiments.app, name="experiments")


def main() -> None:
    try:
        app()
    except TrustwallError as exc:
        typer.echo(f"trustwall: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except KeyboardInterrupt:  # pragma: no cover
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
