"""``python -m workbench.cli``: the ``workbench`` console script, for environments without it."""

from workbench.cli import main

main()
