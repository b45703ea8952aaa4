"""``workbench.yaml``: read once into typed objects, with errors that name file, key and value.

This module owns finding and parsing the configuration file (the working directory's
``workbench.yaml``, or the path in ``WORKBENCH_CONFIG``) and the sections the foundation uses:
``store``, ``capture`` and ``cost_tracking``. The Orchestrator documentation's other sections
(``monitoring``, ``tracing``, ``logging``, ``alerts``, ``alerting``, ``performance``,
``health_checks``, ``debug``, ``profiling``, ``dashboards``) are accepted and kept as plain
mappings until the feature that owns each one gives it a model of its own here.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from workbench.exceptions import ConfigError

__all__ = [
    "CaptureConfig",
    "CostTrackingConfig",
    "ModelPriceConfig",
    "ProviderPricesConfig",
    "StoreConfig",
    "WorkbenchConfig",
    "load_config",
]

CONFIG_FILE = "workbench.yaml"
CONFIG_ENV = "WORKBENCH_CONFIG"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StoreConfig(_Section):
    """Where recordings go. ``path`` is relative to the configuration file's folder."""

    path: str | None = None


class CaptureConfig(_Section):
    """What model-call capture keeps out of the replay key and out of the store."""

    enabled: bool = True
    #: Request body fields left out of ``request_key`` (dotted paths, or bare names at any depth).
    volatile_fields: list[str] = Field(default_factory=list)
    #: Field names whose values are replaced by ``[REDACTED]`` everywhere before writing.
    sensitive_fields: list[str] = Field(default_factory=list)

    @field_validator("volatile_fields")
    @classmethod
    def _dotted_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not name or any(not part for part in name.split(".")):
                raise ValueError(
                    f"{name!r} is not a field name or dotted path; use e.g. 'user' (at any "
                    f"depth) or 'metadata.request_id' (from the body's root)"
                )
        return names


class ModelPriceConfig(_Section):
    input_cost_per_1k: float = Field(ge=0)
    output_cost_per_1k: float = Field(ge=0)
    cache_read_cost_per_1k: float | None = Field(default=None, ge=0)
    cache_write_cost_per_1k: float | None = Field(default=None, ge=0)


class ProviderPricesConfig(_Section):
    models: dict[str, ModelPriceConfig] = Field(default_factory=dict)


class CostTrackingConfig(BaseModel):
    """Price overrides per provider and model; budgets and alerts belong to the metrics layer."""

    model_config = ConfigDict(extra="allow", frozen=True)

    enabled: bool = True
    providers: dict[str, ProviderPricesConfig] = Field(default_factory=dict)


class WorkbenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str | None = Field(default=None, exclude=True)
    store: StoreConfig = Field(default_factory=StoreConfig)
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    cost_tracking: CostTrackingConfig = Field(default_factory=CostTrackingConfig)
    # Sections owned by later features; accepted now so one file serves the whole workbench.
    monitoring: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    tracing: dict[str, Any] = Field(default_factory=dict)
    logging: dict[str, Any] = Field(default_factory=dict)
    alerts: list[Any] | dict[str, Any] = Field(default_factory=list)
    alerting: dict[str, Any] = Field(default_factory=dict)
    performance: dict[str, Any] = Field(default_factory=dict)
    health_checks: dict[str, Any] = Field(default_factory=dict)
    debug: dict[str, Any] = Field(default_factory=dict)
    profiling: dict[str, Any] = Field(default_factory=dict)
    dashboards: dict[str, Any] = Field(default_factory=dict)

    def store_path(self) -> Path | None:
        """The configured store path, resolved against the configuration file's folder."""
        if self.store.path is None:
            return None
        path = Path(self.store.path).expanduser()
        if not path.is_absolute() and self.source is not None:
            path = Path(self.source).parent / path
        return path


_cache: dict[tuple[str, float], WorkbenchConfig] = {}
_DEFAULT = WorkbenchConfig()
_lock = threading.Lock()


def _config_path() -> Path | None:
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(
                f"{CONFIG_ENV}={explicit!r} names no file; point it at a workbench.yaml or unset it"
            )
        return path
    path = Path.cwd() / CONFIG_FILE
    return path if path.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None) -> WorkbenchConfig:
    """Read ``workbench.yaml`` (cached per file and modification time); defaults if none."""
    file = Path(path) if path is not None else _config_path()
    if file is None:
        return _DEFAULT
    try:
        key = (str(file.resolve()), file.stat().st_mtime)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {file}: {exc.strerror}") from exc
    with _lock:
        cached = _cache.get(key)
    if cached is not None:
        return cached
    config = _parse(file)
    with _lock:
        _cache[key] = config
    return config


def _parse(file: Path) -> WorkbenchConfig:
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f", line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{file}{line}: not valid YAML ({exc}); fix the syntax") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{file}: the top level must be a mapping of sections (store, capture, "
            f"cost_tracking, ...), not {type(raw).__name__}"
        )
    try:
        return WorkbenchConfig.model_validate({**raw, "source": str(file)})
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        value = first.get("input")
        allowed = first["msg"]
        if first["type"] == "extra_forbidden":
            allowed = f"allowed keys here: {', '.join(sorted(_fields_at(first['loc'][:-1])))}"
        raise ConfigError(f"{file}: key {key!r} has value {value!r}: {allowed}") from exc


def _fields_at(loc: tuple[int | str, ...]) -> list[str]:
    """The keys a model accepts at ``loc`` (for an "unknown key" message)."""
    model: Any = WorkbenchConfig
    for part in loc:
        field = getattr(model, "model_fields", {}).get(part)
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    return [name for name in getattr(model, "model_fields", {}) if name != "source"]
