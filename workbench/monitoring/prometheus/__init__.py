"""Metrics: the Prometheus registry, built-in and custom metrics, the metrics HTTP server and the
store's metrics.

The modules are private; the public names are imported from ``workbench.monitoring``.
"""
