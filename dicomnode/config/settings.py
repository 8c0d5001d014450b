"""Configuration: one TOML file, every key overridable from DICOMNODE_* environment variables.

Nested keys use a double underscore in the environment: `[dicom] port` is
`DICOMNODE_DICOM__PORT`. Lists and tables are given as JSON in the environment.
Each section is defined in the module of its stage's name in this package.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field, PrivateAttr, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from dicomnode.config.analysis import AnalysisConfig
from dicomnode.config.base import ENV_PREFIX
from dicomnode.config.dicom import DicomConfig
from dicomnode.config.export import ExportConfig, NotifyConfig
from dicomnode.config.hl7 import Hl7Config
from dicomnode.config.http import HttpConfig
from dicomnode.config.ops import LogConfig, MonitoringConfig, RetentionConfig
from dicomnode.config.routing import RoutingConfig
from dicomnode.config.storage import AssemblyConfig, CatalogConfig, StorageConfig
from dicomnode.config.worklist import WorklistConfig
from dicomnode.errors import DicomnodeError

if TYPE_CHECKING:
    from models.registry import Registry


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
    hl7: Hl7Config = Field(default_factory=Hl7Config)
    http: HttpConfig = Field(default_factory=HttpConfig)
    worklist: WorklistConfig = Field(default_factory=WorklistConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    _registry: Any = PrivateAttr(None)
    _source: str = PrivateAttr("defaults and DICOMNODE_* environment variables")

    @property
    def source(self) -> str:
        """Where these settings were read from, for messages."""
        return self._source

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
        settings = source()
    except ValidationError as exc:
        raise ConfigError(_describe(exc, config_file)) from None
    except ValueError as exc:  # e.g. malformed TOML or JSON in an environment variable
        raise ConfigError(f"cannot read configuration: {exc}") from None
    if config_file is not None:
        settings._source = f"{config_file} and DICOMNODE_* environment variables"
    return settings


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
