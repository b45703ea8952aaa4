"""The one percentile every report, alert and test summary uses."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench._stats import percentile

finite = st.floats(0, 1e6, allow_nan=False)


@given(values=st.lists(finite, min_size=1, max_size=50), q=st.floats(0, 1))
def test_a_percentile_lies_between_min_and_max_and_grows_with_q(
    values: list[float], q: float
) -> None:
    """A percentile is within the data's range, the 0th is the min, the 100th the max, and a
    higher q never gives a lower value."""
    value = percentile(values, q)
    assert min(values) <= value <= max(values)
    assert percentile(values, 0) == min(values) and percentile(values, 1) == max(values)
    assert percentile(values, min(1.0, q + 0.01)) >= value - 1e-9


def test_a_percentile_interpolates_between_closest_ranks() -> None:
    """numpy's default: p50 of an even count is halfway between the middle two; one value is
    every percentile; no values give 0.0; any iterable will do."""
    assert percentile([4, 1, 3, 2], 0.5) == pytest.approx(2.5)
    assert percentile([0.0, 10.0], 0.95) == pytest.approx(9.5)
    assert percentile([5.0], 0.99) == 5.0
    assert percentile([], 0.5) == 0.0
    assert percentile(iter([1.0, 2.0, 3.0]), 0.5) == 2.0


def test_reports_alerts_health_and_summaries_share_it() -> None:
    """Every module that quantiles durations uses this function, not a copy of it."""
    from workbench.monitoring.alerts import _alerts
    from workbench.monitoring.reports import _performance
    from workbench.testing import _summary

    assert _alerts.percentile is _performance.percentile is _summary.percentile is percentile
