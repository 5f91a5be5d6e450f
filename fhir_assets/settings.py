"""The one typed configuration of a deployment: every ``FHIR_*`` and ``SNOWFLAKE_*`` setting,
spelled once, as frozen dataclasses.

Each field's metadata names its environment variable; :func:`load` reads any of these classes
from a mapping, so ``definitions.py`` (the only module that reads ``os.environ``) and the CLI
build the same object, and tests and demos build it from a plain dict. Nothing here imports
Dagster. Values are parsed, not checked against each other: ``FHIR_PARTITIONS`` is checked by
the code that builds partitions, so a bad value there cannot break ``fhir-assets land``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from .fhir.ndjson import MAX_LINE_BYTES
from .warehouse.settings import DuckDBSettings, WarehouseSettings
from .warehouse.snowflake import SnowflakeSettings

if TYPE_CHECKING:
    from .fhir.settings import ServerSettings

# The FHIR client library (fhir_assets.fhir: authlib, requests) is imported only where it is
# used: it costs about a second, which `fhir-assets land` and the IO managers should not pay.

T = TypeVar("T")
TRUE = ("1", "true", "yes", "on")


def _env(name: str, help: str, *, secret: bool = False) -> dict[str, Any]:
    return {"env": name, "help": help, "secret": secret}


@dataclass(frozen=True, slots=True)
class LimitSettings:
    """Bounds and deadlines on what a FHIR server sends (docs/security.md): every loop over
    server input ends with an error naming the variable that raises its bound. The same
    names and defaults as ``fhir_assets.fhir.limits.Limits`` (a test holds them equal)."""

    max_redirects: int = field(
        default=5, metadata=_env("FHIR_MAX_REDIRECTS", "redirect hops followed per request")
    )
    max_pages: int = field(
        default=10_000,
        metadata=_env(
            "FHIR_MAX_PAGES_PER_SEARCH",
            "pages per search window (also: twice what its Bundle.total needs, plus 5)",
        ),
    )
    search_deadline_s: float = field(
        default=6 * 3600.0,
        metadata=_env("FHIR_SEARCH_DEADLINE_S", "seconds one search window may page for"),
    )
    max_file_bytes: int = field(
        default=20 * 1024**3,
        metadata=_env("FHIR_MAX_FILE_BYTES", "decompressed bytes per downloaded export file"),
    )
    max_compression_ratio: float = field(
        default=200.0,
        metadata=_env(
            "FHIR_MAX_COMPRESSION_RATIO", "decompressed bytes per byte received (gzip bombs)"
        ),
    )
    download_deadline_s: float = field(
        default=6 * 3600.0,
        metadata=_env("FHIR_DOWNLOAD_DEADLINE_S", "seconds one export file download may take"),
    )
    min_download_bytes_per_s: float = field(
        default=1024.0,
        metadata=_env(
            "FHIR_MIN_DOWNLOAD_BYTES_PER_S", "slowest average download speed, after 60 s"
        ),
    )
    max_response_bytes: int = field(
        default=1024**3,
        metadata=_env(
            "FHIR_MAX_RESPONSE_BYTES",
            "decompressed bytes of one JSON answer held in memory (search page, read, status)",
        ),
    )

    def as_dict(self) -> dict[str, Any]:
        """The values by field name: ``Limits(**as_dict())`` (a Dagster resource's config)."""
        return {item.name: getattr(self, item.name) for item in dataclasses.fields(self)}


@dataclass(frozen=True, slots=True)
class FhirSettings:
    """The FHIR server and how to authenticate (``repr`` never shows secrets)."""

    base_url: str = field(default="", metadata=_env("FHIR_BASE_URL", "FHIR base URL"))
    client_id: str | None = field(default=None, metadata=_env("FHIR_CLIENT_ID", "SMART client id"))
    private_key_path: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_PRIVATE_KEY_PATH", "Backend Services private key file (PEM, JWK or one-key JWKS)"
        ),
    )
    private_key: str | None = field(
        default=None,
        repr=False,
        metadata=_env("FHIR_PRIVATE_KEY", "or the private key's text", secret=True),
    )
    client_secret: str | None = field(
        default=None,
        repr=False,
        metadata=_env(
            "FHIR_CLIENT_SECRET",
            "client secret (also a confidential client's in the code flow)",
            secret=True,
        ),
    )
    auth_method: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_AUTH_METHOD",
            "backend-services, client-secret-basic, client-secret-post, authorization-code or "
            "none (default: inferred from the credentials set)",
        ),
    )
    scopes: str | None = field(
        default=None,
        metadata=_env("FHIR_SCOPES", "scopes to request (default: the least set for the types)"),
    )
    token_url: str | None = field(
        default=None, metadata=_env("FHIR_TOKEN_URL", "token endpoint (default: SMART discovery)")
    )
    jku: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_JKU", "URL of the client's published JWKS, sent as the assertion's `jku`"
        ),
    )
    token_dir: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_TOKEN_DIR", "folder of the encrypted login tokens (default ~/.fhir-assets/tokens)"
        ),
    )
    token_key: str | None = field(
        default=None,
        repr=False,
        metadata=_env(
            "FHIR_TOKEN_KEY",
            "their key, Fernet or passphrase (default: the OS keyring)",
            secret=True,
        ),
    )
    server_profile: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_SERVER_PROFILE",
            "epic, oracle (cerner), hapi, sekmet, generic (default: detected)",
        ),
    )
    patient_group: str | None = field(
        default=None,
        metadata=_env("FHIR_PATIENT_GROUP", "Group whose members are searched per patient (Epic)"),
    )
    requests_per_s: float | None = field(
        default=None,
        metadata=_env(
            "FHIR_REQUESTS_PER_S",
            "request rate limit shared by every run on this machine (default: the profile's)",
        ),
    )
    rate_limit_postgres: str | None = field(
        default=None,
        repr=False,
        metadata=_env(
            "FHIR_RATE_LIMIT_POSTGRES",
            "PostgreSQL DSN or URL sharing that limit across machines (default: this machine's "
            "file)",
            secret=True,
        ),
    )
    workers: int | None = field(
        default=None,
        metadata=_env("FHIR_SYNC_WORKERS", "parallel searches per asset (default: the profile's)"),
    )
    limits: LimitSettings = field(default_factory=LimitSettings)

    def server(
        self, resource_types: tuple[str, ...] = (), scopes: str | None = None
    ) -> ServerSettings:
        """The client library's settings for these types (``scopes`` overrides FHIR_SCOPES).

        Raises:
            ConfigurationError: no base URL.
        """
        return server_settings(self, resource_types, scopes, limits=self.limits.as_dict())


