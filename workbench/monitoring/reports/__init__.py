"""Reports: pipeline health, performance (latency, bottlenecks) and resource usage.

The modules are private; the public names are imported from ``workbench.monitoring``.
"""
