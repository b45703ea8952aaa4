"""One test's workbench settings, from four levels: marker > CLI > fixture > workbench.yaml.

Owns merging the ``pytest`` section of ``workbench.yaml``, the ``workbench_config`` fixture's
mapping, the command-line options and the test's markers into one :class:`TestSettings`, and
the errors that name the level, the key, the value and what is allowed. It needs no pytest: the
plugin hands it plain mappings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from workbench.config import PytestConfig, WorkbenchConfig
from workbench.config._debug import RECORD_MODES
from workbench.exceptions import ConfigError
from workbench.testing._budgets import LATENCY_KEYS, Budget

__all__ = [
    "TestSettings",
    "default_record_mode",
    "marker_settings",
    "resolve_settings",
    "validated_config",
]

_MARKER_KEYS = ("record_mode", "block_network", "allowed_hosts")


@dataclass(frozen=True, slots=True)
class TestSettings:
    """What the plugin does for one test."""

    __test__ = False  # not a pytest test class despite the name

    record_mode: str
    block_network: bool
    allowed_hosts: tuple[str, ...]
    store: str | None  # a shared store's path; None: a temporary store for the test
    budget: Budget


def default_record_mode(environ: Mapping[str, str] = os.environ) -> str:
    """``none`` on CI (``CI`` set, as every CI service does), ``once`` on a developer's machine."""
    return "none" if environ.get("CI") else "once"


def validated_config(
    base: WorkbenchConfig, override: Mapping[str, Any], where: str
) -> WorkbenchConfig:
    """``base`` with ``override``'s sections merged in, key by key (``override`` shaped like
    ``workbench.yaml``); a :class:`ConfigError` names ``where`` the bad key came from."""
    if not isinstance(override, Mapping):
        raise ConfigError(
            f"{where} must return a mapping shaped like workbench.yaml, e.g. "
            f"{{'pytest': {{'record_mode': 'none'}}}}, got {type(override).__name__}"
        )
    merged: dict[str, Any] = base.model_dump(exclude_unset=True, by_alias=True)
    for section, value in override.items():
        current = merged.get(section)
        if isinstance(current, dict) and isinstance(value, Mapping):
            merged[section] = {**current, **value}
        else:
            merged[section] = value
    try:
        config = WorkbenchConfig.model_validate({**merged, "source": base.source})
    except ValidationError as exc:
        raise _config_error(exc, where) from exc
    return config


def marker_settings(name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The settings one workbench marker gives, as ``pytest`` section keys."""
    if name == "max_cost":
        return {"max_cost": _one_number(name, "usd", args, kwargs, "0.01")}
    if name == "max_tokens":
        value = _one_number(name, "n", args, kwargs, "2000")
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(f"@pytest.mark.max_tokens takes a whole number, got {value!r}")
        return {"max_tokens": int(value)}
    if name == "max_latency":
        unknown = sorted(set(kwargs) - set(LATENCY_KEYS))
        if args or unknown or not kwargs:
            raise ConfigError(
                f"@pytest.mark.max_latency takes seconds by keyword: "
                f"{', '.join(f'{key}=' for key in LATENCY_KEYS)} (e.g. max_latency(p95=2.0, "
                f"total=10)); got {_call(args, kwargs)}"
            )
        return {"max_latency": dict(kwargs)}
    if name == "workbench":
        unknown = sorted(set(kwargs) - set(_MARKER_KEYS))
        if args or unknown:
            raise ConfigError(
                f"@pytest.mark.workbench takes {', '.join(_MARKER_KEYS)} by keyword, e.g. "
                f"@pytest.mark.workbench(record_mode='none'); got {_call(args, kwargs)}"
            )
        return dict(kwargs)
    raise ConfigError(f"{name!r} is not a workbench marker")


def resolve_settings(
    *,
    file: PytestConfig,
    fixture: PytestConfig | None,
    cli: Mapping[str, Any],
    markers: Mapping[str, Any],
    environ: Mapping[str, str] = os.environ,
) -> TestSettings:
    """The closest level that sets a key wins: markers, then the command line, then the
    ``workbench_config`` fixture, then ``workbench.yaml``."""
    merged: dict[str, Any] = file.model_dump(exclude_unset=True)
    if fixture is not None:
        merged.update(fixture.model_dump(exclude_unset=True))
    merged.update({key: value for key, value in cli.items() if value is not None})
    merged.update(markers)
    try:
        settings = PytestConfig.model_validate(merged)
    except ValidationError as exc:
        raise _config_error(exc, "the workbench markers or command-line options", "") from exc
    latency = settings.max_latency
    budget = Budget(
        max_cost=settings.max_cost,
        max_tokens=settings.max_tokens,
        max_latency={
            key: value
            for key, value in (latency.model_dump() if latency is not None else {}).items()
            if value is not None
        },
    )
    return TestSettings(
        record_mode=settings.record_mode or default_record_mode(environ),
        block_network=settings.block_network,
        allowed_hosts=tuple(settings.allowed_hosts),
        store=settings.store,
        budget=budget,
    )


def _one_number(
    marker: str, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], example: str
) -> float:
    values = [*args, *kwargs.values()]
    if len(values) != 1 or set(kwargs) - {name}:
        raise ConfigError(
            f"@pytest.mark.{marker} takes one number ({name}), e.g. "
            f"@pytest.mark.{marker}({example}); got {_call(args, kwargs)}"
        )
    value = values[0]
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(
            f"@pytest.mark.{marker}({value!r}): {name} must be a number >= 0, e.g. "
            f"@pytest.mark.{marker}({example})"
        )
    return value


def _call(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> str:
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in kwargs.items()]
    return f"({', '.join(parts)})"


def _config_error(exc: ValidationError, where: str, prefix: str = "") -> ConfigError:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    return ConfigError(
        f"{where}: key {prefix}{key!r} has value {first.get('input')!r}: {first['msg']}"
        + (f" (record modes: {', '.join(RECORD_MODES)})" if key.endswith("record_mode") else "")
    )
