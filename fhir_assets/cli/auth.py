"""``fhir-assets keys ...`` and ``fhir-assets auth ...``: client keys, token checks, user login.

Heavy modules are imported inside the commands so ``fhir-assets --help`` stays fast. No command
ever prints an access token, a refresh token, a secret or a private key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer

from .common import environ

keys_app = typer.Typer(
    help="Client keys for SMART Backend Services.", no_args_is_help=True, rich_markup_mode=None
)
auth_app = typer.Typer(
    help="Check and obtain SMART access tokens.", no_args_is_help=True, rich_markup_mode=None
)


@keys_app.command("generate")
def keys_generate(
    out: Path = typer.Option(..., "--out", help="where to write the private key (PEM, 0600)"),
    alg: str = typer.Option("RS384", "--alg", help="RS384 or ES384"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing key"),
) -> None:
    """Write a new private key and PATH.jwks.json, and print the public JWKS to register."""
    import json

    from ..fhir.errors import ConfigurationError
    from ..fhir.keys import generate_private_key, public_jwks, write_private_key

    if out.exists() and not force:
        typer.echo(f"{out} exists; pass --force to replace it", err=True)
        raise typer.Exit(2)
    try:
        key = generate_private_key(alg.upper())
    except ConfigurationError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    jwks_path = write_private_key(key, out)
    typer.echo(json.dumps(public_jwks(key), indent=2))
    typer.echo(f"private key: {out} (mode 0600)\npublic JWKS: {jwks_path}", err=True)


def _settings():  # type: ignore[no-untyped-def]
    """The client settings of ``FHIR_*`` (the same ``Settings`` the assets are built from)."""
    from ..catalog import select
    from ..settings import FhirSettings, SyncSettings, load

    env = environ()
    types = tuple(spec.resource_type for spec in select(load(SyncSettings, env).resource_types))
    return load(FhirSettings, env).server(types)


def _expiry(expires_at: float) -> str:
    when = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{when} (in {int(expires_at - datetime.now(UTC).timestamp())} s)"


@auth_app.command("check")
def auth_check() -> None:
    """Obtain a token with the FHIR_* settings; print granted scopes and expiry, never the token.

    Exits 1 if no token can be had or the scopes do not cover FHIR_RESOURCE_TYPES.
    """
    from ..fhir import require_read, token_source
    from ..settings import FhirSettings, load
    from .probe import capability_statement, check_private_key

    settings = _settings()
    capability_statement(settings.base_url)
    fhir = load(FhirSettings, environ())
    check_private_key(None if fhir.private_key else fhir.private_key_path)
    tokens = token_source(settings)
    if tokens is None:
        typer.echo(
            f"{settings.base_url}: a FHIR server; no client configured (FHIR_CLIENT_ID unset), "
            "so requests go without a token"
        )
        return
    token = tokens.token()
    typer.echo(f"server        : {settings.base_url}\nauth method   : {settings.method()}")
    typer.echo(f"token endpoint: {getattr(tokens, 'token_url', '?')}")
    typer.echo(f"granted scopes: {token.scope or '(none stated)'}")
    typer.echo(f"expires       : {_expiry(token.expires_at)}")
    require_read(token.scope, settings.resource_types)
    typer.echo(f"covers        : {len(settings.resource_types)} resource types")


@auth_app.command("login")
def auth_login(
    port: int = typer.Option(0, "--port", help="loopback port for the redirect (0: any free)"),
    timeout: float = typer.Option(300.0, "--timeout", help="seconds to wait for approval"),
    no_browser: bool = typer.Option(False, "--no-browser", help="only print the URL"),
) -> None:
    """Authorization code + PKCE: approve in a browser, then store the tokens encrypted."""
    import webbrowser

    from ..fhir import CodeClient, discover
    from ..fhir.login import login
    from ..fhir.settings import requested_scopes, token_store
    from .probe import capability_statement

    settings = _settings()
    capability_statement(settings.base_url)
    config = discover(settings.base_url, timeout=settings.timeout_s)
    store = token_store(settings)
    token = login(
        config,
        base_url=settings.base_url,
        client=CodeClient(settings.client_id or "", settings.client_secret),
        scope=requested_scopes(settings, config),
        store=store,
        open_browser=(lambda url: None) if no_browser else webbrowser.open,
        echo=typer.echo,
        timeout=timeout,
        port=port,
    )
    typer.echo(f"logged in; granted scopes: {token.scope or '(none stated)'}")
    typer.echo(
        f"access token expires {_expiry(token.expires_at)}; refresh token: "
        f"{'stored' if token.refresh_token else 'none (ask for offline_access)'}"
    )
    typer.echo(
        f"tokens stored encrypted in {store.path(settings.base_url, settings.client_id or '')}"
    )


@auth_app.command("new-key")
def auth_new_key() -> None:
    """Print a new random key for FHIR_TOKEN_KEY (encrypts stored tokens)."""
    from ..fhir.token_store import new_key

    typer.echo(new_key())