# The ServerSettings fields read by name from FhirSettings and from the Dagster resource (which
# spell them alike): the one mapping from configuration to the client library's settings.
SERVER_FIELDS = (
    "base_url", "client_id", "client_secret", "auth_method", "token_url", "jku", "token_dir",
    "token_key", "server_profile", "requests_per_s", "rate_limit_postgres",
)  # fmt: skip


def _limits(cls: Any, values: Mapping[str, Any]) -> Any:
    """``cls(**values)`` with each value cast to its field's type (Dagster config hands ints
    over as floats: ``max_redirects`` must stay an int)."""
    defaults = cls()
    return cls(**{name: type(getattr(defaults, name))(value) for name, value in values.items()})


def server_settings(
    source: Any,
    resource_types: Iterable[str] = (),
    scopes: str | None = None,
    *,
    limits: Mapping[str, Any] | None = None,
    **extra: Any,
) -> ServerSettings:
    """``ServerSettings`` from ``source`` (``FhirSettings`` or ``FhirServerResource``).

    Args:
        limits: ``LimitSettings`` values by field name (the names of ``Limits``).
        extra: further ``ServerSettings`` fields (the resource's ``timeout_s``).

    Raises:
        ConfigurationError: no base URL.
    """
    from .fhir.errors import ConfigurationError
    from .fhir.limits import Limits
    from .fhir.settings import ServerSettings

    if not source.base_url:
        raise ConfigurationError("set FHIR_BASE_URL to the FHIR server's base URL")
    return ServerSettings(
        **{name: getattr(source, name) for name in SERVER_FIELDS},
        private_key=source.private_key or source.private_key_path,
        scopes=scopes or source.scopes,
        resource_types=tuple(resource_types),
        limits=_limits(Limits, limits or {}),
        **extra,
    )


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """What the raw assets sync, and how they land."""

    resource_types: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_RESOURCE_TYPES",
            "comma-separated R4/R4B resource types (default: the catalog: 23 + US Core 6.1)",
        ),
    )
    partitions: str = field(
        default="daily",
        metadata=_env("FHIR_PARTITIONS", "daily, hourly or none (whole history per run)"),
    )
    sync_start: str = field(
        default="2026-01-01",
        metadata=_env("FHIR_SYNC_START", "first partition day, UTC (older data joins it)"),
    )
    sync_lag_minutes: float = field(
        default=10.0, metadata=_env("FHIR_SYNC_LAG_MINUTES", "safety lag before a window is synced")
    )
    validation: str = field(
        default="fast", metadata=_env("FHIR_VALIDATION", "fast, or full (R4B models)")
    )
    history: bool = field(
        default=False, metadata=_env("FHIR_HISTORY", "1: keep every version in <type>_history")
    )
    max_invalid_share: float = field(
        default=0.01, metadata=_env("FHIR_MAX_INVALID_SHARE", "invalid_share check threshold")
    )
    views_dir: str | None = field(
        default=None, metadata=_env("FHIR_VIEWS_DIR", "folder of extra ViewDefinitions (*.json)")
    )
    max_line_bytes: int = field(
        default=MAX_LINE_BYTES,
        metadata=_env(
            "FHIR_MAX_LINE_BYTES",
            "an NDJSON line longer than this is quarantined unread (inline attachments: tens "
            "of MB)",
        ),
    )


