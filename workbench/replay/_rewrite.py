"""The ``model`` and ``prompt_overrides`` modifications: rewriting outgoing model requests.

Owns checking the two modifications' shapes (a :class:`ConfigError` naming what is allowed) and
rewriting one JSON request body before it is looked up, so the replay records the request that
was really sent and a rewritten request misses the recording and follows ``on_miss``. It does
not decide what answers the request; that is ``_interceptor``'s.

Shapes::

    modifications={"model": "gpt-4o"}                           # every request's model
    modifications={"model": {"gpt-4o-mini": "gpt-4o"}}          # only requests for gpt-4o-mini
    modifications={"prompt_overrides": {
        "outline": {                                            # calls made in step "outline"
            "system": "You are terse.",                         # the system prompt
            "messages": {0: "Outline a report on llamas"},      # messages[0]'s content
        },
    }}

``system`` replaces the content of every OpenAI ``role: "system"`` (or ``"developer"``) message,
or adds one in front when there is none; for Anthropic (a body with a top-level ``system``, or a
``/messages`` path) it sets the top-level ``system``. ``messages`` indexes the body's
``messages`` list as sent (for OpenAI that includes the system message) and replaces the whole
content of each message named with the given text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from workbench.exceptions import ConfigError

__all__ = ["PromptOverride", "RequestRewriter"]

_OVERRIDE_KEYS = ("messages", "system")
_SYSTEM_ROLES = frozenset({"system", "developer"})


@dataclass(frozen=True, slots=True)
class PromptOverride:
    """What to replace in the requests of one step."""

    system: str | None
    messages: dict[int, str]


class RequestRewriter:
    """Applies ``model`` and ``prompt_overrides`` to JSON request bodies; cheap when unused."""

    __slots__ = ("_models", "_prompts", "_swap_all")

    def __init__(self, model: Any = None, prompt_overrides: Any = None) -> None:
        self._swap_all: str | None = None
        self._models: dict[str, str] = {}
        if isinstance(model, str):
            self._swap_all = model
        elif model is not None:
            self._models = _checked_models(model)
        self._prompts = _checked_prompts(prompt_overrides)

    def __bool__(self) -> bool:
        return bool(self._swap_all or self._models or self._prompts)

    @property
    def steps(self) -> list[str]:
        """The step ids ``prompt_overrides`` names."""
        return sorted(self._prompts)

    def rewrite(self, step_id: str | None, url: str, body: bytes) -> bytes | None:
        """The rewritten body, or ``None`` when it is not JSON or nothing applies to it."""
        override = self._prompts.get(step_id) if step_id is not None else None
        if override is None and self._swap_all is None and not self._models:
            return None
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        changed = self._swap_model(data)
        if override is not None:
            anthropic = "system" in data or urlsplit(url).path.rstrip("/").endswith("/messages")
            changed = _apply(override, data, anthropic=anthropic) or changed
        return orjson.dumps(data) if changed else None

    def _swap_model(self, data: dict[str, Any]) -> bool:
        model = data.get("model")
        if not isinstance(model, str):
            return False
        new = self._swap_all if self._swap_all is not None else self._models.get(model)
        if new is None or new == model:
            return False
        data["model"] = new
        return True


def _apply(override: PromptOverride, data: dict[str, Any], *, anthropic: bool) -> bool:
    messages = data.get("messages")
    if not isinstance(messages, list):
        return False  # not a chat request (an embedding, a completion): nothing to override
    changed = False
    for index, text in override.messages.items():
        if -len(messages) <= index < len(messages) and isinstance(messages[index], dict):
            messages[index] = {**messages[index], "content": text}
            changed = True
    if override.system is not None:
        # Anthropic keeps the system prompt beside the messages; OpenAI keeps it among them.
        if anthropic:
            data["system"] = override.system
        else:
            system = [
                i
                for i, m in enumerate(messages)
                if isinstance(m, dict) and m.get("role") in _SYSTEM_ROLES
            ]
            for i in system:
                messages[i] = {**messages[i], "content": override.system}
            if not system:
                messages.insert(0, {"role": "system", "content": override.system})
        changed = True
    return changed


def _checked_models(model: Any) -> dict[str, str]:
    if isinstance(model, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in model.items()
    ):
        return dict(model)
    raise ConfigError(
        f"replay modification 'model' must be a model name (every request's model is "
        f"replaced) or a mapping {{'from-model': 'to-model'}} of names, got {model!r}"
    )


def _checked_prompts(overrides: Any) -> dict[str, PromptOverride]:
    if overrides is None:
        return {}
    shape = (
        "{step_id: {'system': 'new system prompt', 'messages': {index: 'new content'}}} "
        f"with keys {', '.join(repr(k) for k in _OVERRIDE_KEYS)}"
    )
    if not isinstance(overrides, Mapping):
        raise ConfigError(f"replay modification 'prompt_overrides' must be {shape}")
    checked: dict[str, PromptOverride] = {}
    for step_id, override in overrides.items():
        where = f"prompt_overrides[{step_id!r}]"
        if not isinstance(step_id, str) or not isinstance(override, Mapping):
            raise ConfigError(f"replay modification {where} must be {shape}")
        unknown = sorted(set(map(str, override)) - set(_OVERRIDE_KEYS))
        if unknown or not override:
            raise ConfigError(
                f"replay modification {where} has {', '.join(map(repr, unknown)) or 'no keys'}; "
                f"the allowed keys are {', '.join(repr(k) for k in _OVERRIDE_KEYS)}"
            )
        system = override.get("system")
        if system is not None and not isinstance(system, str):
            raise ConfigError(f"replay modification {where}['system'] must be a str")
        messages: dict[int, str] = {}
        raw = override.get("messages", {})
        if not isinstance(raw, Mapping):
            raise ConfigError(
                f"replay modification {where}['messages'] must map message indexes to new "
                f"content, e.g. {{0: 'new content'}}"
            )
        for index, text in raw.items():
            # JSON (the CLI, a stored modification) can only spell the index as a string.
            if isinstance(index, str) and index.lstrip("-").isdigit():
                index = int(index)
            if not isinstance(index, int) or isinstance(index, bool) or not isinstance(text, str):
                raise ConfigError(
                    f"replay modification {where}['messages'] must map message indexes (int) "
                    f"to new content (str), got {index!r}: {text!r}"
                )
            messages[index] = text
        checked[step_id] = PromptOverride(system, messages)
    return checked
