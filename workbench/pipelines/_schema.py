"""The shape of a pipeline document, as pydantic models (as ``workbench.yaml``'s are).

Owns which keys a pipeline, an input, a step and its ``monitoring`` may hold, their types and
bounds, the step ids (identifiers, each used once), and turning pydantic's first error into a
:class:`PipelineError` naming the file, the line (found by walking the YAML document along the
error's location), the step, what was allowed and the fix. What the values *mean* — actions and
their parameters, imports, templates, dependencies and cycles — is ``_load``'s, which reads
these models.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Mapping
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from workbench.exceptions import ConfigError, PipelineError
from workbench.monitoring.prometheus._custom import CustomMetric
from workbench.pipelines._model import (
    DEFAULT_MAX_CONCURRENCY,
    INPUT_TYPES,
    suggest,
    type_problem,
)
from workbench.pipelines._yaml import line_of, plain

__all__ = ["PipelineDocument", "StepDocument", "kind_of", "validate_document"]

#: The error type our validators raise; its ``message`` is the whole explanation, ``at`` a
#: location below the one pydantic reports (for the line), ``step`` the step concerned.
_OURS = "pipeline"
_NOT_A_MAPPING = "not_a_mapping"

#: The most characters of a bad value an error message quotes.
_QUOTED = 60


def kind_of(value: Any, *, quote: bool = True) -> str:
    """A bad value in a message: its kind, and (unless ``quote`` is false) its start."""
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str) and not quote:
        return "plain text"
    if not quote:
        return f"a {type(value).__name__}"
    shown = repr(value)
    if len(shown) > _QUOTED:
        shown = shown[: _QUOTED - 3] + "..."
    return f"{type(value).__name__} {shown}"


def _problem(message: str, **context: Any) -> PydanticCustomError:
    # The message goes in as context, not as the template: a quoted value may hold braces.
    return PydanticCustomError(_OURS, "{message}", {"message": message, **context})


def _explained(
    what: str, *, got: Callable[[Any], str] = repr, fix: str | None = None
) -> WrapValidator:
    """Pydantic's own check of a value, with this project's words when it fails."""

    def check(value: Any, handler: Callable[[Any], Any]) -> Any:
        try:
            return handler(value)
        except ValidationError:
            raise _problem(f"{what}, got {got(value)}" + (f"; {fix}" if fix else "")) from None

    return WrapValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("blank")
    return value


def _as_list(value: Any) -> Any:
    """One name may be written without brackets; nothing is an empty list."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else value


#: An optional free text (a description).
_Text = Annotated[StrictStr | None, _explained("description must be text", got=kind_of)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)


class InputDocument(_Part):
    """One entry under ``inputs:`` (``name: string`` is ``name: {type: string}``)."""

    type: str = "any"
    required: Annotated[StrictBool, _explained("required must be true or false")] = False
    default: Any = None
    description: _Text = None

    @field_validator("type", mode="plain")
    @classmethod
    def _known_type(cls, kind: Any) -> str:
        if not isinstance(kind, str) or kind not in INPUT_TYPES:
            raise _problem(
                f"unknown type {kind!r}{suggest(str(kind), INPUT_TYPES)}; the types are: "
                f"{', '.join(INPUT_TYPES)}"
            )
        return kind

    @model_validator(mode="after")
    def _default_of_its_type(self) -> InputDocument:
        if self.has_default and self.default is not None:
            problem = type_problem(self.default, self.type)
            if problem:
                raise _problem(
                    f"the default must be {problem}, got {self.default!r}", at=("default",)
                )
        return self

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


def _input_name(name: Any) -> str:
    if not isinstance(name, str) or not name.isidentifier():
        raise _problem(
            f"input name {name!r} is not an identifier; templates read it as inputs.NAME, so "
            f"use letters, digits and _"
        )
    return name


def _custom_metric(declaration: Any) -> CustomMetric:
    if not isinstance(declaration, Mapping):
        raise PydanticCustomError(_NOT_A_MAPPING, "{kind}", {"kind": kind_of(declaration)})
    try:
        # The parser of Python's @step(metrics=[...]) declarations: one set of rules.
        return CustomMetric.parse(plain(declaration))
    except ConfigError as exc:
        raise _problem(str(exc)) from None


