"""Profilers that switch themselves on when an execution goes wrong.

Configure triggers in workbench.yaml's ``profiling`` section::

    profiling:
      enabled: true
      types: [cpu, memory, async_io]
      triggers:
        - condition: "execution_time > 60"
          profile_duration: 30
        - condition: "memory_usage > 1GB"
          profile_type: memory
          heap_dump: true

A watchdog thread checks them while executions run; when one holds, it starts py-spy (CPU),
memray (heap) or yappi (async I/O, wall clock) and leaves a :class:`~workbench.Profile` linked
to the execution: ``store.get_execution(id).profiles[0].summary.top_functions``. From Python,
:class:`profile_executions` profiles the executions of one block; from the shell,
``workbench profile -- python script.py`` and ``workbench profile show PROFILE_ID``.
"""

from workbench._conditions import (
    Condition,
    Observation,
    ProfileKind,
    Trigger,
    parse_condition,
    parse_size,
)
from workbench.config import ProfilingConfig, ProfilingTriggerConfig
from workbench.exceptions import ProfilerError
from workbench.profiling._session import profile_executions
from workbench.records import AllocationStack, FunctionStat, Profile, ProfileSummary

__all__ = [
    "AllocationStack",
    "Condition",
    "FunctionStat",
    "Observation",
    "Profile",
    "ProfileKind",
    "ProfileSummary",
    "ProfilerError",
    "ProfilingConfig",
    "ProfilingTriggerConfig",
    "Trigger",
    "parse_condition",
    "parse_size",
    "profile_executions",
]
