"""Split-conformal intervals around the predicted Regular dose, on plain arrays.

Split conformal (Vovk et al. 2005; Lei et al. 2018): the score of a calibration row is
|actual dose - predicted dose (unrounded)|, and the interval is the prediction +- the
ceil((n+1)(1-alpha))-th smallest score. Mondrian by how sure the model is of a dose (P(dose) bands,
P_DOSE_EDGES), so the guarantee holds within each band; a band smaller than MIN_GROUP uses the pooled
quantile. Bands rather than "dose vs no dose": most rows the model is sure get no dose have a score
of exactly 0, so one "no dose" group over-covers, while its borderline rows (P(dose) 0.2-0.5)
are where a dose is missed; calibrating them apart keeps each band honest. Tables written before
the bands (`by` absent) keep the two groups.
Calibrate on the validation part (`conformal_from_part`), check on another (`coverage_of_part`).
"""
from __future__ import annotations

import math

import numpy as np

from ..data.codes import MAX_PLAUSIBLE_DOSE
from .dose_rule import DOSE_THRESHOLD, continuous_dose, to_dose

CONFORMAL_ALPHA = 0.1
MIN_GROUP = 20  # a Mondrian group smaller than this uses the pooled quantile
P_DOSE_EDGES = (0.2, 0.5, 0.8)
P_DOSE_BANDS = ("sure_no_dose", "lean_no_dose", "lean_dose", "sure_dose")


def _group(dose_cont: np.ndarray) -> np.ndarray:
    return np.where(dose_cont > 0, "dose", "no_dose")


def _band(p: np.ndarray) -> np.ndarray:
    return np.asarray(P_DOSE_BANDS)[np.searchsorted(P_DOSE_EDGES, np.asarray(p, float), side="left")]


def _quantile(scores: np.ndarray, alpha: float) -> float:
    """Split-conformal quantile: the ceil((n+1)(1-alpha))-th smallest score (inf when n too small)."""
    n = len(scores)
    k = math.ceil((n + 1) * (1 - alpha))
    return float("inf") if k > n or n == 0 else float(np.sort(scores)[k - 1])


def conformal_from_scores(dose_cont: np.ndarray, y: np.ndarray, p: np.ndarray, alpha: float = CONFORMAL_ALPHA) -> dict:
    """Calibrate on (continuous predicted dose, actual dose, P(dose)): |actual - predicted| per
    P(dose) band."""
    dose_cont, y = np.asarray(dose_cont, float), np.asarray(y, float)
    scores, groups = np.abs(y - dose_cont), _band(p)
    pooled = _quantile(scores, alpha)
    table = {"alpha": alpha, "method": "split conformal, Mondrian by P(dose) band, "
             "score |actual - predicted dose (unrounded)|", "by": "p_dose", "edges": list(P_DOSE_EDGES),
             "n": int(len(y)), "pooled": pooled, "groups": {}}
    for g in P_DOSE_BANDS:
        s = scores[groups == g]
        q = _quantile(s, alpha) if len(s) >= MIN_GROUP else pooled
        table["groups"][g] = {"q": q, "n": int(len(s)), "pooled_fallback": len(s) < MIN_GROUP}
    return table


def zero_width_table(alpha: float = CONFORMAL_ALPHA) -> dict:
    """A table whose intervals have no width (low = high = the dose): for callers that read only
    doses (the monotonicity share's sweeps), so no validation part is predicted to calibrate one."""
    return {"alpha": alpha, "groups": {"dose": {"q": 0.0}, "no_dose": {"q": 0.0}}}


