"""The foundation's sections: ``store``, ``capture``, and ``cost_tracking``'s price overrides."""

from __future__ import annotations

import re

from pydantic import (
    Field,
    field_validator,
)

from workbench.config._section import _Section


class StoreConfig(_Section):
    """Where recordings go. ``path`` is relative to the configuration file's folder."""

    path: str | None = None


class AllowlistConfig(_Section):
    """``capture.allowlist``: what the built-in secret rules would redact that is no secret here.

    ``fields``: names (any case, ``-`` = ``_``) whose values the rules keep; ``values``: regular
    expressions, a value matching one in full is kept wherever it appears (a test key, a public
    identifier shaped like a key). Names in ``sensitive_fields`` are redacted all the same.
    """

    fields: list[str] = Field(default_factory=list)
    values: list[str] = Field(default_factory=list)

    @field_validator("values")
    @classmethod
    def _patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(
                    f"capture.allowlist.values entry {pattern!r} is not a regular expression "
                    f"({exc}); write one that matches the whole value, e.g. 'sk-test-[a-z0-9]+'"
                ) from exc
        return patterns


class CaptureConfig(_Section):
    """What model-call capture keeps out of the replay key and out of the store."""

    enabled: bool = True
    #: Request body fields left out of ``request_key`` (dotted paths, or bare names at any depth).
    volatile_fields: list[str] = Field(default_factory=list)
    #: Field names whose values are replaced by ``[REDACTED]`` everywhere before writing.
    sensitive_fields: list[str] = Field(default_factory=list)
    #: False positives of the built-in secret rules, kept as they are.
    allowlist: AllowlistConfig = Field(default_factory=AllowlistConfig)

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
