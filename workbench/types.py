"""Shared type aliases and Protocols, so that every module spells them the same way."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

__all__ = [
    "JSON",
    "ExecutionStatus",
    "StepStatus",
]

#: Any value that survives a JSON round trip. Recorded values that are not JSON are rendered
#: to JSON first (dataclasses, pydantic models, sets, bytes, then ``repr``).
JSON: TypeAlias = Any

ExecutionStatus: TypeAlias = Literal["running", "completed", "failed", "interrupted"]
StepStatus: TypeAlias = Literal["running", "completed", "failed", "interrupted"]
