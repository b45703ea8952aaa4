"""YAML pipelines: a small runner whose every run is a recorded, replayable execution.

>>> import workbench
>>> @workbench.action("search")
... def search(query: str) -> list[str]: ...
>>> result = workbench.run_pipeline("pipeline.yaml", {"topic": "llamas"})
>>> result.outputs, result.execution_id

The format is described in ``workbench.pipelines._model``; ``workbench run FILE`` and
``workbench validate FILE`` are the command line.
"""

from workbench.pipelines._actions import Action, action, registered_actions
from workbench.pipelines._load import load_pipeline
from workbench.pipelines._model import (
    InputSpec,
    MetricSpec,
    Pipeline,
    StepSpec,
)
from workbench.pipelines._runner import (
    PipelineResult,
    arun_pipeline,
    pipeline_entrypoint,
    run_pipeline,
)

__all__ = [
    "Action",
    "InputSpec",
    "MetricSpec",
    "Pipeline",
    "PipelineResult",
    "StepSpec",
    "action",
    "arun_pipeline",
    "load_pipeline",
    "pipeline_entrypoint",
    "registered_actions",
    "run_pipeline",
]
