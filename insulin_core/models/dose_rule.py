"""The one rule that turns a predictor's two heads into a dose (darts-style: every predictor, the
network or a baseline, answers with an amount and a P(dose), and this rule makes the dose).

amount where P(dose) > threshold, else 0; the network's doses are rounded half-up to whole units,
as people inject (2.5 U -> 3 U); never negative.
"""
from __future__ import annotations

import numpy as np

DOSE_THRESHOLD = 0.5


def continuous_dose(amount, p_dose, threshold: float | np.ndarray = DOSE_THRESHOLD) -> np.ndarray:
    """The dose before rounding: amount where P(dose) > threshold, else 0."""
    return np.where(np.asarray(p_dose) > threshold, np.asarray(amount, dtype=float), 0.0)


def to_dose(amount, p_dose, threshold: float | np.ndarray = DOSE_THRESHOLD, round_units: bool = True) -> np.ndarray:
    dose = continuous_dose(amount, p_dose, threshold)
    if round_units:
        dose = np.floor(dose + 0.5)
    return np.maximum(dose, 0.0)
