"""``workbench replay ID``: re-run a recorded execution, model calls answered from the recording.

Owns the command's options — ``--modify KEY=VALUE`` and ``--input NAME=VALUE`` turned into the
replay's modifications (:func:`replay_modifications`), ``--from-step``, ``--on-miss`` — and its
output; the replay itself is :class:`workbench.debugging.RequestReplay`'s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import orjson

from workbench import _render
from workbench._json import to_jsonable
from workbench.cli._options import (
    CONTEXT,
    console,
    db_option,
    echo_json,
    execution_ids,
    json_option,
    open_existing,
)
from workbench.exceptions import ConfigError
from workbench.types import JSON

__all__ = ["replay_command", "replay_modifications"]


def _json_or_text(text: str) -> Any:
    """A value that parses as JSON is JSON (``true``, ``{"topic": "x"}``), else the text."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def _pairs(option: str, items: tuple[str, ...], form: str, example: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{option} {item!r} is not {form}; write e.g. {option} {example}")
        pairs.append((key, text))
    return pairs


def replay_modifications(
    modify: tuple[str, ...], inputs: tuple[str, ...], recorded: JSON = None
) -> dict[str, Any]:
    """The modifications of ``workbench replay`` from its ``--modify KEY=VALUE`` and
    ``--input NAME=VALUE`` options.

    A dotted key sets one entry of a mapping modification: ``inputs.topic=alpacas`` is
    ``{"inputs": {"topic": "alpacas"}}``, merged with ``--input topic=alpacas`` and with an
    ``inputs='{...}'`` given whole. A key that is neither a modification nor dotted is refused
    with the allowed keys and, since it is most often meant as one, the spelling of an input.
    A value is JSON when it parses as JSON, else text — but an input whose ``recorded`` value
    (the execution's inputs) is text stays text, so ``--input topic=2024`` is ``"2024"``.
    """
    from workbench.replay._engine import MODIFICATIONS

    def input_value(name: str, text: str) -> Any:
        was = recorded.get(name) if isinstance(recorded, dict) else None
        return text if isinstance(was, str) else _json_or_text(text)

    mapping = sorted(k for k, types in MODIFICATIONS.items() if types == (dict,))
    modifications: dict[str, Any] = {}
    for key, text in _pairs("--modify", modify, "KEY=VALUE", "realtime=true"):
        name, dot, entry = key.partition(".")
        value = input_value(entry, text) if name == "inputs" and dot else _json_or_text(text)
        if name not in MODIFICATIONS:
            raise ConfigError(
                f"--modify {key}=... names no replay modification: the allowed ones are "
                f"{', '.join(sorted(MODIFICATIONS))} (dotted for one entry of "
                f"{', '.join(mapping)}); to change the run's input {key!r}, write "
                f"--input {key}={text} or --modify inputs.{key}={text}"
            )
        if not dot:
            if isinstance(modifications.get(name), dict) and isinstance(value, dict):
                value = {**value, **modifications[name]}  # dotted entries given earlier win
            modifications[name] = value
            continue
        if name not in mapping or not entry:
            raise ConfigError(
                f"--modify {key}=...: only {', '.join(mapping)} take a dotted entry "
                f"(e.g. --modify inputs.topic=alpacas); write --modify {name}=VALUE"
            )
        current = modifications.setdefault(name, {})
        if not isinstance(current, dict):
            raise ConfigError(f"--modify {key}=... contradicts --modify {name}={current!r}")
        current[entry] = value
    for name, text in _pairs("--input", inputs, "NAME=VALUE", "topic=alpacas"):
        value = input_value(name, text)
        modifications.setdefault("inputs", {})
        if not isinstance(modifications["inputs"], dict):
            raise ConfigError(
                f"--input {name}=... contradicts --modify inputs={modifications['inputs']!r}; "
                f"give the inputs one way"
            )
        modifications["inputs"][name] = value
    return modifications


@click.command("replay", context_settings=CONTEXT)
@click.argument("execution_id", metavar="ID", shell_complete=execution_ids)
@click.option(
    "--modify",
    "modify",
    metavar="KEY=VALUE",
    multiple=True,
    help="Change the replay: realtime=true, log_level=DEBUG, use_test_models=true, "
    "inputs.topic=x, step_outputs.critique=ok (a dotted KEY sets one entry; "
    'inputs=\'{"topic": "x"}\' sets them whole). Repeatable; a VALUE that parses as JSON is '
    "JSON, else text.",
)
@click.option(
    "--input",
    "inputs",
    metavar="NAME=VALUE",
    multiple=True,
    help="Run with input NAME set to VALUE instead of the recorded one, as `workbench run "
    "--input`: a parameter of the recorded entrypoint, or an input of a YAML pipeline. "
    "Repeatable; an input recorded as text stays text, any other VALUE that parses as JSON "
    "is JSON.",
)
@click.option(
    "--from-step",
    metavar="S",
    default=None,
    help="Steps that completed before step S first started return their recorded results "
    "without running; execution continues live from S (the from_step modification).",
)
@click.option(
    "--on-miss",
    type=click.Choice(["error", "live", "test-model"]),
    default="error",
    show_default=True,
    help="What a request without a recorded answer gets: fail the replay, send it for real, "
    "or answer it from the built-in test model.",
)
@json_option()
@db_option()
def replay_command(
    execution_id: str,
    modify: tuple[str, ...],
    inputs: tuple[str, ...],
    from_step: str | None,
    on_miss: str,
    as_json: bool,
    db: Path | None,
) -> None:
    """Re-run a recorded execution with its model calls answered from the recording.

    Imports the recorded @workbench.pipeline entrypoint, calls it with the recorded arguments
    (or those --input changes), and records the replay as a new execution (its replay_of is
    ID). No network is used unless --on-miss live. Prints the replayed execution; with --json,
    its id, status, output, mismatches and unused recorded calls.
    """
    from workbench.debugging import RequestReplay

    with open_existing(db) as store:
        recorded: JSON = None
        if inputs or any(key.startswith("inputs.") for key in modify):
            # The recorded inputs type the new ones: text stays text (topic=2024).
            recorded = store.get_execution(execution_id, model_calls=False).inputs
        modifications = replay_modifications(modify, inputs, recorded)
        if from_step is not None:
            if modifications.get("from_step", from_step) != from_step:
                raise click.BadParameter(
                    f"--from-step {from_step} contradicts --modify "
                    f"from_step={modifications['from_step']}; give the step once",
                    param_hint="'--from-step'",
                )
            modifications = {**modifications, "from_step": from_step}
        result = RequestReplay(store).replay_execution(
            execution_id, modifications=modifications, on_miss=on_miss
        )
        replayed = store.get_execution(result.execution_id)
    if as_json:
        echo_json(
            to_jsonable(
                {
                    "execution_id": result.execution_id,
                    "replay_of": result.replay_of,
                    "status": result.status,
                    "output": result.output,
                    "error": result.error,
                    "model_calls": [call.id for call in replayed.model_calls],
                    "mismatches": result.mismatches,
                    "unused": [call.id for call in result.unused],
                }
            )
        )
        return
    out = console()
    out.print(_render.execution_view(replayed))
    for mismatch in result.mismatches:
        out.print(mismatch.describe(), markup=False)
    unused = ", ".join(f"{c.step_id}: {c.model}" for c in result.unused) or "none"
    out.print(f"Replay of {result.replay_of}; unused recorded calls: {unused}", markup=False)
