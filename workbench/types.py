"""Shared type aliases and Protocols, so that every module spells them the same way."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeAlias

__all__ = [
    "JSON",
    "ExecutionStatus",
    "JSONObject",
    "Redactor",
    "StepStatus",
]

#: Any value that survives a JSON round trip. Recorded values that are not JSON are rendered
#: to JSON first (dataclasses, pydantic models, sets, bytes, then ``repr``).
JSON: TypeAlias = Any
JSONObject: TypeAlias = dict[str, Any]

ExecutionStatus: TypeAlias = Literal["running", "completed", "failed", "interrupted"]
StepStatus: TypeAlias = Literal["running", "completed", "failed", "interrupted"]

#: A redactor takes a JSON object and returns it with secrets replaced.
Redactor: TypeAlias = Callable[[Mapping[str, Any]], dict[str, Any]]
