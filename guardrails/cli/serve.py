"""`trustwall serve` (the OpenAI-compatible proxy under uvicorn) and `trustwall keys create|list|revoke`.

Errors go to stderr as one line and exit 2 (usage, policy and configuration errors); never a traceback.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Optional

import typer

from guardrails.errors import TrustwallError

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
keys_app = typer.Typer(help="Create, list and revoke the proxy's API keys.", no_args_is_help=True,
                       pretty_exceptions_enable=False)
app.add_typer(keys_app, name="keys")



from guardrails.cli.common import settings_from as _settings  # noqa: E402


from guardrails.cli.common import fail as _fail  # noqa: E402


@app.command()
def serve(
    ctx: typer.Context,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. Non-loopback needs a key or --allow-anonymous."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="Port to listen on."),
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy YAML (default: embedded)."),
    upstream: Optional[str] = typer.Option(None, "--upstream",
                                           help="'echo' or an OpenAI-compatible base URL (e.g. http://127.0.0.1:8000/v1) "
                                                "that replaces the policy's default upstream. Its key: "
                                                "$TRUSTWALL_UPSTREAM_API_KEY."),
    allow_anonymous: bool = typer.Option(False, "--allow-anonymous",
                                         help="Accept keyless calls on a non-loopback address while no key exists."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
    max_inflight: Optional[int] = typer.Option(None, "--max-inflight", min=1,
                                               help="Load shedding: guarded calls in flight before 503 + Retry-After "
                                                    "(default: $TRUSTWALL_MAX_INFLIGHT, else unbounded)."),
) -> None:
    """Run the OpenAI-compatible proxy: point a client's base_url at http://HOST:PORT/v1."""
    try:
        settings = _settings(ctx, policy=policy, max_inflight=max_inflight)
        from detectors.registry import builtin_registry
        from guardrails import access
        from guardrails.keys import open_key_store
        from guardrails.policy import load_policy
        from guardrails.proxy.app import upstream_specs

        pol = load_policy(settings.policy_path(), builtin_registry())
        upstream_specs(pol, upstream)
        store = open_key_store(settings)
        try:
            exists = store.has_active()
        finally:
            store.close()
        why = access.startup_error(pol, host, exists, allow_anonymous)
        if why:
            _fail(why)
    except TrustwallError as exc:
        _fail(str(exc))
    import uvicorn

    from guardrails.proxy import create_app

    application = create_app(settings, host=host, allow_anonymous=allow_anonymous, upstream=upstream, audit=True)
    shown = f"[{host}]" if ":" in host else host
    typer.echo(f"trustwall proxy on http://{shown}:{port}/v1 (policy {pol.id}; "
               f"{'keys required' if exists else 'no keys yet: keyless calls run as role ' + str(pol.access.anonymous_role)})",
               err=True)
    from guardrails.proxy.protocol import http_protocol

    # http=: uvicorn's parser, but malformed HTTP gets an OpenAI-style JSON error body, not a text line
    uvicorn.run(application, host=host, port=port, log_level=log_level, lifespan="on", http=http_protocol())


def _store(ctx: typer.Context):  # noqa: ANN202
    from guardrails.keys import open_key_store

    try:
        return open_key_store(_settings(ctx))
    except TrustwallError as exc:
        _fail(str(exc))


@keys_app.command("create")
def keys_create(
    ctx: typer.Context,
    role: str = typer.Option(..., "--role", help="Role from the policy's access.roles."),
    name: str = typer.Option("", "--name", help="A label to recognise the key by."),
    policy: Optional[Path] = typer.Option(None, "--policy", "-p", help="Policy whose roles to check (default: embedded)."),
    force: bool = typer.Option(False, "--force", help="Create even if the policy does not define the role."),
) -> None:
    """Create a key. It is printed once, here, and stored only as a hash."""
    if not force:
        try:
            from guardrails.policy import load_policy

            pol = load_policy(_settings(ctx, policy=policy).policy_path())
        except TrustwallError as exc:
            _fail(str(exc))
        if role not in pol.access.roles:
            _fail(f"role {role!r} is not defined by policy {pol.id} (roles: {', '.join(sorted(pol.access.roles))}); "
                  "use --force to create it anyway")
    store = _store(ctx)
    try:
        info, key = store.create(role, name)
    except TrustwallError as exc:
        _fail(str(exc))
    finally:
        store.close()
    typer.echo(key)
    typer.echo(f"key id {info.id}, role {info.role}. This is the only time the key is shown: store it now.", err=True)


@keys_app.command("list")
def keys_list(ctx: typer.Context, all_keys: bool = typer.Option(False, "--all", help="Include revoked keys.")) -> None:
    """List keys (ids, roles, names; never the keys)."""
    store = _store(ctx)
    try:
        infos = store.list(include_revoked=all_keys)
    finally:
        store.close()
    if not infos:
        typer.echo("no keys" + ("" if all_keys else " (active)"), err=True)
        return
    typer.echo(f"{'id':<14}{'role':<16}{'created (UTC)':<22}{'status':<10}name")
    for i in infos:
        created = _dt.datetime.fromtimestamp(i.created_at, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")
        typer.echo(f"{i.id:<14}{i.role:<16}{created:<22}{'active' if i.active else 'revoked':<10}{i.name}")


@keys_app.command("revoke")
def keys_revoke(ctx: typer.Context, key_id: str = typer.Argument(..., help="The key id shown by `keys list`.")) -> None:
    """Revoke a key: calls with it fail with 401 from the next second on."""
    store = _store(ctx)
    try:
        ok = store.revoke(key_id.removeprefix("key:"))
    finally:
        store.close()
    if not ok:
        _fail(f"no active key with id {key_id!r}")
    typer.echo(f"revoked {key_id}")
