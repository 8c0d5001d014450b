"""Configuration: one TOML file, every key overridable from DICOMNODE_* environment variables.

Nested keys use a double underscore in the environment: `[dicom] port` is
`DICOMNODE_DICOM__PORT`. Lists and tables are given as JSON in the environment.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

if TYPE_CHECKING:
    from models.registry import Registry

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from dicomnode.errors import DicomnodeError
from dicomnode.routing.priority import PriorityClass, from_requested_procedure_priority
from dicomnode.worklist.scoring import ScoringPolicy

ENV_PREFIX = "DICOMNODE_"
AETitle = Annotated[str, Field(min_length=1, max_length=16, pattern=r"^[\x20-\x5b\x5d-\x7e]*\S[\x20-\x5b\x5d-\x7e]*$")]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DuplicatePolicy(StrEnum):
    KEEP_FIRST = "keep_first"
    OVERWRITE = "overwrite"


class Peer(_Section):
    """A sender allowed to associate: its calling AE title and where it may connect from."""

    ae_title: AETitle
    hosts: list[str] = Field(
        default_factory=lambda: ["0.0.0.0/0", "::/0"],
        description="IP addresses or CIDR networks the peer may connect from.",
    )

    @field_validator("hosts")
    @classmethod
    def _hosts_are_networks(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            ipaddress.ip_network(host, strict=False)  # raises ValueError naming the bad value
        return hosts

    def networks(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        return [ipaddress.ip_network(h, strict=False) for h in self.hosts]


class TLSConfig(_Section):
    enabled: bool = False
    cert_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = Field(None, description="CA bundle used to verify client certificates.")
    require_client_cert: bool = False

    @model_validator(mode="after")
    def _files_when_enabled(self) -> TLSConfig:
        if not self.enabled:
            return self
        if self.cert_file is None or self.key_file is None:
            raise ValueError("cert_file and key_file are required when TLS is enabled")
        if self.require_client_cert and self.ca_file is None:
            raise ValueError("ca_file is required when require_client_cert is true")
        for f in (self.cert_file, self.key_file, self.ca_file):
            if f is not None and not f.is_file():
                raise ValueError(f"file not found: {f}")
        return self


class DicomConfig(_Section):
    ae_title: AETitle = "DICOMNODE"
    extra_ae_titles: list[AETitle] = Field(
        default_factory=list, description="Further called AE titles this node answers to."
    )
    host: str = "0.0.0.0"
    port: int = Field(11112, ge=0, le=65535)
    peers: list[Peer] = Field(default_factory=list, description="Allowlist of senders; empty accepts everyone.")
    max_associations: int = Field(32, ge=1)
    max_instance_bytes: int = Field(4 * 1024**3, ge=1024)
    max_pdu_bytes: int = Field(0, ge=0, description="Largest PDU we accept; 0 is unlimited.")
    acse_timeout_s: float = Field(30, gt=0)
    dimse_timeout_s: float = Field(60, gt=0)
    network_timeout_s: float = Field(120, gt=0)
    duplicate_policy: DuplicatePolicy = DuplicatePolicy.KEEP_FIRST
    tls: TLSConfig = Field(default_factory=TLSConfig)

    def called_ae_titles(self) -> set[str]:
        return {self.ae_title.strip(), *(t.strip() for t in self.extra_ae_titles)}


class StorageConfig(_Section):
    path: Path = Path("var/storage")
    min_free_bytes: int = Field(
        1024**3, ge=0, description="Refuse new associations and instances below this free space."
    )


class CatalogConfig(_Section):
    url: str = Field("sqlite:///var/catalog.sqlite", description="SQLAlchemy database URL.")


class AssemblyConfig(_Section):
    study_quiet_seconds: float = Field(10, gt=0)
    poll_seconds: float = Field(1, gt=0)


class RetryPolicy(_Section):
    """Attempts and exponential backoff: the one retry rule of jobs and outboxes."""

    max_attempts: int
    retry_backoff_s: float
    retry_backoff_max_s: float

    def retry_delay_s(self, attempt: int) -> float:
        """Seconds to wait after the given (1-based) attempt failed: doubling from retry_backoff_s, capped."""
        return min(self.retry_backoff_max_s, self.retry_backoff_s * 2 ** (attempt - 1))


class OutboxPolicy(RetryPolicy):
    """How an outbox (DICOM exports, webhook notifications) retries a send."""

    max_attempts: int = Field(10, ge=1, description="Tries per send before it is dead.")
    retry_backoff_s: float = Field(30, gt=0, description="Delay before the first retry; doubles each time.")
    retry_backoff_max_s: float = Field(3600, gt=0, description="Longest delay between retries.")
    poll_seconds: float = Field(1, gt=0, description="How often the outbox looks for due sends.")


class ExportConfig(OutboxPolicy):
    """The outbox that sends results (SR, SEG) to each routing rule's destinations."""

    timeout_s: float = Field(30, gt=0, description="Association and DIMSE timeout when sending.")
    tls_ca_file: Path | None = Field(None, description="CA bundle that signs tls: destinations; unset: system CAs.")
    tls_cert_file: Path | None = Field(None, description="Our client certificate, for destinations that ask one.")
    tls_key_file: Path | None = Field(None, description="Its private key.")

    @model_validator(mode="after")
    def _tls_files(self) -> ExportConfig:
        for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
            path = getattr(self, key)
            if path is not None and not path.is_file():
                raise ValueError(f"{key}: file not found: {path}")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    def tls_context(self) -> ssl.SSLContext:
        """The client context for tls: destinations (TLS 1.2 or later, server certificate verified)."""
        ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=self.tls_ca_file)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.tls_cert_file and self.tls_key_file:
            ctx.load_cert_chain(self.tls_cert_file, self.tls_key_file)
        return ctx


