"""Settings for the whole suite."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# The machines that run this suite are small and shared (2 cores, other jobs beside it): a
# property checks what is true of every example, not how fast one is generated or run, so a
# loaded machine must not fail it by the clock.
settings.register_profile("workbench", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("workbench")
