"""Nothing: the profiling markers live in :mod:`workbench._pytest_profiling`, loaded by the one
``workbench`` pytest11 entry point.

This module stays so that an environment installed before there was one entry point (whose
metadata still names ``workbench_profiling`` = this module) starts pytest until it is reinstalled;
it registers no hook, so the markers are never wired twice.
"""