@dataclass(frozen=True, slots=True)
class WriteSettings:
    """The write-back assets."""

    scopes: str = field(
        default="system/*.read system/*.write",
        metadata=_env("FHIR_WRITE_SCOPES", "scopes the write-back assets request"),
    )
    conflict_policy: str = field(
        default="fail",
        metadata=_env("FHIR_WRITE_CONFLICT_POLICY", "fail, server-wins or client-wins"),
    )
    server_validate: bool = field(
        default=False,
        metadata=_env(
            "FHIR_WRITE_SERVER_VALIDATE", "1: also `$validate` on the server before writing"
        ),
    )
    batch_size: int = field(
        default=100, metadata=_env("FHIR_WRITE_BATCH_SIZE", "resources per transaction")
    )


@dataclass(frozen=True, slots=True)
class BulkSettings:
    """Bulk Data exports (the ``bulk_land`` job and its sensors)."""

    folder: str = field(
        default=".fhir-assets/bulk", metadata=_env("FHIR_BULK_DIR", "export folders")
    )
    level: str = field(default="system", metadata=_env("FHIR_BULK_LEVEL", "system, patient, group"))
    group_id: str | None = field(default=None, metadata=_env("FHIR_BULK_GROUP_ID", "Group id"))
    types: str | None = field(
        default=None,
        metadata=_env(
            "FHIR_BULK_TYPES",
            "`_type` (default: FHIR_RESOURCE_TYPES, else none: every type the server exports)",
        ),
    )
    interval_s: float = field(
        default=24 * 3600.0, metadata=_env("FHIR_BULK_INTERVAL_S", "seconds between exports")
    )
    lenient: bool = field(
        default=False,
        metadata=_env("FHIR_BULK_LENIENT", "1: send `Prefer: handling=lenient` with the kick-off"),
    )