class AnalysisConfig(RetryPolicy):
    broker_url: str | None = Field(
        None, description="Celery broker, e.g. redis://host:6379/0. Unset: analysis runs inside `dicomnode serve`."
    )
    result_backend: str | None = Field(
        None, description="Celery result backend; not needed, the catalog holds job state."
    )
    embedded_workers: int = Field(
        1, ge=1, description="Analysis threads inside `dicomnode serve` when no broker is set."
    )
    device: str = Field(
        "auto", pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$", description="auto: CUDA when present, else CPU."
    )
    torch_threads: int = Field(0, ge=0, description="CPU threads per worker process; 0: cores / worker processes.")
    max_attempts: int = Field(3, ge=1, description="Attempts before a job is marked failed.")
    retry_backoff_s: float = Field(10, gt=0, description="Wait before the 2nd attempt; doubles for each further one.")
    retry_backoff_max_s: float = Field(600, gt=0)
    heartbeat_s: float = Field(10, gt=0, description="How often a running job proves its worker is alive.")
    heartbeat_timeout_s: float = Field(60, gt=0, description="A running job silent this long is re-queued.")
    visibility_timeout_s: int = Field(
        7200, ge=60, description="Redis redelivers an unacknowledged job after this; keep it above the longest job."
    )
    poll_seconds: float = Field(1, gt=0, description="How often the scheduler publishes due jobs and reaps dead ones.")
    models_dir: Path | None = Field(
        None,
        description="Bring-your-own models: a folder with one sub-folder per model holding manifest.toml and "
        "its exported weights (torch.export .pt2 or TorchScript). See `dicomnode models check`.",
    )
    model_plugins: list[str] = Field(
        default_factory=list, description="Python models: 'module:attribute' naming a ModelSpec or a list of them."
    )

    @model_validator(mode="after")
    def _timeout_above_heartbeat(self) -> AnalysisConfig:
        if self.heartbeat_timeout_s <= 2 * self.heartbeat_s:
            raise ValueError("heartbeat_timeout_s must be more than twice heartbeat_s")
        return self


class RuleMatch(_Section):
    """Criteria a series must meet; empty criteria match anything. Lists match any of their values."""

    modality: list[str] = Field(default_factory=list)
    body_part: list[str] = Field(default_factory=list, description="Body Part Examined, e.g. HEAD, CHEST.")
    sop_class: list[str] = Field(default_factory=list, description="SOP Class UIDs.")
    series_description: str | None = Field(None, description="Regular expression searched in Series Description.")
    calling_ae: list[AETitle] = Field(default_factory=list, description="The sender's AE title.")
    called_ae: list[AETitle] = Field(default_factory=list, description="Our AE title the sender addressed.")

    @field_validator("series_description")
    @classmethod
    def _regex_compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return pattern


