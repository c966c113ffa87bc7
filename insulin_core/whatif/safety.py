"""Safety flags on a predicted dose: inputs outside the training range, a dose-response that is
not monotone in glucose, a dose far above the patient's own history.

Each flag is None when it does not apply. Monotonicity: over the physiological range
(70-400 mg/dL) more glucose must not mean less Regular insulin, within a 1 U tolerance.
`nonmonotone_summary` says how often curves fall; `whatif.nonmonotone_share` draws them with the
engine (it lives there because the engine reads these flags, and imports go one way).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..prep.features import NOW_FEATURES, SEQ_FEATURES
from ..prep.timeline import day_parts
from ..labels import FEATURE_LABELS

SCALED_RANGE = (-0.05, 1.05)
MONOTONE_RANGE = (70.0, 400.0)  # physiological range over which more glucose must not mean less insulin
MONOTONE_POINTS = 34  # 10 mg/dL steps over MONOTONE_RANGE
MONOTONE_TOLERANCE_U = 1.0
MONOTONE_GRID = np.linspace(*MONOTONE_RANGE, MONOTONE_POINTS)
ABOVE_MAX_U = 3.0
ABOVE_MEDIAN_FACTOR = 2.0
UNCERTAIN_MARGIN = 0.1  # |P(dose) - threshold| below this: dose and no dose about equally likely


@dataclass
class SafetyFlag:
    kind: str  # out_of_range | uncertain | non_monotone | flat_zero | above_history
    message: str


def out_of_range_flag(seq_scaled: np.ndarray, now_scaled: np.ndarray, now_features=NOW_FEATURES) -> SafetyFlag | None:
    """Inputs outside what the model saw in training (scaled beyond [-0.05, 1.05])."""
    lo, hi = SCALED_RANGE
    bad_seq = sorted({SEQ_FEATURES[f] for f in np.flatnonzero(((seq_scaled < lo) | (seq_scaled > hi)).any(axis=(0, 1)))})
    bad_now = [now_features[f] for f in np.flatnonzero(((now_scaled < lo) | (now_scaled > hi)).any(axis=0))]
    if not bad_seq and not bad_now:
        return None
    words = [FEATURE_LABELS.get(f, f) for f in bad_now], [FEATURE_LABELS.get(f, f) for f in bad_seq]
    parts = ([f"at this moment: {', '.join(words[0])}"] if bad_now else []) + (
        [f"in the entries before: {', '.join(words[1])}"] if bad_seq else [])
    return SafetyFlag("out_of_range", "Inputs outside the range seen in training (" + "; ".join(parts) + ").")


def non_monotone_drop(glucose: np.ndarray, dose: np.ndarray) -> tuple[float, float, float]:
    """Largest fall of the dose as glucose rises: (drop in U, glucose where it was highest, where it fell)."""
    order = np.argsort(glucose)
    g, d = np.asarray(glucose)[order], np.asarray(dose, float)[order]
    running = np.maximum.accumulate(d)
    at = int(np.argmax(running - d))
    peak = int(np.argmax(d[:at + 1])) if at else 0
    return float(running[at] - d[at]), float(g[peak]), float(g[at])


def non_monotone_flag(glucose: np.ndarray, dose: np.ndarray, tol: float = MONOTONE_TOLERANCE_U) -> SafetyFlag | None:
    drop, g_hi, g_lo = non_monotone_drop(glucose, dose)
    if drop <= tol:
        return None
    return SafetyFlag("non_monotone", f"The dose-response is not monotone: the dose falls by {drop:g} U as "
                      f"glucose rises from {g_hi:.0f} to {g_lo:.0f} mg/dL.")


def uncertain_dose_flag(p_dose: float, threshold: float, margin: float = UNCERTAIN_MARGIN) -> SafetyFlag | None:
    """P(dose) close to the threshold: the model cannot tell a dose from no dose here."""
    if not abs(p_dose - threshold) < margin:
        return None
    return SafetyFlag("uncertain", f"The model cannot tell a dose from no dose here: P(dose) is {p_dose:.2f}, "
                      f"close to its threshold {threshold:.2f}. Either answer is about as likely.")


def flat_zero_flag(glucose: np.ndarray, dose: np.ndarray) -> SafetyFlag | None:
    """No dose at any glucose over the physiological range: the curve says nothing about this moment."""
    if np.any(np.asarray(dose, float) > 0):
        return None
    return SafetyFlag("flat_zero", f"The model suggests no Regular at any glucose from {np.min(glucose):.0f} to "
                      f"{np.max(glucose):.0f} mg/dL here: the curve cannot show how the dose would respond.")


def above_history_flag(dose: float, history_doses: pd.DataFrame, part: str) -> SafetyFlag | None:
    """The dose is far above what this patient has recorded (max + 3 U, or 2x the day-part median).
    `history_doses`: the patient's plausible doses before the moment (timestamp, dose), as
    `WhatIf.history_doses` gives them (decision doses, late-written ones included)."""
    doses = history_doses[history_doses["dose"] > 0]
    if doses.empty or dose <= 0:
        return None
    top = float(doses["dose"].max())
    same = doses.loc[day_parts(doses["timestamp"]) == part, "dose"]
    med = float(same.median()) if len(same) else float("nan")
    reasons = []
    if dose > top + ABOVE_MAX_U:
        reasons.append(f"more than {ABOVE_MAX_U:g} U above the largest dose on record ({top:g} U)")
    if math.isfinite(med) and dose > ABOVE_MEDIAN_FACTOR * med:
        reasons.append(f"over {ABOVE_MEDIAN_FACTOR:g}x their usual {part} dose (median {med:g} U)")
    if not reasons:
        return None
    return SafetyFlag("above_history", f"{dose:g} U is far above this patient's own history: " + "; ".join(reasons) + ".")


def nonmonotone_summary(curves: dict[int, np.ndarray], part: str, tol: float = MONOTONE_TOLERANCE_U) -> dict:
    """How often dose-response curves fall: `curves` maps a patient id to (points, MONOTONE_POINTS)
    doses over MONOTONE_GRID, one curve per decision point. Per patient, the share of their curves
    that fall by more than `tol` U and whether their average curve does; plus the shares overall."""
    rows = []
    for pid, dose in curves.items():
        drops = np.array([non_monotone_drop(MONOTONE_GRID, d)[0] for d in dose])
        mean_drop = non_monotone_drop(MONOTONE_GRID, dose.mean(axis=0))[0]
        rows.append({"patient_id": int(pid), "points": len(dose), "share_non_monotone_points": float((drops > tol).mean()),
                     "mean_curve_drop_u": mean_drop, "non_monotone": bool(mean_drop > tol)})
    table = pd.DataFrame(rows)
    return {"part": part, "tolerance_u": tol, "range_mgdl": list(MONOTONE_RANGE),
            "patients": int(len(table)),
            "share_patients_non_monotone": float(table["non_monotone"].mean()) if len(table) else float("nan"),
            "share_points_non_monotone": float(np.average(table["share_non_monotone_points"], weights=table["points"]))
            if len(table) else float("nan"),
            "per_patient": table}
