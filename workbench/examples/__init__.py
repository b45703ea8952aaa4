"""The example pipelines, shipped inside the package so ``workbench demo`` runs from any install.

``research_assistant`` is the Python pipeline the demo records; ``research_assistant.yaml`` is
its YAML twin, whose two Python actions are ``research_actions``. A package (not loose scripts)
so that a recorded entrypoint such as ``workbench.examples.research_assistant:research`` imports
again wherever replay runs. The repository's ``examples/`` folder points here.
"""