@dataclass(frozen=True, slots=True)
class OperationSettings:
    """The FHIR operations: ``$everything``, ``$validate`` and ``$extract`` (docs/operations.md)."""

    validate_sample: int = field(
        default=20,
        metadata=_env(
            "FHIR_VALIDATE_SAMPLE", "newest resources per raw table sent to `$validate` (0: off)"
        ),
    )
    validate_profile: str | None = field(
        default=None, metadata=_env("FHIR_VALIDATE_PROFILE", "profile URL sent with `$validate`")
    )
    max_pages: int = field(
        default=1000,
        metadata=_env("FHIR_OPERATION_MAX_PAGES", "pages followed per `$everything` call"),
    )
    deadline_s: float = field(
        default=3600.0,
        metadata=_env("FHIR_OPERATION_DEADLINE_S", "seconds one operation call may take"),
    )


@dataclass(frozen=True, slots=True)
class DeidSettings:
    """The de-identified layer ``fhir_deid`` (docs/deid.md); off while the key is unset."""

    key: str | None = field(
        default=None,
        repr=False,
        metadata=_env(
            "FHIR_DEID_KEY",
            "secret keying pseudonyms and date shifts; set: builds fhir_deid",
            secret=True,
        ),
    )
    policy: str | None = field(
        default=None,
        metadata=_env("FHIR_DEID_POLICY", "JSON file of per-column methods overriding tags"),
    )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a deployment configures.

    Attributes:
        secrets_from_env: the secrets came from the process environment, so Dagster resources
            get them as ``dg.EnvVar`` (the UI shows the variable's name, never the value).
    """

    fhir: FhirSettings = field(default_factory=FhirSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    write: WriteSettings = field(default_factory=WriteSettings)
    bulk: BulkSettings = field(default_factory=BulkSettings)
    operations: OperationSettings = field(default_factory=OperationSettings)
    deid: DeidSettings = field(default_factory=DeidSettings)
    warehouse: WarehouseSettings = field(default_factory=WarehouseSettings)
    secrets_from_env: bool = False

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str], *, secrets_from_env: bool = False
    ) -> Settings:
        """Every section read from ``environ`` (variables left unset keep their defaults).

        Raises:
            ConfigurationError: a value that does not parse (the message names the variable).
        """
        return dataclasses.replace(load(cls, environ), secrets_from_env=secrets_from_env)


def load(cls: type[T], environ: Mapping[str, str]) -> T:
    """An instance of a settings dataclass (nested ones included) from ``environ``."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            values[item.name] = load(kind, environ)  # type: ignore[arg-type]
        elif "env" in item.metadata and environ.get(item.metadata["env"], "") != "":
            values[item.name] = _parse(item.metadata["env"], environ[item.metadata["env"]], kind)
    try:
        return cls(**values)
    except ValueError as exc:
        from .fhir.errors import ConfigurationError

        raise ConfigurationError(str(exc)) from exc


def _parse(name: str, text: str, kind: Any) -> Any:
    if isinstance(kind, types.UnionType):  # X | None: parse as X
        kind = next(k for k in typing.get_args(kind) if k is not type(None))
    try:
        if kind is bool:
            return text.strip().lower() in TRUE
        return kind(text.strip()) if kind in (int, float) else text
    except ValueError as exc:
        from .fhir.errors import ConfigurationError

        raise ConfigurationError(f"{name}={text!r} is not a valid {kind.__name__}") from exc


def variables(cls: type[Any] = Settings) -> Iterator[tuple[str, str, Any, bool]]:
    """Every variable of a settings class: (name, help, default, secret), in field order."""
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        if dataclasses.is_dataclass(kind):
            yield from variables(kind)  # type: ignore[arg-type]
        elif "env" in item.metadata:
            default = item.default if item.default is not dataclasses.MISSING else None
            yield (item.metadata["env"], item.metadata["help"], default,
                   item.metadata.get("secret", False))  # fmt: skip


def env_name(cls: type[Any], name: str) -> str:
    """The environment variable of field ``name`` of a settings class."""
    [item] = [f for f in dataclasses.fields(cls) if f.name == name]
    return str(item.metadata["env"])


__all__ = [
    "BulkSettings",
    "DeidSettings",
    "DuckDBSettings",
    "FhirSettings",
    "LimitSettings",
    "OperationSettings",
    "Settings",
    "SnowflakeSettings",
    "SyncSettings",
    "WarehouseSettings",
    "WriteSettings",
    "env_name",
    "load",
    "variables",
]
