"""Tracing: the tracer, OTLP export of recorded traces with GenAI attributes, and JSON logs.

The modules are private; the public names are imported from ``workbench.monitoring``.
"""
