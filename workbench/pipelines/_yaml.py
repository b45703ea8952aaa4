"""Reading a pipeline file: YAML that remembers the line of every key and list item.

Owns reading the file (missing, unreadable, not UTF-8), parsing it with a ``SafeLoader`` whose
mappings and sequences keep their lines (so every later error can name one), refusing duplicate
keys (PyYAML would silently keep the last), and turning YAML's syntax errors into a
:class:`PipelineError` with the file and line. What the document must hold is ``_load``'s.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import yaml

from workbench.exceptions import PipelineError

__all__ = ["line_of", "parse_file", "plain"]


class _Map(dict[Any, Any]):
    """A YAML mapping that remembers its own line and each key's (1-based)."""

    __slots__ = ("line", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.line: int | None = None
        self.lines: dict[Any, int] = {}


class _Seq(list[Any]):
    """A YAML sequence that remembers each item's line."""

    __slots__ = ("line", "lines")

    def __init__(self) -> None:
        super().__init__()
        self.line: int | None = None
        self.lines: list[int] = []


class _LineLoader(yaml.SafeLoader):  # type: ignore[misc]
    pass


def _construct_map(loader: _LineLoader, node: yaml.MappingNode) -> _Map:
    loader.flatten_mapping(node)
    result = _Map()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if key in result:
            # PyYAML keeps the last of two equal keys silently; in a pipeline it is a mistake.
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"duplicate key {key!r} (first at line {result.lines[key]})",
                key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _construct_seq(loader: _LineLoader, node: yaml.SequenceNode) -> _Seq:
    result = _Seq()
    result.line = node.start_mark.line + 1
    for child in node.value:
        result.append(loader.construct_object(child, deep=True))
        result.lines.append(child.start_mark.line + 1)
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_map)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_seq)


def line_of(container: Any, key: Any = None) -> int | None:
    if isinstance(container, _Map):
        return container.lines.get(key, container.line) if key is not None else container.line
    if isinstance(container, _Seq):
        if isinstance(key, int) and 0 <= key < len(container.lines):
            return container.lines[key]
        return container.line
    return None


def plain(value: Any) -> Any:
    """The value as plain dicts and lists (what is recorded and handed to actions)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def _read(pipeline: str | os.PathLike[str]) -> tuple[str, bytes]:
    path = Path(pipeline)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PipelineError(
            f"no pipeline file at {path} (working directory {Path.cwd()}); check the path",
            source=str(path),
        ) from None
    except OSError as exc:
        raise PipelineError(
            f"the pipeline file {path} cannot be read ({exc.strerror or exc}); check that it is "
            f"a readable file",
            source=str(path),
        ) from exc
    return str(path.resolve()), data


def parse_file(pipeline: str | os.PathLike[str]) -> tuple[str, str, Any]:
    """``(source, sha256, document)`` of a pipeline file; ``source`` is its absolute path."""
    source, data = _read(pipeline)
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PipelineError(
            f"{source}: the pipeline file is not UTF-8 text (byte {exc.start}); save it as UTF-8",
            source=source,
        ) from None
    try:
        document = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(str(part) for part in (exc.context, exc.problem) if part)
        raise PipelineError(
            f"{source}:{line}: invalid YAML: {what}; fix the YAML syntax at line {line} "
            f"(indentation, quotes, a missing ':')",
            source=source,
            line=line,
        ) from None
    except yaml.YAMLError as exc:
        raise PipelineError(
            f"{source}: invalid YAML: {exc}; fix the file's YAML syntax", source=source
        ) from None
    return source, digest, document
