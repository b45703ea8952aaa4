"""Example pipelines instrumented with workbench, importable as ``examples.<name>``.

A package (not loose scripts) so that a recorded entrypoint such as
``examples.research_assistant:research`` can be imported again by replay from the repository root.
"""
