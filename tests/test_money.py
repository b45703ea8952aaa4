"""The one money format of every view: significant digits below a dollar, cents above."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workbench._money import REPLAY, spent, usd


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (None, "unknown"),
        (0.0, "$0"),
        (0.0000021, "$0.0000021"),
        (0.000104, "$0.000104"),
        (0.0312, "$0.0312"),
        (0.5, "$0.50"),
        (1.5, "$1.50"),
        (1234.567, "$1,234.57"),
        (-0.000016, "-$0.000016"),
    ],
)
def test_amounts_read_with_significant_digits(amount: float | None, text: str) -> None:
    """A millionth of a dollar reads `$0.0000021`, not `$0.0000` or `$2.1e-06`; unknown is
    not `$0`."""
    assert usd(amount) == text


@given(st.floats(min_value=1e-9, max_value=0.99, allow_nan=False))
def test_a_small_amount_never_reads_as_zero(amount: float) -> None:
    """Every amount above zero shows a non-zero digit, and never in scientific notation."""
    text = usd(amount)
    assert text.startswith("$0.") and "e" not in text
    assert text.strip("$0.,") != ""


def test_a_change_is_signed_and_a_replay_is_free() -> None:
    """`signed` marks an increase with +; a replay reads the same wherever it is shown."""
    assert usd(0.000016, signed=True) == "+$0.000016"
    assert spent(0.000104, replay=True) == REPLAY == "$0 (replay)"
    assert spent(0.000104, replay=False) == "$0.000104"
