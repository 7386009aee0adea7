"""policies.calibration: reliability table, ECE and log-loss, by hand and as properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from policies.calibration import calibration


def test_by_hand() -> None:
    pairs = [({"w": 0.8, "a": 0.2}, "w"), ({"w": 0.8, "a": 0.2}, "a")]
    c = calibration(pairs)
    assert c.predictions == 2 and c.forecasts == 4
    assert c.log_loss == pytest.approx(-(math.log(0.8) + math.log(0.2)) / 2)
    # Bins [0.2, 0.3): two forecasts of 0.2, one came true; [0.8, 0.9): two of 0.8, one true.
    assert [(b.low, b.count, b.realised) for b in c.table] == [(0.2, 2, 0.5), (0.8, 2, 0.5)]
    assert c.ece == pytest.approx(0.5 * 0.3 + 0.5 * 0.3)
    assert c.top_ece == pytest.approx(0.3) and c.top_accuracy == 0.5
    assert [(b.low, b.count) for b in c.top_table] == [(0.8, 2)]


def test_a_calibrated_forecaster_has_small_ece() -> None:
    # 0.7 / 0.3 forecasts realised exactly 7 and 3 times in 10.
    pairs = [({"w": 0.7, "a": 0.3}, "w")] * 7 + [({"w": 0.7, "a": 0.3}, "a")] * 3
    assert calibration(pairs).ece == pytest.approx(0.0, abs=1e-12)


def test_missing_action_costs_the_floor_and_empty_input_is_zero() -> None:
    c = calibration([({"w": 1.0}, "a")], eps=1e-6)
    assert c.log_loss == pytest.approx(-math.log(1e-6))
    empty = calibration([])
    assert (empty.predictions, empty.ece, empty.log_loss, empty.table) == (0, 0.0, 0.0, ())
    with pytest.raises(ValueError, match="bins"):
        calibration([], bins=0)


def test_a_bins_mean_stays_in_the_bin_despite_float_sums() -> None:
    # sum([0.7] * 3) / 3 is 0.6999999999999998: below the bin [0.7, 0.8) it was counted in.
    c = calibration([({"w": 0.7}, "w")] * 3, bins=10)
    assert [(b.low, b.mean_predicted) for b in c.table] == [(0.7, 0.7)]


@given(
    st.lists(
        st.tuples(
            st.dictionaries(st.sampled_from("wasd"), st.floats(0, 1), min_size=1),
            st.sampled_from("wasdq"),
        ),
        max_size=30,
    ),
    st.integers(1, 20),
)
def test_bounds(pairs: list[tuple[dict[str, float], str]], bins: int) -> None:
    c = calibration(pairs, bins=bins)
    assert 0.0 <= c.ece <= 1.0 and 0.0 <= c.top_ece <= 1.0
    assert c.log_loss >= 0.0 and 0.0 <= c.top_accuracy <= 1.0
    assert sum(b.count for b in c.table) == c.forecasts
    assert all(0.0 <= b.realised <= 1.0 and b.low <= b.mean_predicted <= b.high for b in c.table)
