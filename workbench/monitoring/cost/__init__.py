"""Cost: budgets checked before each model call and cost reports.

The modules are private; the public names are imported from ``workbench.monitoring``.
"""
