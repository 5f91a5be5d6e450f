"""``fhir-assets pools``: the Dagster pools of this deployment, their profile defaults and the
limits the Dagster instance (``DAGSTER_HOME``) holds; ``--apply`` sets the defaults.

Dagster OSS keeps per-pool limits in the instance database (``dagster instance concurrency set``
or the UI), not in ``dagster.yaml``, so the server profile's limits (``fhir_assets.pools``) get
there through this command. It builds the definitions and opens the instance, so it imports
Dagster, inside the command only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer

from .common import environ
from .errors import CliError

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from ..fhir.profiles import ServerProfile
    from ..pools import PoolLimit
    from ..settings import Settings

PROFILE_FIX = "set FHIR_SERVER_PROFILE (or pass --profile): epic, oracle, hapi, sekmet, generic"


def pools(
    apply: bool = typer.Option(
        False, "--apply", help="set the profile's limit on every pool without a limit of its own"
    ),
    force: bool = typer.Option(
        False, "--force", help="with --apply: also replace limits set by hand"
    ),
    profile: str = typer.Option(
        None, "--profile", help="server profile (default: FHIR_SERVER_PROFILE, else detected)"
    ),
) -> None:
    """Show each Dagster pool the definitions use, its default limit from the server profile
    and its limit in the Dagster instance at DAGSTER_HOME; --apply sets the defaults."""
    from ..settings import Settings

    if not os.environ.get("DAGSTER_HOME"):
        raise CliError("DAGSTER_HOME is not set", "set it to the folder of the instance's "
                       "dagster.yaml (the one the daemon and the UI use)")  # fmt: skip
    settings = Settings.from_environ(environ())
    chosen, source = resolve_profile(settings, profile, strict=apply)
    from dagster import DagsterInstance

    with DagsterInstance.get() as instance:
        before = pool_limits(settings, instance, chosen)
        actions = [_action(limit, apply, force) for limit in before]
        after = before
        if apply:
            from ..pools import apply_limits, read_limits

            apply_limits(instance, before, force)
            defaults = {limit.pool: limit.default for limit in before}
            after = read_limits(instance, defaults, defaults)
    typer.echo(f"server profile: {chosen.name} ({source})")
    typer.echo(f"{'pool':40} {'default':>7}  {'instance limit':22} action")
    for limit, action in zip(after, actions, strict=True):
        typer.echo(f"{limit.pool:40} {_number(limit.default):>7}  {_current(limit):22} {action}")


def resolve_profile(
    settings: Settings, name: str | None, *, strict: bool
) -> tuple[ServerProfile, str]:
    """The server profile named by ``--profile`` or FHIR_SERVER_PROFILE, else detected from the
    server's CapabilityStatement; ``generic`` when it cannot be detected, unless ``strict``
    (``--apply`` writes no guessed limits).

    Raises:
        CliError: ``strict`` and the profile cannot be detected.
    """
    from ..fhir.profiles import GENERIC, detect_profile, get_profile
    from .probe import capability_statement

    if name or settings.fhir.server_profile:
        source = "--profile" if name else "FHIR_SERVER_PROFILE"
        return get_profile(name or settings.fhir.server_profile or ""), source
    try:
        statement = capability_statement(settings.fhir.base_url)
    except CliError as exc:
        if strict:
            raise CliError(f"cannot detect the server profile: {exc.what}", PROFILE_FIX) from exc
        return GENERIC, f"not detected: {exc.what}; {PROFILE_FIX}"
    if statement is None:
        if strict:
            raise CliError("cannot detect the server profile: /metadata needs a token",
                           PROFILE_FIX)  # fmt: skip
        return GENERIC, f"not detected: /metadata needs a token; {PROFILE_FIX}"
    return detect_profile(statement), "detected from the CapabilityStatement"


def pool_limits(
    settings: Settings, instance: DagsterInstance, profile: ServerProfile
) -> list[PoolLimit]:
    """Every pool the deployment's definitions declare, with the profile's default and the
    instance's current limit.

    Raises:
        CliError: the instance's storage cannot hold pool limits.
    """
    from ..assets.defs import build_all_defs
    from ..pools import declared_pools, default_limits, read_limits

    if not instance.event_log_storage.supports_global_concurrency_limits:
        raise CliError("this Dagster instance's storage cannot hold pool limits",
                       "run `dagster instance migrate`")  # fmt: skip
    defaults = default_limits(profile, settings.fhir.base_url)
    return read_limits(instance, declared_pools(build_all_defs(settings)), defaults)


def apply_defaults(settings: Settings, instance: DagsterInstance) -> dict[str, int]:
    """Set the profile's limits on the pools of ``settings`` that have none of their own (what
    ``fhir-assets pools --apply`` does); returns the pools set.

    Raises:
        CliError: the server profile cannot be detected, or the storage holds no pool limits.
    """
    from ..pools import apply_limits

    profile, _ = resolve_profile(settings, None, strict=True)
    return apply_limits(instance, pool_limits(settings, instance, profile))


def _number(value: int | None) -> str:
    return "-" if value is None else str(value)


def _current(limit: PoolLimit) -> str:
    if limit.current is None:
        return "unlimited"
    return f"{limit.current} ({'set' if limit.explicit else 'default_limit'})"


def _action(limit: PoolLimit, apply: bool, force: bool) -> str:
    target = limit.target(force)
    if target is not None:
        was = _current(limit).split(" ")[0]
        return f"set (was {was})" if apply else "--apply sets it"
    if limit.default is None:
        return "no profile default"
    if limit.current != limit.default:
        return "kept (set by hand; --apply --force resets it)"
    return "ok"


def register(app: typer.Typer) -> None:
    """Add ``pools`` to ``app``."""
    app.command("pools")(pools)
