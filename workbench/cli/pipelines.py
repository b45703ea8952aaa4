"""``workbench run FILE`` and ``workbench validate FILE``: YAML pipelines, run or checked.

Owns the commands' options (``--input NAME=VALUE`` parsed as each input's declared type,
``--test-model``, ``--json``), their output and exit codes (0 when the run completed or the file
is valid, 1 when the run failed at a step or the file is invalid, 2 for any other error).
Errors go through the CLI's group as for every other command (one ``error: ...`` line, JSON
under ``--json``); with ``--json`` a failed run or an invalid file prints its JSON answer
instead. Loading and running are ``workbench.pipelines``' work.

``--test-model`` starts workbench's test model server on 127.0.0.1 and points the ``openai``
and ``anthropic`` SDKs at it for the run (``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL`` and test
API keys, restored afterwards), as ``workbench demo`` does: no key, no network.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import orjson

from workbench import _render
from workbench._json import to_jsonable
from workbench.cli._options import (
    CONTEXT,
    CommandError,
    console,
    db_option,
    echo_json,
    json_option,
)
from workbench.exceptions import PipelineError, PipelineStepError
from workbench.pipelines._load import load_pipeline
from workbench.pipelines._model import Pipeline
from workbench.pipelines._runner import run_pipeline
from workbench.redaction import scrub_output, sensitive_names_for
from workbench.store import Store, resolve_store_path
from workbench.types import JSON

__all__ = ["run_command", "test_model_environment", "validate_command"]

#: The test key the SDKs send to the test model server (it accepts any key).
TEST_MODEL_KEY = "sk-workbench-test-model"


@contextlib.contextmanager
def test_model_environment() -> Iterator[Any]:
    """Start the test model server and point the SDKs' environment variables at it."""
    from workbench.testmodel import ModelServer

    with ModelServer() as server:
        wanted = {
            "OPENAI_BASE_URL": server.openai_base_url,
            "ANTHROPIC_BASE_URL": server.anthropic_base_url,
            # Replaces real keys for the run, so they are never sent to the local server.
            "OPENAI_API_KEY": TEST_MODEL_KEY,
            "ANTHROPIC_API_KEY": TEST_MODEL_KEY,
        }
        saved = {name: os.environ.get(name) for name in wanted}
        os.environ.update(wanted)
        try:
            yield server
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def _inputs(spec: Pipeline, pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(
                f"{pair!r} is not NAME=VALUE; write e.g. --input topic=llamas",
                param_hint="'--input'",
            )
        values[name] = spec.parse_input(name, text)
    return values


_input_option = click.option(
    "--input",
    "-i",
    "input_pairs",
    metavar="NAME=VALUE",
    multiple=True,
    help="A pipeline input, read as its declared type (JSON for arrays and objects). Repeatable.",
)


@click.command("run", context_settings=CONTEXT)
@click.argument("pipeline_file", metavar="FILE", type=click.Path(path_type=Path))
@_input_option
@click.option(
    "--test-model",
    is_flag=True,
    help="Answer the llm steps from workbench's test model server on 127.0.0.1 (no API key, "
    "no network), as `workbench demo` does.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    metavar="N",
    default=None,
    help="Run at most N independent steps at once. Default: the file's max_concurrency, else 8.",
)
@click.option("--user", "user_id", metavar="U", default=None, help="Record the run for user U.")
@click.option("--environment", metavar="ENV", default=None, help="Record the run's environment.")
@json_option("Print the run's result as JSON.")
@db_option()
def run_command(
    pipeline_file: Path,
    input_pairs: tuple[str, ...],
    test_model: bool,
    concurrency: int | None,
    user_id: str | None,
    environment: str | None,
    as_json: bool,
    db: Path | None,
) -> None:
    """Run a YAML pipeline and record it as an execution.

    The whole file and the inputs are checked first; nothing runs when they are invalid.
    Prints what was recorded and the outputs; with --json, the execution id, status, outputs,
    cost, tokens and each step's status. Exit code 1 when a step fails (the run is recorded).
    Replay it with `workbench replay ID`.
    """
    spec = load_pipeline(pipeline_file)
    inputs = _inputs(spec, input_pairs)
    spec.check_inputs(inputs)  # before the store and the server: nothing starts for bad input
    with Store(resolve_store_path(db)) as store:
        with test_model_environment() if test_model else contextlib.nullcontext():
            try:
                result = run_pipeline(
                    spec,
                    inputs,
                    store=store,
                    user_id=user_id,
                    environment=environment,
                    max_concurrency=concurrency,
                )
            except PipelineStepError as exc:
                if not as_json or exc.execution_id is None:
                    raise
                execution = store.get_execution(exc.execution_id)
                echo_json(_run_json(execution, None, error=str(exc), step_id=exc.step_id))
                raise click.exceptions.Exit(1) from exc
        execution = store.get_execution(result.execution_id)
    if as_json:
        echo_json(_run_json(execution, result.outputs))
        return
    out = console()
    out.print(
        _render.demo_summary(
            execution,
            [f"workbench runs show {execution.id}", f"workbench replay {execution.id}"],
        )
    )
    out.print("\nOutputs:", style="bold")
    outputs = scrub_output(result.outputs, sensitive_names_for())
    out.print(orjson.dumps(outputs, option=orjson.OPT_INDENT_2).decode(), markup=False)


def _run_json(
    execution: Any, outputs: Any, *, error: str | None = None, step_id: str | None = None
) -> JSON:
    value: dict[str, Any] = {
        "execution_id": execution.id,
        "pipeline_id": execution.pipeline_id,
        "status": execution.status,
        "outputs": outputs,
        "duration_s": execution.duration_s,
        "cost_usd": execution.cost_usd,
        "tokens_in": execution.tokens_in,
        "tokens_out": execution.tokens_out,
        "steps": [
            {
                "step_id": step.step_id,
                "action": step.action,
                "status": step.status,
                "retries": step.retries,
                "duration_s": step.duration_s,
            }
            for step in execution.steps
        ],
    }
    if error is not None:
        value["error"] = error
        value["failed_step"] = step_id
    return to_jsonable(value)


@click.command("validate", context_settings=CONTEXT)
@click.argument("pipeline_file", metavar="FILE", type=click.Path(path_type=Path))
@_input_option
@json_option("Print the result as JSON.")
def validate_command(pipeline_file: Path, input_pairs: tuple[str, ...], as_json: bool) -> None:
    """Check a YAML pipeline without running anything.

    Checks the YAML, keys and types, actions and their parameters, imports, dependencies
    (cycles), templates (syntax and the names they read) and, when given, the inputs. Exit
    code 0 when valid; otherwise 1 and the first problem with its file, line, step and fix.
    """
    try:
        spec = load_pipeline(pipeline_file)
        if input_pairs:
            spec.check_inputs(_inputs(spec, input_pairs))
    except PipelineError as exc:
        if not as_json:  # an invalid file is validate's answer (1), not trouble (2)
            raise CommandError(str(exc), kind=type(exc).__name__, exit_code=1) from exc
        echo_json(
            {
                "valid": False,
                "error": str(exc),
                "source": exc.source,
                "line": exc.line,
                "step_id": exc.step_id,
            }
        )
        raise click.exceptions.Exit(1) from exc
    order = spec.order()
    if as_json:
        echo_json(
            to_jsonable(
                {
                    "valid": True,
                    "pipeline_id": spec.id,
                    "version": spec.version,
                    "source": spec.source,
                    "sha256": spec.sha256,
                    "inputs": {
                        name: {"type": i.type, "required": i.required, "default": i.default}
                        for name, i in spec.inputs.items()
                    },
                    "steps": [
                        {"id": s.id, "action": s.action, "depends_on": list(s.dependencies)}
                        for s in spec.steps
                    ],
                    "order": order,
                }
            )
        )
        return
    click.echo(
        f"{spec.source}: pipeline {spec.id!r}"
        f"{f' version {spec.version}' if spec.version else ''} is valid: {len(order)} step(s), "
        f"run in the order {' → '.join(order)}"
    )