def conformal_interval(amount: np.ndarray, p: np.ndarray, table: dict, threshold: float | np.ndarray = DOSE_THRESHOLD,
                       round_units: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dose, low, high); in whole units (`round_units`) [low, high] holds the same whole doses as
    the continuous conformal interval. Always holds the point dose; never below 0."""
    p = np.asarray(p, float)
    cont = continuous_dose(np.asarray(amount, float), p, threshold)
    q_low, q_high, top_floor = _monotone_widths(table, cont, p, threshold)
    dose = to_dose(amount, p, threshold, round_units)
    high = np.maximum(cont + q_high, top_floor)
    if round_units:
        low, high = np.maximum(np.ceil(cont - q_low - 1e-9), 0.0), np.floor(high + 1e-9)
    else:
        low = np.maximum(cont - q_low, 0.0)
    return dose, np.minimum(low, dose), np.maximum(high, dose)


def _monotone_widths(table: dict, cont: np.ndarray, p: np.ndarray,
                     threshold: float | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(below, above, top floor) per row: each group's conformal quantile, widened just enough
    that the bounds never fall when the dose and P(dose) rise (a What-if sweep over glucose).

    Along such a sweep P(dose) climbs through the bands; the point dose is 0 up to the row's
    threshold and rises above it. Above the dose, a width that shrinks from one band to the next
    would pull the upper bound down: each band takes the largest width of its own and the lower
    bands of its side (no dose, or dose), and a dose's upper bound is never below the no-dose
    side's (the floor). Below a dose, each band takes the largest width of its own and the higher
    bands of the dose side (below no dose the bound is 0 anyway). Every change only widens a band's
    interval, so each keeps at least its calibrated coverage.

    The sides split at the row's own threshold, not at 0.5: a new patient's threshold (or a tuned
    one) puts doses in bands below 0.5 too, where sides fixed at 0.5 let the bounds fall."""
    if table.get("by") != "p_dose":  # a table from before the bands: two groups, by the dose itself
        q = {g: _finite(table["groups"][g]["q"]) for g in ("no_dose", "dose")}
        dosed = _group(cont) == "dose"
        return (np.where(dosed, q["dose"], q["no_dose"]), np.where(dosed, q["dose"], q["no_dose"]),
                np.where(dosed, q["no_dose"], 0.0))
    q = np.array([_finite(table["groups"][g]["q"]) for g in P_DOSE_BANDS])
    band = np.searchsorted(P_DOSE_EDGES, p, side="left")
    thresholds = np.broadcast_to(np.asarray(threshold, float), p.shape)
    below, above, floor = np.zeros(len(p)), np.zeros(len(p)), np.zeros(len(p))
    for t in np.unique(thresholds):
        last_no_dose = np.searchsorted(P_DOSE_EDGES, t, side="left")  # bands a row at or under t can be in
        first_dose = np.searchsorted(P_DOSE_EDGES, t, side="right")  # ...and a row above t
        no_dose_above = np.maximum.accumulate(q[:last_no_dose + 1])
        dose_q = q[first_dose:]
        dose_above, dose_below = np.maximum.accumulate(dose_q), np.maximum.accumulate(dose_q[::-1])[::-1]
        rows = thresholds == t
        no, yes = rows & (p <= t), rows & (p > t)
        above[no], below[no] = no_dose_above[band[no]], q[band[no]]
        above[yes], below[yes] = dose_above[band[yes] - first_dose], dose_below[band[yes] - first_dose]
        floor[yes] = no_dose_above[-1]
    return below, above, floor


def _finite(q: float) -> float:
    """An infinite quantile (too few calibration rows) as the largest plausible dose."""
    return float(q) if math.isfinite(q) else float(MAX_PLAUSIBLE_DOSE["regular"])


def coverage_of(y: np.ndarray, low: np.ndarray, high: np.ndarray) -> dict:
    y = np.asarray(y, float)
    inside = (y >= low) & (y <= high)
    dosed = y > 0
    return {"coverage": float(inside.mean()) if len(y) else float("nan"),
            "coverage_dose_rows": float(inside[dosed].mean()) if dosed.any() else float("nan"),
            "coverage_no_dose_rows": float(inside[~dosed].mean()) if (~dosed).any() else float("nan"),
            "mean_width_u": float(np.mean(high - low)) if len(y) else float("nan"), "n": int(len(y))}
