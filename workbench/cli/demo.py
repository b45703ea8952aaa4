"""``workbench demo``: record the example research assistant against the local test model server.

Runs the example pipeline shipped in the package, :mod:`workbench.examples.research_assistant`,
so it works from any install and any folder, and the recorded entrypoint
``workbench.examples.research_assistant:research`` imports again wherever replay runs. The
repository's ``examples/`` folder points at the same files.
"""

from __future__ import annotations

import contextlib
import importlib
import shlex
from pathlib import Path
from types import ModuleType

import click

import workbench
from workbench import _render
from workbench.cli._options import CONTEXT, CommandError, console, db_option, echo_json, json_option
from workbench.exceptions import WorkbenchError
from workbench.store import Store, resolve_store_path

__all__ = ["demo_command"]

_EXAMPLE = "workbench.examples.research_assistant"


@click.command("demo", context_settings=CONTEXT)
@click.option(
    "--topic",
    default=None,
    help="What the research assistant researches. Default: the example's DEFAULT_TOPIC.",
)
@json_option()
@db_option()
def demo_command(topic: str | None, as_json: bool, db: Path | None) -> None:
    """Record the example research assistant against a local model server.

    Starts workbench's test model server on 127.0.0.1 (OpenAI and Anthropic APIs, deterministic
    answers), runs the example in workbench.examples through the real openai and anthropic SDKs,
    records it into the store, and prints the execution id. Needs no API key and no network.
    With --json, prints the recorded execution as `runs show ID --json` does.
    """
    try:
        import anthropic
        import openai
    except ImportError as exc:
        raise WorkbenchError(
            f"workbench demo runs the real openai and anthropic SDKs, and {exc.name} is not "
            f"installed (the base install leaves them out); install them with `pip install "
            f"'pipeline-workbench[demo]'`"
        ) from exc

    from workbench.testmodel import ModelServer

    example = _load_example()
    path = resolve_store_path(db)
    out = console()
    with Store(path) as store:
        status = out.status("Recording the research assistant…")
        with ModelServer() as server, status if not as_json else contextlib.nullcontext():
            try:
                with workbench.record(
                    example.PIPELINE_ID,
                    inputs={},  # @workbench.pipeline fills in the entrypoint's arguments
                    store=store,
                    user_id="demo",
                    environment="demo",
                    pipeline_version=example.PIPELINE_VERSION,
                ) as run:
                    example.research(
                        topic or example.DEFAULT_TOPIC,
                        openai_base_url=server.openai_base_url,
                        anthropic_base_url=server.anthropic_base_url,
                    )
            except (openai.OpenAIError, anthropic.AnthropicError) as exc:
                raise CommandError(
                    f"the demo run failed ({type(exc).__name__}: {exc}); it is recorded, "
                    f"see `workbench runs show {run.id}`"
                ) from exc
        execution = store.get_execution(run.id)
    if as_json:
        echo_json(_render.execution_json(execution))
        return
    suffix = "" if db is None else f" --db {shlex.quote(str(db))}"
    out.print(
        _render.demo_summary(
            execution,
            [f"workbench runs show {execution.id}{suffix}", f"workbench runs list{suffix}"],
        )
    )


def _load_example() -> ModuleType:
    """The example pipeline, imported only when the demo runs (it imports both SDKs)."""
    return importlib.import_module(_EXAMPLE)
