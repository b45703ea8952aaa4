"""Templates in YAML pipelines: Jinja2 in a sandbox, where an undefined name is an error.

Owns the one template environment (``SandboxedEnvironment`` with ``StrictUndefined``), compiling
a template once, finding the names a template uses (checked before anything runs), and rendering
a value — a string, or lists and mappings of strings — against a context of ``inputs``,
``steps``, ``results`` and ``execution``. Which names a place in the file may use, and the file
and line to blame, are ``_model``'s business; this module only reports what went wrong.

A string that is exactly one expression (``"{{ steps.search.result }}"``) renders to the value
itself — a list stays a list, a number a number — so steps can hand structured data to each
other. Any other string renders to text. A string without ``{{``, ``{%`` or ``{#`` is returned
unchanged, without Jinja.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, meta, nodes
from jinja2.sandbox import SandboxedEnvironment

__all__ = [
    "References",
    "RenderFailure",
    "TemplateProblem",
    "compile_template",
    "is_template",
    "references",
    "render_value",
    "template_strings",
]

_MARKERS = ("{{", "{%", "{#")
# One whole ``{{ expression }}`` and nothing else around it (spaces aside).
_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expression>.*)\}\}\s*$", re.DOTALL)


class TemplateProblem(Exception):
    """A template could not be compiled or rendered; ``message`` says why, in Jinja's words."""

    def __init__(self, message: str, *, template_line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.template_line = template_line


def _to_json(value: Any, indent: int | None = None) -> str:
    # Jinja's own ``tojson`` escapes <, > and & for HTML; prompts are not HTML.
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


def _from_json(text: str) -> Any:
    return json.loads(text)


def _environment() -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        undefined=StrictUndefined,
        autoescape=False,
        # A YAML block scalar ends with a newline that the author wrote; keep it.
        keep_trailing_newline=True,
    )
    env.filters["tojson"] = _to_json
    env.filters["fromjson"] = _from_json
    return env


_ENV = _environment()


def is_template(text: str) -> bool:
    """Whether ``text`` holds Jinja syntax at all (plain strings are never rendered)."""
    return any(marker in text for marker in _MARKERS)


@dataclass(frozen=True, slots=True)
class _Compiled:
    source: str
    render: Callable[[Mapping[str, Any]], Any]
    ast: nodes.Template


def _whole_expression(text: str) -> str | None:
    match = _WHOLE_EXPRESSION.match(text)
    if match is None:
        return None
    inner = match["expression"]
    if any(marker in inner for marker in ("{{", "}}", "{%", "{#")):
        return None  # two expressions, or text between them: a text template
    return inner


@lru_cache(maxsize=4096)
def compile_template(text: str) -> _Compiled:
    """``text`` compiled once; raises :class:`TemplateProblem` for a syntax error."""
    try:
        ast = _ENV.parse(text)
        expression = _whole_expression(text)
        if expression is not None:
            compiled = _ENV.compile_expression(expression, undefined_to_none=False)

            def render(context: Mapping[str, Any]) -> Any:
                return _defined(compiled(**context))

        else:
            template = _ENV.from_string(ast)

            def render(context: Mapping[str, Any]) -> Any:
                return template.render(**context)

    except TemplateSyntaxError as exc:
        raise TemplateProblem(
            f"syntax error at line {exc.lineno} of the template: {exc.message}",
            template_line=exc.lineno,
        ) from None
    return _Compiled(text, render, ast)


def _defined(value: Any) -> Any:
    """An expression's value, with an undefined one (even inside a list) raised as an error."""
    if isinstance(value, Undefined):
        str(value)  # StrictUndefined raises UndefinedError naming what is missing
    elif isinstance(value, list | tuple):
        for item in value:
            _defined(item)
    elif isinstance(value, dict):
        for item in value.values():
            _defined(item)
    return value


@dataclass(frozen=True, slots=True)
class References:
    """The context names a template reads, and which ``steps.X`` and ``inputs.X`` it names."""

    names: frozenset[str]
    steps: frozenset[str]
    inputs: frozenset[str]


def _attributes_of(ast: nodes.Template, name: str) -> Iterator[str]:
    for attribute in ast.find_all(nodes.Getattr):
        if isinstance(attribute.node, nodes.Name) and attribute.node.name == name:
            yield attribute.attr
    for item in ast.find_all(nodes.Getitem):
        if not (isinstance(item.node, nodes.Name) and item.node.name == name):
            continue
        if isinstance(item.arg, nodes.Const) and isinstance(item.arg.value, str):
            yield item.arg.value


def references(text: str) -> References:
    """What ``text`` reads from its context (raises :class:`TemplateProblem` if it cannot
    compile). Names bound inside the template (``{% set %}``, loop variables) are left out."""
    ast = compile_template(text).ast
    return References(
        names=frozenset(meta.find_undeclared_variables(ast)),
        steps=frozenset(_attributes_of(ast, "steps")),
        inputs=frozenset(_attributes_of(ast, "inputs")),
    )


def template_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """``(path, text)`` for every template string in ``value`` (nested lists and mappings);
    the path is dotted keys and ``[index]``, e.g. ``messages[0].content``."""
    if isinstance(value, str):
        if is_template(value):
            yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from template_strings(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from template_strings(item, f"{path}[{index}]")


class RenderFailure(TemplateProblem):
    """Rendering the template at ``path`` failed."""

    def __init__(self, message: str, *, path: str, template: str) -> None:
        super().__init__(message)
        self.path = path
        self.template = template


def render_value(value: Any, context: Mapping[str, Any], path: str = "") -> Any:
    """``value`` with every template string rendered; raises :class:`RenderFailure` naming the
    path and template of the first one that fails (an undefined name, a sandbox violation, a
    filter's error)."""
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            return compile_template(value).render(context)
        except TemplateProblem as exc:
            raise RenderFailure(exc.message, path=path, template=value) from None
        except Exception as exc:  # Jinja's errors and the errors of filters and methods alike
            message = f"{type(exc).__name__}: {exc}"
            raise RenderFailure(message, path=path, template=value) from exc
    if isinstance(value, Mapping):
        return {
            key: render_value(item, context, f"{path}.{key}" if path else str(key))
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [render_value(item, context, f"{path}[{i}]") for i, item in enumerate(value)]
    return value
