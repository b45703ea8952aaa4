"""The repository's examples: pointers to the ones the package ships, :mod:`workbench.examples`.

The example pipelines live in ``workbench/examples/`` so that ``workbench demo`` runs from an
installed wheel; nothing here is a copy. ``research_assistant.yaml`` is a symbolic link to the
packaged file, so ``workbench run examples/research_assistant.yaml`` works from the repository
root, and ``examples.research_assistant`` is the packaged module under its older name.
"""
