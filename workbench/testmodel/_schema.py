"""A JSON value that validates against a JSON schema, chosen deterministically by a seed.

Owns :func:`json_for_schema`, which the test model uses for ``response_format`` answers, Responses
API ``text.format`` answers and tool-call arguments. It covers what pydantic, the OpenAI and
Anthropic SDKs and the agent frameworks emit: ``type`` (one or a list), ``enum``, ``const``,
objects (``properties``, ``required``, ``additionalProperties``, ``min``/``maxProperties``),
arrays (``items``, ``prefixItems``, ``min``/``maxItems``, ``uniqueItems``), string lengths and
common ``format``\\ s, numeric bounds and ``multipleOf``, ``anyOf``/``oneOf``/``allOf``, and local
``$ref``\\ s into ``$defs``/``definitions`` including recursive models. ``pattern``, ``not`` and
``if``/``then``/``else`` are not solved. Does not own HTTP or any provider's shapes.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import orjson

from workbench.testmodel._answers import VOCABULARY
from workbench.testmodel._protocol import InvalidRequest

# Past this depth optional properties are left out, arrays take their fewest items and unions
# their simplest branch, so recursive models (a tree of nodes) end in small values.
_SHALLOW_DEPTH = 3
# A schema still nesting this deep has no finite instance (a required property that recurses).
_MAX_DEPTH = 48
_MAX_UNIQUE_TRIES = 16

# Keywords that describe a value without constraining it, so a ``$ref`` beside them is the whole
# schema (pydantic emits ``{"$ref": ..., "description": ...}``).
_ANNOTATIONS = frozenset(
    {
        "$comment", "$id", "$schema", "default", "deprecated", "description", "discriminator",
        "examples", "readOnly", "title", "writeOnly",
    }
)  # fmt: skip

_FORMATS: dict[str, str] = {
    "date-time": "2024-05-17T09:30:00Z",
    "date": "2024-05-17",
    "time": "09:30:00Z",
    "duration": "P1DT2H",
    "email": "amber@example.com",
    "idn-email": "amber@example.com",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uri": "https://example.com/amber",
    "url": "https://example.com/amber",
    "iri": "https://example.com/amber",
    "uri-reference": "/amber",
    "iri-reference": "/amber",
    "json-pointer": "/amber",
    "relative-json-pointer": "0/amber",
    "regex": "^amber$",
}

_MERGED_MINIMA = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_MERGED_MAXIMA = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")


def json_for_schema(schema: object, *, seed: str = "") -> Any:
    """A JSON value (dicts, lists, str, int, float, bool, None) that validates against ``schema``.

    Equal ``(schema, seed)`` give equal values in every process; a different seed usually gives a
    different value. Raises :class:`InvalidRequest` for a schema it cannot satisfy, or whose
    ``$ref`` points outside the schema.
    """
    return _Generator(schema, seed).value(schema, 0)


class _Generator:
    def __init__(self, root: object, seed: str) -> None:
        self._root = root
        # A str seed is hashed with SHA-512 by random.Random, so the sequence is the same in
        # every process, unlike hash()-based seeding.
        self._rng = random.Random("workbench-testmodel:" + seed)

    # -- dispatch --------------------------------------------------------------------------

    def value(self, schema: object, depth: int) -> Any:
        if depth > _MAX_DEPTH:
            raise InvalidRequest(
                f"the JSON schema nests deeper than {_MAX_DEPTH} levels; a required property "
                f"that refers back to its own model has no finite value"
            )
        if schema is True or schema is None:
            return self._word()
        if schema is False:
            raise InvalidRequest("the JSON schema is `false`: no value validates against it")
        if not isinstance(schema, Mapping):
            raise InvalidRequest(
                f"a JSON schema must be an object or a boolean, got {schema!r:.60}"
            )
        schema = self._flatten(schema, depth)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return self._enum(schema)
        for union in ("anyOf", "oneOf"):
            if union in schema:
                return self._union(schema, union, depth)
        kind = self._kind(schema, depth)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, depth)
        if kind == "string":
            return self._string(schema)
        if kind == "integer":
            return self._integer(schema)
        if kind == "number":
            return self._number(schema)
        if kind == "boolean":
            return self._rng.random() < 0.5
        return None

    def _flatten(self, schema: Mapping[str, Any], depth: int) -> Mapping[str, Any]:
        """The schema with its ``$ref`` and ``allOf`` merged in, so the rest sees one schema."""
        for _ in range(_MAX_DEPTH):
            if "$ref" in schema:
                target = self._resolve(schema["$ref"])
                rest = {key: value for key, value in schema.items() if key != "$ref"}
                if set(rest) - _ANNOTATIONS:
                    rest["allOf"] = [target, *rest.get("allOf", [])]
                    schema = rest
                elif target is True:
                    return {}
                elif isinstance(target, Mapping):
                    schema = target
                    continue
                else:
                    raise InvalidRequest(f"$ref {schema['$ref']!r:.80} is not a schema object")
            if "allOf" not in schema:
                return schema
            parts = schema["allOf"]
            if not isinstance(parts, list):
                raise InvalidRequest(f"allOf must be a list of schemas, got {parts!r:.60}")
            merged: Mapping[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in parts:
                if part is False:
                    raise InvalidRequest("allOf contains `false`: no value validates against it")
                if isinstance(part, Mapping):
                    merged = _merge(merged, self._flatten(part, depth))
            schema = merged
        raise InvalidRequest(f"the schema's $refs go round in a loop: {schema!r:.80}")

    def _resolve(self, ref: object) -> object:
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise InvalidRequest(
                f"$ref {ref!r:.80} is not local: the test model resolves only refs inside the "
                f"schema, like '#/$defs/Name'"
            )
        node: object = self._root
        for raw in ref[1:].split("/")[1:] if ref != "#" else ():
            token = raw.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and token in node:
                node = node[token]
            elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
                node = node[int(token)]
            else:
                raise InvalidRequest(f"$ref {ref!r:.80} points at nothing in the schema")
        return node

    def _kind(self, schema: Mapping[str, Any], depth: int) -> str:
        declared = schema.get("type")
        if isinstance(declared, str):
            return declared
        if isinstance(declared, list) and declared:
            concrete = [kind for kind in declared if kind != "null"]
            if not concrete or (depth > _SHALLOW_DEPTH and "null" in declared):
                return "null"
            return str(concrete[0])
        if {"properties", "required", "additionalProperties", "minProperties"} & schema.keys():
            return "object"
        if {"items", "prefixItems", "minItems", "maxItems"} & schema.keys():
            return "array"
        if {"minLength", "maxLength", "format", "pattern"} & schema.keys():
            return "string"
        if {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} & schema.keys():
            return "number"
        if "multipleOf" in schema:
            return "integer"
        return "string"  # an unconstrained schema accepts anything; a word reads best

    # -- combinators -----------------------------------------------------------------------

    def _enum(self, schema: Mapping[str, Any]) -> Any:
        options = schema["enum"]
        if not isinstance(options, list) or not options:
            raise InvalidRequest(f"enum must be a non-empty list, got {options!r:.60}")
        return self._rng.choice(options)

    def _union(self, schema: Mapping[str, Any], union: str, depth: int) -> Any:
        branches = schema[union]
        if not isinstance(branches, list) or not branches:
            raise InvalidRequest(f"{union} must be a non-empty list of schemas")
        rest = {key: value for key, value in schema.items() if key != union}
        chosen = self._branch(branches, depth)
        # One level deeper, so a union that refers back to itself ends at a simple branch.
        # Keywords beside the union (``type``, ``properties``) constrain the chosen branch too.
        if set(rest) - _ANNOTATIONS:
            return self.value({**rest, "allOf": [chosen]}, depth + 1)
        return self.value(chosen, depth + 1)

    def _branch(self, branches: list[Any], depth: int) -> Any:
        """The first branch that is not ``null``, or, deep down, the first that ends recursion.

        The first rather than a random one because ``oneOf`` branches are tried in order by
        pydantic, and ``Optional[X]`` reads better as an X than as null.
        """
        usable = [branch for branch in branches if branch is not False]
        if not usable:
            raise InvalidRequest("every branch of the union is `false`")
        if depth > _SHALLOW_DEPTH:
            for branch in usable:
                if isinstance(branch, Mapping) and not {"$ref", "properties", "items"} & set(
                    branch
                ):
                    return branch
            return usable[0]
        for branch in usable:
            if not (isinstance(branch, Mapping) and branch.get("type") == "null"):
                return branch
        return usable[0]

    # -- containers ------------------------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties") or {}
        if not isinstance(properties, Mapping):
            raise InvalidRequest(f"properties must be an object, got {properties!r:.60}")
        required = [name for name in schema.get("required") or () if isinstance(name, str)]
        lowest = _count(schema, "minProperties", 0)
        highest = _count(schema, "maxProperties", math.inf)
        extra = schema.get("additionalProperties", True)
        chosen = list(dict.fromkeys(required))
        optional = [name for name in properties if name not in chosen]
        if depth < _SHALLOW_DEPTH:
            chosen += optional
        else:
            chosen += optional[: max(0, lowest - len(chosen))]
        if len(chosen) > highest:
            if len(required) > highest:
                raise InvalidRequest(
                    f"the schema requires {len(required)} properties but allows at most {highest}"
                )
            chosen = chosen[: int(highest)]
        result: dict[str, Any] = {}
        for name in chosen:
            # A required name with no schema of its own obeys additionalProperties.
            sub = properties.get(name, extra if extra is not False else True)
            result[name] = self.value(sub, depth + 1)
        # A dict[str, X] (no properties, additionalProperties X) reads better with one entry.
        wanted = max(lowest, 1 if not properties and extra is not False and depth < 2 else 0)
        wanted = min(wanted, highest)
        while len(result) < wanted:
            if extra is False:
                raise InvalidRequest(
                    f"the schema needs {lowest} properties but defines only {len(result)} and "
                    f"forbids additional ones"
                )
            result[self._fresh_key(result)] = self.value(
                extra if isinstance(extra, Mapping) else True, depth + 1
            )
        return result

    def _fresh_key(self, taken: Mapping[str, Any]) -> str:
        for word in VOCABULARY:
            if word not in taken:
                return word
        return f"key{len(taken)}"

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        items = schema.get("items", True)
        if isinstance(items, list):  # draft 4-7 tuple form
            prefix, items = items, schema.get("additionalItems", True)
        prefix = prefix if isinstance(prefix, list) else []
        lowest = _count(schema, "minItems", 0)
        highest = _count(schema, "maxItems", math.inf)
        target = max(lowest, len(prefix), 1 + self._rng.randrange(2))
        if depth >= _SHALLOW_DEPTH:
            target = lowest
        target = min(target, highest)
        if items is False:
            target = min(target, len(prefix))
        if target < lowest:
            raise InvalidRequest(
                f"the schema needs {lowest} items but allows only {len(prefix)} (items: false)"
            )
        unique = schema.get("uniqueItems") is True
        result: list[Any] = []
        seen: set[bytes] = set()
        while len(result) < target:
            index = len(result)
            sub = prefix[index] if index < len(prefix) else items
            for _ in range(_MAX_UNIQUE_TRIES if unique else 1):
                candidate = self.value(sub, depth + 1)
                key = orjson.dumps(candidate, option=orjson.OPT_SORT_KEYS)
                if not unique or key not in seen:
                    break
            else:
                if len(result) >= lowest:
                    break
                raise InvalidRequest(
                    f"the schema needs {lowest} unique items but the item schema gave only "
                    f"{len(result)} distinct values"
                )
            seen.add(key)
            result.append(candidate)
        return result

    # -- scalars ---------------------------------------------------------------------------

    def _word(self) -> str:
        return self._rng.choice(VOCABULARY)

    def _string(self, schema: Mapping[str, Any]) -> str:
        fmt = schema.get("format")
        if fmt == "uuid":
            text = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        elif isinstance(fmt, str) and fmt in _FORMATS:
            text = _FORMATS[fmt]
        else:
            text = self._word()
        lowest = _count(schema, "minLength", 0)
        highest = _count(schema, "maxLength", math.inf)
        if lowest > highest:
            raise InvalidRequest(f"minLength {lowest} is greater than maxLength {highest}")
        while len(text) < lowest:
            text += " " + self._word()
        if len(text) > highest:
            text = text[: int(highest)].rstrip() or text[: int(highest)]
        if len(text) < lowest:  # stripping the cut made it too short again
            text = text.ljust(lowest, "a")
        return text

    def _integer(self, schema: Mapping[str, Any]) -> int:
        low, high = _bounds(schema)
        lowest = None if low is None else _lowest_int(*low)
        highest = None if high is None else _highest_int(*high)
        step = 1
        if "multipleOf" in schema:
            # An integer is a multiple of p/q (reduced) exactly when it is a multiple of p.
            step = _fraction(schema["multipleOf"]).numerator
        value = self._pick_int(lowest, highest)
        value = _round_up(value, step)
        if highest is not None and value > highest:
            value = _round_up(lowest, step) if lowest is not None else _round_down(highest, step)
        if (lowest is not None and value < lowest) or (highest is not None and value > highest):
            raise InvalidRequest(
                f"no integer from {lowest} to {highest} is a multiple of {schema['multipleOf']}"
            )
        return value

    def _pick_int(self, lowest: int | None, highest: int | None) -> int:
        if lowest is not None and highest is not None:
            if lowest > highest:
                raise InvalidRequest(f"the schema's minimum {lowest} exceeds its maximum {highest}")
            return self._rng.randint(lowest, min(highest, lowest + 100))
        if lowest is not None:
            return lowest + self._rng.randrange(100)
        if highest is not None:
            return highest - self._rng.randrange(100)
        return self._rng.randint(1, 100)

    def _number(self, schema: Mapping[str, Any]) -> float | int:
        if "multipleOf" in schema:
            return self._multiple(schema)
        low, high = _bounds(schema)
        lo = float(low[0]) if low else (float(high[0]) - 100.0 if high else 0.0)
        hi = float(high[0]) if high else lo + 100.0
        exclusive = bool(low and low[1]) or bool(high and high[1])
        if lo > hi or (lo == hi and exclusive):
            raise InvalidRequest(f"no number lies between the schema's bounds {lo} and {hi}")
        for value in (round(lo + (hi - lo) * self._rng.random(), 2), (lo + hi) / 2, lo, hi):
            if _within(value, low, high):
                return value
        raise InvalidRequest(f"no number lies between the schema's bounds {lo} and {hi}")

    def _multiple(self, schema: Mapping[str, Any]) -> float | int:
        step = schema["multipleOf"]
        if isinstance(step, bool) or not isinstance(step, int | float) or step <= 0:
            raise InvalidRequest(f"multipleOf must be a number above 0, got {step!r:.60}")
        low, high = _bounds(schema)
        first = 1 + self._rng.randrange(10)
        if low is not None:
            first = math.ceil(low[0] / step)
        elif high is not None:
            first = math.floor(high[0] / step)
        for k in (first, first + 1, first - 1, first + 2, first - 2, 0):
            value = k * step
            # Float products like 3 * 0.1 may miss by an ulp; validators divide to check.
            if _within(value, low, high) and _divides(value, step):
                return value
        raise InvalidRequest(f"no multiple of {step} lies within the schema's bounds")


def _merge(left: Mapping[str, Any], right: Mapping[str, Any]) -> dict[str, Any]:
    """Two schemas as one that both constrain (``allOf``), for the keywords that matter here."""
    merged = dict(left)
    for key, value in right.items():
        if key not in merged:
            merged[key] = value
        elif key == "properties" and isinstance(value, Mapping):
            properties = dict(merged[key])
            for name, sub in value.items():
                properties[name] = {"allOf": [properties[name], sub]} if name in properties else sub
            merged[key] = properties
        elif key == "required" and isinstance(value, list):
            merged[key] = list(dict.fromkeys([*merged[key], *value]))
        elif key == "type":
            left_types = {merged[key]} if isinstance(merged[key], str) else set(merged[key])
            right_types = {value} if isinstance(value, str) else set(value)
            both = left_types & right_types
            if not both and {"number", "integer"} <= left_types | right_types:
                both = {"integer"}
            if not both:
                raise InvalidRequest(f"allOf combines types {merged[key]!r} and {value!r}")
            merged[key] = sorted(both) if len(both) > 1 else both.pop()
        elif key == "enum" and isinstance(value, list):
            merged[key] = [option for option in merged[key] if option in value]
        elif key in _MERGED_MINIMA:
            merged[key] = max(merged[key], value)
        elif key in _MERGED_MAXIMA:
            merged[key] = min(merged[key], value)
        elif key in ("anyOf", "oneOf") and isinstance(merged[key], list):
            # Both sides are unions: each left branch must also match one of the right ones.
            merged[key] = [{"allOf": [branch, {key: value}]} for branch in merged[key]]
        else:
            merged[key] = value
    return merged


def _count(schema: Mapping[str, Any], key: str, default: float) -> Any:
    value = schema.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return value


def _bounds(
    schema: Mapping[str, Any],
) -> tuple[tuple[float, bool] | None, tuple[float, bool] | None]:
    """``(lower, upper)`` bounds as ``(value, exclusive)``, reading draft 4's boolean form too."""
    low = high = None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    exclusive_min, exclusive_max = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _is_number(minimum):
        low = (minimum, exclusive_min is True)
    if _is_number(exclusive_min) and (low is None or exclusive_min >= low[0]):
        low = (exclusive_min, True)
    if _is_number(maximum):
        high = (maximum, exclusive_max is True)
    if _is_number(exclusive_max) and (high is None or exclusive_max <= high[0]):
        high = (exclusive_max, True)
    return low, high


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _within(value: float, low: tuple[float, bool] | None, high: tuple[float, bool] | None) -> bool:
    if low is not None and (value < low[0] or (low[1] and value == low[0])):
        return False
    return not (high is not None and (value > high[0] or (high[1] and value == high[0])))


def _divides(value: float, step: float) -> bool:
    quotient = value / step
    return math.isfinite(quotient) and int(quotient) == quotient


def _fraction(value: object) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise InvalidRequest(f"multipleOf must be a number above 0, got {value!r:.60}")
    return Fraction(str(value))


def _lowest_int(bound: float, exclusive: bool) -> int:
    return math.floor(bound) + 1 if exclusive else math.ceil(bound)


def _highest_int(bound: float, exclusive: bool) -> int:
    return math.ceil(bound) - 1 if exclusive else math.floor(bound)


def _round_up(value: int, step: int) -> int:
    return -(-value // step) * step


def _round_down(value: int, step: int) -> int:
    return (value // step) * step
