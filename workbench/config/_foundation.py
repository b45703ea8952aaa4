"""The foundation's sections: ``store``, ``capture``, ``providers`` and the price overrides."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from workbench._hosts import known_providers
from workbench.config._section import _Section


class StoreConfig(_Section):
    """Where recordings go: ``path`` (a SQLite file, relative to the configuration file's
    folder) or ``url`` (``sqlite:///path`` or ``postgresql://user:password@host:port/db``).
    ``auto_migrate``: upgrade an older schema on open (default: on for SQLite, off for
    PostgreSQL, where ``workbench store migrate`` does it)."""

    path: str | None = None
    url: str | None = None
    auto_migrate: bool | None = None

    @model_validator(mode="after")
    def _one_place(self) -> StoreConfig:
        if self.path is not None and self.url is not None:
            raise ValueError("store: give path or url, not both")
        return self


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


class ProviderRouteConfig(_Section):
    """One ``providers:`` entry: calls to ``url`` (and below it) are ``provider``'s.

    For self-hosted and proxied servers the host table cannot know (``http://gpu-box:8000``
    serving vLLM); ``provider`` is a ``gen_ai.provider.name`` workbench prices by (see the
    README's providers table), so ``vllm`` is self-hosted and unpriced, ``openai`` is priced
    as OpenAI.
    """

    url: str
    provider: str

    @field_validator("url")
    @classmethod
    def _base_url(cls, url: str) -> str:
        parts = urlsplit(url)
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number from 0 to 65535
        except ValueError:
            parts = parts._replace(netloc="")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
            raise ValueError(
                f"providers url {url!r} is not a base URL; write scheme, host, optional port "
                "and path, e.g. 'http://gpu-box:8000' or 'https://llm.internal/v1'"
            )
        return url

    @model_validator(mode="after")
    def _known_provider(self) -> ProviderRouteConfig:
        names = known_providers()
        if self.provider not in names:
            raise ValueError(
                f"provider {self.provider!r} for {self.url!r} is not one workbench knows; "
                f"use one of {', '.join(sorted(names))}"
            )
        return self


def provider_routes(value: Any) -> Any:
    """``providers:`` as a list of entries: a mapping ``{url: provider}`` is one per item."""
    if value is None:
        return []
    if isinstance(value, dict):
        return [{"url": url, "provider": provider} for url, provider in value.items()]
    if not isinstance(value, list):
        raise ValueError(
            "providers must map base URLs to provider names, e.g. "
            "{'http://gpu-box:8000': vllm}, or be a list of {url, provider}"
        )
    return value
