"""The shape of JSON a prompt shows by example, as a JSON schema for JSON-mode answers.

JSON mode (``response_format: {"type": "json_object"}``) gives no schema: the prompt says what to
answer, usually with an example such as ``{"sections": ["<title>", ...]}``. A real model follows
it, so code that reads ``answer["sections"]`` works; the test model does likewise by turning the
first JSON object in the prompt into a schema (:func:`schema_of_example`) that
``_schema.json_for_schema`` fills in. Ellipses (``...``, ``…``) inside lists and objects are read
as "more like these". Owns only that reading; not the answer's wording nor any provider's shape.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from workbench.testmodel._protocol import JsonObject

__all__ = ["schema_of_example"]

# Prompts can be long (retrieved documents); only the first few braces are worth trying.
_MAX_CANDIDATES = 8
_ELLIPSIS = r"(?:\.\.\.|…)"
# An ellipsis after the last item, before the first one, or as the only one.
_TRAILING = re.compile(r",\s*" + _ELLIPSIS + r"\s*(?=[\]}])")
_LEADING = re.compile(r"(?<=[\[{])\s*" + _ELLIPSIS + r"\s*,?")
# "More like these": an example list with an ellipsis stands for at least this many items.
_MORE_ITEMS = 3
# Example strings are placeholders (``"<title>"``); a few words read better than one.
_TEXT_LENGTH = 12


def schema_of_example(text: str) -> JsonObject | None:
    """A schema for the first JSON object written in ``text``, or None when there is none."""
    for candidate in _objects(text):
        loose = _TRAILING.sub("", candidate)
        example_text = _LEADING.sub("", loose)
        try:
            example = orjson.loads(example_text)
        except orjson.JSONDecodeError:
            continue
        if isinstance(example, dict) and example:
            return _schema(example, more=example_text != candidate)
    return None


def _objects(text: str) -> list[str]:
    """Balanced ``{...}`` spans of ``text`` (quoted braces skipped), the first few."""
    spans: list[str] = []
    start = text.find("{")
    # Bounded in tries, not spans: each try may scan the rest of the text (unclosed braces).
    for _ in range(_MAX_CANDIDATES):
        if start == -1:
            break
        end = _closing(text, start)
        if end is not None:
            spans.append(text[start : end + 1])
        start = text.find("{", start + 1)
    return spans


def _closing(text: str, start: int) -> int | None:
    depth = 0
    quoted = escaped = False
    for index in range(start, len(text)):
        char = text[index]
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char in "{[":
            depth += 1
        elif char in "}]":
            depth -= 1
            if depth == 0:
                return index
            if depth < 0:
                return None
    return None


def _schema(example: Any, *, more: bool) -> JsonObject:
    if isinstance(example, dict):
        return {
            "type": "object",
            "properties": {key: _schema(value, more=more) for key, value in example.items()},
            "required": list(example),
            "additionalProperties": False,
        }
    if isinstance(example, list):
        items = _schema(example[0], more=more) if example else {"type": "string"}
        return {"type": "array", "items": items, "minItems": _MORE_ITEMS if more else len(example)}
    if isinstance(example, bool):
        return {"type": "boolean"}
    if isinstance(example, int):
        return {"type": "integer"}
    if isinstance(example, float):
        return {"type": "number", "minimum": 0, "maximum": max(1.0, example)}
    if example is None:
        return {"type": "null"}
    return {"type": "string", "minLength": _TEXT_LENGTH}
