"""``@workbench.pipeline``: mark a function as an entrypoint that can be run again.

It records the function's import path (``module:qualname``), its bound arguments as the
execution's inputs and its return value as the outputs, which is what replay needs to re-run
the user's real code. Inside ``workbench.record(...)`` it marks that execution; outside any
execution it starts one named after the function.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, overload

from workbench._context import current
from workbench.exceptions import RecordingError
from workbench.recorder._execution import record
from workbench.recorder._step import render_parameters

__all__ = ["entrypoint_of", "pipeline"]

F = TypeVar("F", bound=Callable[..., Any])


def entrypoint_of(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}:{fn.__qualname__}"


@overload
def pipeline(fn: F, /) -> F: ...
@overload
def pipeline(
    *, name: str | None = None, version: str | None = None, **record_kwargs: Any
) -> Callable[[F], F]: ...


def pipeline(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    **record_kwargs: Any,
) -> Any:
    """Decorate a pipeline's entrypoint: ``@workbench.pipeline`` or ``@workbench.pipeline(name=)``.

    ``record_kwargs`` (``user_id``, ``environment``, ``metadata``, ``store``) are used when the
    call starts its own execution.
    """
    if fn is None:
        return lambda f: _decorate(f, name, version, record_kwargs)
    return _decorate(fn, name, version, record_kwargs)


def _decorate(
    fn: Callable[..., Any], name: str | None, version: str | None, record_kwargs: dict[str, Any]
) -> Callable[..., Any]:

    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise RecordingError(
            f"@workbench.pipeline cannot decorate the generator function {fn.__qualname__}: its "
            f"execution would end before the generator runs; decorate the function that "
            f"consumes it, or iterate it inside `with workbench.record(...)`"
        )
    pipeline_id = name or fn.__name__
    entrypoint = entrypoint_of(fn)
    try:
        signature: inspect.Signature | None = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_entry(*args: Any, **kwargs: Any) -> Any:
            arguments = render_parameters(signature, args, kwargs)
            frame = current.get()
            if frame is not None:
                frame.run.mark_entrypoint(entrypoint, arguments, version)
                result = await fn(*args, **kwargs)
                frame.run.set_output(result)
                return result
            async with record(
                pipeline_id,
                inputs=arguments,
                entrypoint=entrypoint,
                pipeline_version=version,
                **record_kwargs,
            ) as run:
                result = await fn(*args, **kwargs)
                run.set_output(result)
                return result

        async_entry.__workbench_entrypoint__ = entrypoint  # type: ignore[attr-defined]
        return async_entry

    @functools.wraps(fn)
    def entry(*args: Any, **kwargs: Any) -> Any:
        arguments = render_parameters(signature, args, kwargs)
        frame = current.get()
        if frame is not None:
            frame.run.mark_entrypoint(entrypoint, arguments, version)
            result = fn(*args, **kwargs)
            frame.run.set_output(result)
            return result
        with record(
            pipeline_id,
            inputs=arguments,
            entrypoint=entrypoint,
            pipeline_version=version,
            **record_kwargs,
        ) as run:
            result = fn(*args, **kwargs)
            run.set_output(result)
            return result

    entry.__workbench_entrypoint__ = entrypoint  # type: ignore[attr-defined]
    return entry
