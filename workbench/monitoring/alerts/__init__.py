"""Alerts: rules exported for Prometheus and evaluated in-process, and the receivers that get them.

The modules are private; the public names are imported from ``workbench.monitoring``.
"""