class MonitoringDocument(_Part):
    """A step's ``monitoring:``."""

    custom_metrics: list[Annotated[CustomMetric, PlainValidator(_custom_metric)]] = Field(
        default_factory=list
    )

    @field_validator("custom_metrics", mode="before")
    @classmethod
    def _a_list(cls, value: Any) -> Any:
        value = value or []
        if not isinstance(value, list):
            raise _problem(f"custom_metrics must be a list of metrics, got {kind_of(value)}")
        return value


_Seconds = StrictInt | StrictFloat


class StepDocument(_Part):
    """One item of ``steps:``; its parameters are still templates."""

    id: str
    action: Annotated[
        StrictStr,
        Field(min_length=1),
        _explained("the step needs an action (a registered action's name, or llm, http, python)"),
    ] = Field(default=None, validate_default=True)
    description: _Text = None
    parameters: dict[Any, Any] = Field(default_factory=dict)
    depends_on: Annotated[list[StrictStr], _explained("depends_on must be a list of step ids")] = (
        Field(default_factory=list)
    )
    retries: Annotated[
        StrictInt,
        Field(ge=0),
        _explained("retries must be a whole number >= 0 (attempts after a failure)"),
    ] = 0
    backoff: Annotated[
        _Seconds | None, Field(ge=0), _explained("backoff must be a number of seconds >= 0")
    ] = None
    timeout: Annotated[
        _Seconds | None, Field(gt=0), _explained("timeout must be a number of seconds > 0")
    ] = None
    monitoring: MonitoringDocument | None = None

    @field_validator("parameters", mode="before")
    @classmethod
    def _no_parameters(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("depends_on", mode="before")
    @classmethod
    def _one_or_more(cls, value: Any) -> Any:
        return _as_list(value)


class PipelineDocument(_Part):
    """A whole pipeline file (see ``_model`` for the format)."""

    id: Annotated[
        StrictStr,
        AfterValidator(_not_blank),
        _explained(
            "the pipeline needs an id (a non-empty string naming it in the store)",
            fix="add e.g. 'id: research_assistant'",
        ),
    ] = Field(default=None, validate_default=True)
    version: Annotated[
        StrictStr | StrictBool | StrictInt | StrictFloat | None,
        _explained('version must be a string like "1.0"', got=kind_of),
    ] = None
    description: _Text = None
    imports: Annotated[
        list[Annotated[StrictStr, Field(min_length=1)]],
        _explained("imports must be a list of module names, like [my_project.actions]"),
    ] = Field(default_factory=list)
    max_concurrency: Annotated[
        StrictInt,
        Field(ge=1),
        _explained("max_concurrency must be a whole number >= 1 (steps running at once)"),
    ] = DEFAULT_MAX_CONCURRENCY
    inputs: dict[Annotated[Any, PlainValidator(_input_name)], InputDocument] = Field(
        default_factory=dict
    )
    steps: list[StepDocument] = Field(default=None, validate_default=True)
    outputs: Any = None

    @field_validator("imports", mode="before")
    @classmethod
    def _one_import_or_more(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("inputs", mode="before")
    @classmethod
    def _short_forms(cls, value: Any) -> Any:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            return value  # pydantic's "not a mapping", in our words by the translation
        return {
            name: {"type": spec} if isinstance(spec, str) else {} if spec is None else spec
            for name, spec in value.items()
        }

    @field_validator("steps", mode="before")
    @classmethod
    def _step_ids(cls, value: Any) -> Any:
        """Every step's id, before any step: the other checks name the step by it."""
        if not isinstance(value, list) or not value:
            raise _problem(
                f"steps must be a non-empty list of steps (each '- id: ... action: ...'), got "
                f"{kind_of(value)}"
            )
        seen: dict[str, int | None] = {}
        for index, item in enumerate(value):
            if not isinstance(item, Mapping):
                raise PydanticCustomError(
                    _NOT_A_MAPPING, "{kind}", {"kind": kind_of(item), "at": (index,)}
                )
            step_id = item.get("id")
            if (
                not isinstance(step_id, str)
                or not step_id.isidentifier()
                or keyword.iskeyword(step_id)
            ):
                raise _problem(
                    f"step #{index + 1} needs an id that is a Python identifier (letters, "
                    f"digits and _; templates read it as steps.ID), got {step_id!r}",
                    at=(index, "id"),
                )
            if step_id in seen:
                raise _problem(
                    f"step id {step_id!r} is used twice (first at line {seen[step_id]}); give "
                    f"each step its own id",
                    at=(index, "id"),
                    step=step_id,
                )
            seen[step_id] = line_of(item, "id")
        return value


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model of the mapping at ``loc`` (for the keys an unknown key's message lists)."""
    if not loc:
        return PipelineDocument
    if len(loc) == 2:
        return {"inputs": InputDocument, "steps": StepDocument}.get(loc[0])
    if len(loc) == 3 and loc[0] == "steps" and loc[2] == "monitoring":
        return MonitoringDocument
    return None


def validate_document(document: Mapping[str, Any], source: str) -> PipelineDocument:
    """The document checked against the models; the first problem is a :class:`PipelineError`."""
    try:
        return PipelineDocument.model_validate(document)
    except ValidationError as exc:
        raise _translate(exc, document, source) from None


def _translate(exc: ValidationError, document: Mapping[str, Any], source: str) -> PipelineError:
    error = _first(exc.errors())
    context = error.get("ctx") or {}
    loc = (*error["loc"], *context.get("at", ()))
    line = _line(document, loc)
    kind = error["type"]
    step, subject = _subject(document, loc, context, unknown_key=kind == "extra_forbidden")
    if kind == _OURS:
        message = context["message"]
    elif kind == "extra_forbidden":
        key = loc[-1]
        model = _model_at(loc[:-1])
        allowed = list(model.model_fields) if model is not None else []
        message = (
            f"unknown key {key!r} in {_noun(document, loc[:-1])}{suggest(str(key), allowed)}; "
            f"the keys allowed are: {', '.join(allowed)}"
        )
    elif kind in (_NOT_A_MAPPING, "dict_type", "model_type", "model_attributes_type"):
        shown = context["kind"] if kind == _NOT_A_MAPPING else kind_of(error.get("input"))
        message = f"{_noun(document, loc)} must be a mapping (key: value lines), got {shown}"
    else:  # a check without words of our own yet: pydantic's, with the key
        message = f"{'.'.join(map(str, loc))}: {error['msg']}, got {kind_of(error.get('input'))}"
    where = f"{source}:{line}" if line is not None else source
    return PipelineError(f"{where}: {subject}{message}", source=source, line=line, step_id=step)


def _first(errors: list[Any]) -> Any:
    """The error to report: the top level's before any step's or input's, and in one mapping
    its unknown keys first (a misspelt key explains the missing one)."""

    def rank(indexed: tuple[int, Any]) -> tuple[int, int, bool, int]:
        order, error = indexed
        loc = error["loc"]
        extra = error["type"] == "extra_forbidden"
        nested = len(loc[:-1] if extra else loc) > 1
        group = next(i for i, e in enumerate(errors) if e["loc"][:2] == loc[:2]) if nested else 0
        return (nested, group, not extra, order)

    return min(enumerate(errors), key=rank)[1]


def _line(document: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest part of ``loc`` the YAML document has (None for a mapping)."""
    line = line_of(document)
    node = document
    for part in loc:
        present = (
            part in node
            if isinstance(node, Mapping)
            else isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if not present:
            break
        line = line_of(node, part) or line
        node = node[part]
    return line


def _subject(
    document: Mapping[str, Any],
    loc: tuple[Any, ...],
    context: Mapping[str, Any],
    *,
    unknown_key: bool,
) -> tuple[str | None, str]:
    """The step concerned (for :attr:`PipelineError.step_id`) and the message's prefix."""
    step = context.get("step")
    if step is None and len(loc) >= 3 and loc[0] == "steps" and loc[2] != "id":
        step = document["steps"][loc[1]].get("id")
    if step is not None:
        return step, f"step {step!r}: "
    if len(loc) >= 3 and loc[0] == "inputs" and loc[2] != "[key]" and not unknown_key:
        return None, f"input {loc[1]!r}: "
    return None, ""


def _noun(document: Mapping[str, Any], loc: tuple[Any, ...]) -> str:
    """What the mapping at ``loc`` is called in a message."""
    if not loc:
        return "the pipeline"
    last = loc[-1]
    parent = loc[-2] if len(loc) > 1 else None
    if parent == "steps":
        item = document["steps"][last]
        step_id = item.get("id") if isinstance(item, Mapping) else None
        return f"step {step_id!r}" if step_id is not None else f"step #{last + 1}"
    if parent == "custom_metrics":
        return f"custom metric #{last + 1}"
    if parent == "inputs":
        return f"input {last!r}"
    return str(last)
