"""Split-conformal intervals: coverage on a set with known noise (intervals.py)."""
from __future__ import annotations

import numpy as np
import pytest

from insulin_core.intervals import conformal_from_scores, conformal_interval, coverage_of


def test_conformal_covers_the_target_share_on_a_set_with_known_noise():
    rng = np.random.default_rng(0)

    def synthetic(n):
        amount = rng.uniform(2, 12, n)
        p = rng.uniform(0, 1, n)
        dosed = p > 0.5
        noise = rng.normal(0, 1.5, n)  # doses scatter around the prediction with sd 1.5 U
        y = np.where(dosed, np.maximum(np.round(amount + noise), 0), np.where(rng.random(n) < 0.15, np.round(amount), 0))
        return amount, p, y

    amount, p, y = synthetic(4000)
    table = conformal_from_scores(np.where(p > 0.5, amount, 0.0), y, alpha=0.1)
    assert table["groups"]["dose"]["q"] == pytest.approx(1.645 * 1.5, abs=0.5)
    amount, p, y = synthetic(20000)
    dose, low, high = conformal_interval(amount, p, table)
    cov = coverage_of(y, low, high)
    assert 0.87 <= cov["coverage"] <= 0.95
    given = p > 0.5  # Mondrian: the guarantee holds within each group
    assert 0.87 <= coverage_of(y[given], low[given], high[given])["coverage"] <= 0.93
    assert ((low <= dose) & (dose <= high)).all() and (low >= 0).all()