class RoutingRule(_Section):
    name: str = Field(min_length=1, max_length=64)
    match: RuleMatch = Field(default_factory=RuleMatch)
    models: list[str] = Field(min_length=1, description="Models to run on the matching series.")
    destinations: list[str] = Field(
        default_factory=list, description="Where results go: AE@HOST:PORT, or tls:AE@HOST:PORT for DICOM over TLS."
    )

    @field_validator("destinations")
    @classmethod
    def _destinations_parse(cls, destinations: list[str]) -> list[str]:
        from dicomnode.dicom.scu import Destination

        for d in destinations:
            Destination.parse(d)  # raises ValueError naming the bad value
        return destinations


def _default_rules() -> list[RoutingRule]:
    return [
        RoutingRule(name="ct-head", match=RuleMatch(modality=["CT"], body_part=["HEAD", "BRAIN", "SKULL"]),
                    models=["ct-hemorrhage"]),
        RoutingRule(name="chest-radiograph", match=RuleMatch(modality=["CR", "DX"], body_part=["CHEST"]),
                    models=["cxr-pneumothorax"]),
    ]  # fmt: skip


class RoutingConfig(_Section):
    rules: list[RoutingRule] = Field(
        default_factory=_default_rules,
        description="Every matching rule applies; a study matching none is not analysed.",
    )


class NotifyConfig(OutboxPolicy):
    """Critical-finding webhooks: a JSON POST to each URL when the AI flags a study."""

    webhooks: list[HttpUrl] = Field(default_factory=list, description="URLs that receive the POST.")
    headers: dict[str, str] = Field(
        default_factory=dict, description="Extra request headers, e.g. an Authorization the receiver expects."
    )
    min_urgency: float = Field(
        0.0, ge=0, le=1, description="Notify only findings whose manifest urgency is at least this."
    )
    timeout_s: float = Field(10, gt=0, description="HTTP timeout per POST.")


class ReaderToken(_Section):
    """A bearer token for the HTTP API; its name is what the worklist records as the reader."""

    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w .@-]+$")
    token: SecretStr = Field(min_length=16, description="The secret; at least 16 characters.")


class HttpConfig(_Section):
    """The HTTP API (REST, UPS-RS) and the web worklist, served by `dicomnode serve`."""

    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    tokens: list[ReaderToken] = Field(
        default_factory=list, description="Who may use the API; none configured: every API request gets 401."
    )
    tls_cert_file: Path | None = Field(None, description="Serve HTTPS with this certificate (PEM).")
    tls_key_file: Path | None = None

    @model_validator(mode="after")
    def _unique_and_tls(self) -> HttpConfig:
        names = [t.name for t in self.tokens]
        if len(set(names)) != len(names):
            raise ValueError("token names must be unique")
        secrets = [t.token.get_secret_value() for t in self.tokens]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two tokens share the same secret")
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        for f in (self.tls_cert_file, self.tls_key_file):
            if f is not None and not f.is_file():
                raise ValueError(f"file not found: {f}")
        return self


class WorklistConfig(_Section):
    default_priority: str = Field(
        "ROUTINE", description="Class of a study whose order carries no Requested Procedure Priority."
    )
    scoring: ScoringPolicy = Field(default_factory=ScoringPolicy)
    overdue_check_seconds: float = Field(5, gt=0, description="How often items crossing their maximum wait are moved.")

    @field_validator("default_priority")
    @classmethod
    def _known_class(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in {"STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW"}:
            raise ValueError("must be one of STAT, HIGH, ROUTINE, MEDIUM, LOW")
        return value

    def priority(self, requested_procedure_priority: str | None) -> PriorityClass:
        return from_requested_procedure_priority(requested_procedure_priority, self.default_priority)


class RetentionConfig(_Section):
    """Deleting stored studies: after max_age_days, or oldest first while the disk is above the high watermark.
    Studies with open jobs, sends or worklist items are never deleted."""

    max_age_days: float = Field(0, ge=0, description="Delete studies last received this many days ago; 0: never.")
    disk_high_watermark_percent: float = Field(
        0, ge=0, lt=100, description="Above this disk use, delete oldest studies first; 0: off."
    )
    disk_low_watermark_percent: float = Field(
        0, ge=0, lt=100, description="... until disk use is below this (default: high watermark minus 5)."
    )
    interval_minutes: float = Field(60, gt=0, description="How often the node applies retention.")
    dry_run: bool = Field(False, description="Only log what would be deleted.")

    @model_validator(mode="after")
    def _low_below_high(self) -> RetentionConfig:
        if self.disk_high_watermark_percent and not self.disk_low_watermark_percent:
            self.disk_low_watermark_percent = max(0.0, self.disk_high_watermark_percent - 5)
        if self.disk_high_watermark_percent and self.disk_low_watermark_percent >= self.disk_high_watermark_percent:
            raise ValueError("disk_low_watermark_percent must be below disk_high_watermark_percent")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.max_age_days or self.disk_high_watermark_percent)


