"""Actions: what a YAML pipeline step does, by name.

Owns the registry (``@workbench.action("search")`` registers a sync or async callable), checking
a step's parameters against the action's signature before anything runs, calling an action
(sync ones in a worker thread that carries the step's context, so their model calls are
recorded on the step), importing modules for ``imports:`` and the ``python`` action, and the
three built-in actions:

- ``llm`` — one chat call through the real ``openai`` or ``anthropic`` SDK (async clients),
  optionally streamed; returns the answer's text. Base URL and API key come from the
  parameters, else the SDKs' own environment variables (``OPENAI_BASE_URL``,
  ``OPENAI_API_KEY``, ``ANTHROPIC_BASE_URL``, ``ANTHROPIC_API_KEY``). The SDKs' own retries are
  off: a step's ``retries`` are the retries, and each is recorded.
- ``http`` — one request with ``httpx``; returns the JSON body, else the text.
- ``python`` — the function at ``module:qualname`` called with ``arguments``.

The SDKs are imported when an ``llm`` step runs, not when workbench is imported.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from workbench._context import current
from workbench._imports import import_function
from workbench.exceptions import PipelineError

__all__ = [
    "Action",
    "action",
    "get_action",
    "registered_actions",
]

F = TypeVar("F", bound=Callable[..., Any])

#: Sent when no API key is configured but a base URL is (the test model server accepts any key)
#: or a recording answers the call without sending it.
PLACEHOLDER_API_KEY = "sk-workbench-no-key-configured"
PROVIDERS = ("openai", "anthropic")
#: Anthropic requires ``max_tokens``; this is used when a step does not set it.
DEFAULT_ANTHROPIC_MAX_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class Action:
    """A named callable a step can run."""

    name: str
    function: Callable[..., Any]
    builtin: bool = False

    @property
    def where(self) -> str:
        fn = self.function
        return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', repr(fn))}"

    def check(self, parameters: Mapping[str, Any]) -> str | None:
        """Why ``parameters`` cannot be passed to this action (``None`` when they can)."""
        try:
            signature = inspect.signature(self.function)
        except (TypeError, ValueError):
            return None  # a callable we cannot inspect: find out when it runs
        accepted = signature.parameters
        if any(p.kind is p.VAR_KEYWORD for p in accepted.values()):
            unknown: list[str] = []
        else:
            unknown = [
                str(name)
                for name in parameters
                if name not in accepted or accepted[name].kind is inspect.Parameter.POSITIONAL_ONLY
            ]
        missing = [
            name
            for name, p in accepted.items()
            if p.default is p.empty
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            and name not in parameters
        ]
        takes = ", ".join(
            n for n, p in accepted.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
        problems = []
        if unknown:
            problems.append(f"unknown parameter(s) {', '.join(map(repr, unknown))}")
        if missing:
            problems.append(f"missing required parameter(s) {', '.join(map(repr, missing))}")
        if not problems:
            return None
        return f"{' and '.join(problems)} for action {self.name!r}; it takes: {takes or 'none'}"

    async def call(self, parameters: Mapping[str, Any]) -> Any:
        """Run the action; a sync callable runs in a worker thread (``asyncio.to_thread``
        copies the context, so the step and execution follow it)."""
        fn = self.function
        if inspect.iscoroutinefunction(fn):
            return await fn(**parameters)
        result = await asyncio.to_thread(fn, **parameters)
        if inspect.isawaitable(result):  # a sync wrapper around a coroutine function
            result = await result
        return result


_registry: dict[str, Action] = {}
_lock = threading.Lock()


def _register(name: str, fn: Callable[..., Any], *, builtin: bool = False) -> None:
    if not isinstance(name, str) or not name.strip():
        raise PipelineError(
            f"an action name must be a non-empty string, got {name!r}; write e.g. "
            f"@workbench.action('search')"
        )
    if not callable(fn):
        raise PipelineError(f"action {name!r} must be a callable, got {type(fn).__name__}")
    new = Action(name, fn, builtin)
    with _lock:
        old = _registry.get(name)
        # The same function registered again (a module imported twice, a reloaded notebook
        # cell) replaces itself; another function under a taken name is a mistake.
        if old is not None and (old.builtin or old.where != new.where):
            raise PipelineError(
                f"action {name!r} is already registered by {old.where}; give "
                f"{new.where} another name"
            )
        _registry[name] = new


@overload
def action(fn: F, /) -> F: ...
@overload
def action(name: str | None = None, /) -> Callable[[F], F]: ...


def action(name: Any = None, /) -> Any:
    """Register a callable (sync or async) as a pipeline action; returns it unchanged.

    >>> @workbench.action("search")
    ... def search(query: str, limit: int = 5) -> list[str]: ...

    A step ``action: search`` then calls it with its rendered ``parameters`` as keyword
    arguments. ``@workbench.action`` alone uses the function's name.
    """
    if callable(name):
        _register(name.__name__, name)
        return name

    def decorate(fn: F) -> F:
        _register(name if name is not None else fn.__name__, fn)
        return fn

    return decorate


def get_action(name: str) -> Action | None:
    return _registry.get(name)


def registered_actions() -> dict[str, Action]:
    """Every registered action by name, the built-in ones included."""
    return dict(_registry)


# -- built-in actions -------------------------------------------------------------------------


def _messages(prompt: str | None, messages: list[Any] | None) -> list[Any]:
    if (prompt is None) == (messages is None):
        raise PipelineError(
            "the llm action needs exactly one of 'prompt' (a string: one user message) or "
            "'messages' (a list of {role, content}); give one of them"
        )
    if messages is not None:
        if not isinstance(messages, list):
            raise PipelineError(
                f"the llm action's 'messages' must be a list of {{role, content}}, got "
                f"{type(messages).__name__}"
            )
        return messages
    if not isinstance(prompt, str):
        raise PipelineError(
            f"the llm action's 'prompt' must be a string, got {type(prompt).__name__}; to pass "
            f"structured data, render it to text, e.g. {{{{ value | tojson }}}}"
        )
    return [{"role": "user", "content": prompt}]


async def llm(
    *,
    model: str,
    prompt: str | None = None,
    messages: list[Any] | None = None,
    system: str | None = None,
    provider: str = "openai",
    max_tokens: int | None = None,
    temperature: float | None = None,
    stream: bool = False,
    response_format: dict[str, Any] | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    headers: dict[str, str] | None = None,
    options: dict[str, Any] | None = None,
) -> str:
    """One chat call to ``provider`` (``openai`` or ``anthropic``); returns the answer's text.

    ``options`` are passed to the SDK's create call as they are (``top_p``, ``stop``, ...);
    ``headers`` are sent as extra HTTP headers.
    """
    chat = _messages(prompt, messages)
    extra: dict[str, Any] = dict(options or {})
    if temperature is not None:
        extra["temperature"] = temperature
    if headers:
        extra["extra_headers"] = headers
    if provider == "openai":
        return await _openai_chat(
            model, chat, system, max_tokens, stream, response_format, base_url, api_key, extra
        )
    if provider == "anthropic":
        if response_format is not None:
            raise PipelineError(
                "the llm action's 'response_format' is an OpenAI option; for anthropic, ask "
                "for the format in the prompt or system message"
            )
        return await _anthropic_chat(
            model, chat, system, max_tokens, stream, base_url, api_key, extra
        )
    raise PipelineError(
        f"the llm action's provider {provider!r} is not supported; use one of "
        f"{', '.join(map(repr, PROVIDERS))}"
    )


_PROVIDER_ENV = {
    "openai": ("OPENAI_API_KEY", "OPENAI_BASE_URL", "api.openai.com"),
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "api.anthropic.com"),
}


def _key_or_refuse(provider: str, api_key: str | None, base_url: str | None) -> str:
    """The API key to send; with none, the placeholder only where no real provider is asked.

    Without a key and a base URL the SDK would send the call to the provider itself, which
    refuses it (and a step's retries would ask it again): refuse before anything is sent.
    A base URL (a local server, the test model) or a recording to answer from needs no key.
    """
    key_env, url_env, host = _PROVIDER_ENV[provider]
    key = api_key or os.environ.get(key_env)
    if key:
        return key
    frame = current.get()
    answered = frame is not None and frame.run.interceptor is not None
    if base_url or os.environ.get(url_env) or answered:
        return PLACEHOLDER_API_KEY
    raise PipelineError(
        f"the llm step would call {provider} at {host}, but {key_env} is not set (nothing was "
        f"sent): export {key_env}, or give the step an api_key parameter; to run without a key, "
        f"use `workbench run FILE --test-model` (workbench's test model server on 127.0.0.1) "
        f"or point {url_env} at a server of your own"
    )


async def _openai_chat(
    model: str,
    chat: list[Any],
    system: str | None,
    max_tokens: int | None,
    stream: bool,
    response_format: dict[str, Any] | None,
    base_url: str | None,
    api_key: str | None,
    extra: dict[str, Any],
) -> str:
    openai = _sdk("openai")

    messages = [{"role": "system", "content": system}, *chat] if system is not None else chat
    arguments: dict[str, Any] = {"model": model, "messages": messages, **extra}
    if max_tokens is not None:
        arguments["max_tokens"] = max_tokens
    if response_format is not None:
        arguments["response_format"] = response_format
    key = _key_or_refuse("openai", api_key, base_url)
    async with openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0) as client:
        if not stream:
            response = await client.chat.completions.create(**arguments)
            return response.choices[0].message.content or "" if response.choices else ""
        parts: list[str] = []
        # Without include_usage a stream reports no tokens, and the call could not be priced.
        events = await client.chat.completions.create(
            **arguments, stream=True, stream_options={"include_usage": True}
        )
        async with events:
            async for chunk in events:
                if chunk.choices and chunk.choices[0].delta.content:
                    parts.append(chunk.choices[0].delta.content)
        return "".join(parts)


async def _anthropic_chat(
    model: str,
    chat: list[Any],
    system: str | None,
    max_tokens: int | None,
    stream: bool,
    base_url: str | None,
    api_key: str | None,
    extra: dict[str, Any],
) -> str:
    anthropic = _sdk("anthropic")

    arguments: dict[str, Any] = {
        "model": model,
        "messages": chat,
        "max_tokens": DEFAULT_ANTHROPIC_MAX_TOKENS if max_tokens is None else max_tokens,
        **extra,
    }
    if system is not None:
        arguments["system"] = system
    key = _key_or_refuse("anthropic", api_key, base_url)
    async with anthropic.AsyncAnthropic(base_url=base_url, api_key=key, max_retries=0) as client:
        if not stream:
            message = await client.messages.create(**arguments)
            return "".join(
                block.text for block in message.content if getattr(block, "type", "") == "text"
            )
        parts: list[str] = []
        events = await client.messages.create(**arguments, stream=True)
        async with events:
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    parts.append(event.delta.text)
        return "".join(parts)


async def http(
    *,
    url: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    params: dict[str, Any] | None = None,
    json: Any = None,
    data: dict[str, Any] | str | None = None,
    timeout: float = 30.0,
    raise_for_status: bool = True,
) -> Any:
    """One HTTP request; returns the JSON body when the response is JSON, else its text.

    A status of 400 or more raises ``httpx.HTTPStatusError`` (retried like any failure) unless
    ``raise_for_status`` is false.
    """
    import httpx

    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.request(
            method.upper(),
            url,
            headers=headers,
            params=params,
            json=json,
            # A string is sent as the body itself; a mapping as a form.
            content=data if isinstance(data, str) else None,
            data=data if isinstance(data, dict) else None,
        )
    if raise_for_status:
        response.raise_for_status()
    if "json" in response.headers.get("content-type", ""):
        return response.json()
    return response.text


async def python(*, function: str, arguments: dict[str, Any] | None = None) -> Any:
    """Call the function at ``function`` (``module:qualname``) with ``arguments``."""
    try:
        target = import_function(function)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PipelineError(
            f"the python action cannot import {function!r} ({type(exc).__name__}: {exc}); "
            f"write it as 'package.module:function' with the module importable from the "
            f"working directory or the pipeline file's folder"
        ) from exc
    if arguments is not None and not isinstance(arguments, dict):
        raise PipelineError(
            f"the python action's 'arguments' must be a mapping of keyword arguments, got "
            f"{type(arguments).__name__}"
        )
    return await Action(function, target).call(arguments or {})


_register("llm", llm, builtin=True)
_register("http", http, builtin=True)
_register("python", python, builtin=True)


def _sdk(name: str) -> Any:
    """The model SDK the ``llm`` action calls; it comes with the ``demo`` extra, not the base
    install (recording needs no SDK)."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise PipelineError(
            f"the llm action with provider {name!r} needs the {name} SDK, which the base install "
            f"leaves out; install it with `pip install 'pipeline-workbench[demo]'` (or `pip "
            f"install {name}`)"
        ) from exc