class LogConfig(_Section):
    level: str = "INFO"
    format: str = Field("text", pattern="^(text|json)$", description="json: one JSON object per line.")

    @field_validator("level")
    @classmethod
    def _known_level(cls, level: str) -> str:
        level = level.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return level


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", toml_file=None)

    dicom: DicomConfig = Field(default_factory=DicomConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    catalog: CatalogConfig = Field(default_factory=CatalogConfig)
    assembly: AssemblyConfig = Field(default_factory=AssemblyConfig)
    analysis: AnalysisConfig = Field(default_factory=AnalysisConfig)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    export: ExportConfig = Field(default_factory=ExportConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    http: HttpConfig = Field(default_factory=HttpConfig)
    worklist: WorklistConfig = Field(default_factory=WorklistConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    _registry: Any = PrivateAttr(None)

    @property
    def registry(self) -> Registry:
        """Every model this configuration can run: built-in, models_dir, plugins (torch-free metadata). Built
        once, when the settings are read; the node and workers pass this one around."""
        return self._registry

    @model_validator(mode="after")
    def _rules_name_known_models(self) -> Settings:
        from models.manifest import ManifestError
        from models.registry import build_registry

        try:
            registry = build_registry(self.analysis.model_plugins, self.analysis.models_dir)
        except ManifestError as exc:
            raise ValueError(f"analysis.models_dir: {exc}") from None
        except ValueError as exc:
            raise ValueError(f"analysis.model_plugins: {exc}") from None
        for i, rule in enumerate(self.routing.rules):
            for name in rule.models:
                try:
                    registry.get(name)
                except ValueError as exc:
                    raise ValueError(f"routing.rules.{i}.models ({rule.name}): {exc}") from None
        names = [r.name for r in self.routing.rules]
        if len(set(names)) != len(names):
            raise ValueError("routing rule names must be unique")
        self._registry = registry
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment beats the file; the file beats the defaults.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


class ConfigError(DicomnodeError):
    """A configuration that cannot start the node; the message names each bad key."""


def load_settings(config_file: Path | None = None) -> Settings:
    """Read the TOML file (if any) and the environment; raise ConfigError naming bad keys."""
    if config_file is not None and not config_file.is_file():
        raise ConfigError(f"config file not found: {config_file}")
    source = type("Settings", (Settings,), {"model_config": {**Settings.model_config, "toml_file": config_file}})
    try:
        return source()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None
    except ValueError as exc:  # e.g. malformed TOML or JSON in an environment variable
        raise ConfigError(f"cannot read configuration: {exc}") from None


def _describe(exc: ValidationError, config_file: Path | None) -> str:
    where = f" in {config_file} or the environment" if config_file else " in the environment"
    lines = [f"invalid configuration{where}:"]
    for err in exc.errors():
        if not err["loc"]:  # a check across sections; its message names the keys
            lines.append(f"  {err['msg'].removeprefix('Value error, ')}")
            continue
        key = ".".join(str(p) for p in err["loc"])
        env = ENV_PREFIX + "__".join(str(p) for p in err["loc"] if not isinstance(p, int)).upper()
        lines.append(f"  {key} ({env}): {err['msg']}")
    return "\n".join(lines)
