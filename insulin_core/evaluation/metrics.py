"""Dose metrics: MAE, RMSE, R² and the share within ±1 U, on all rows and on dose occasions.

One registry of `Metric`s (name, label, function, direction) fixes the contract; `dose_metrics`
is the one function callers use. "Dose occasions" are the rows where a Regular dose was given
(`y_true > 0`): most decision moments have no dose, so the all-rows numbers reward predicting 0
and the dose-occasion numbers say how well the amount is judged when it matters. The two errors a
hard 0/dose answer can make are counted beside them: `missed` (a dose was written, the answer is no
dose) and `unwanted` (no dose was written, the answer is one). MAE on dose occasions sees only the
first, so a predictor that doses more often looks better there while giving more unwanted insulin;
the counts show that trade (issue 17: on unseen patients the two-stage gradient boosting's lower
dose-occasion MAE came with a fifth to a third more unwanted doses than the model's seeds, 180
against 135-150, docs/results.md).

Conventions: an empty selection gives NaN (n = 0); R² is NaN when it is undefined (fewer than 2
rows, or a constant truth), rather than scikit-learn's forced 0/1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

# |error| <= 1 U counts as "within 1 U"; a hair of tolerance so float32 doses (2.1 - 1.1) count.
WITHIN_UNITS = 1.0
_TOL = 1e-6
# An answer below half a unit is "no dose": no pen or syringe gives less, and regression baselines
# answer fractions of a unit where they mean none.
DOSE_GIVEN_U = 0.5


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    fn: Callable[[np.ndarray, np.ndarray], float]  # (y_true, y_pred) of validated float arrays
    higher_is_better: bool

    def __call__(self, y_true, y_pred) -> float:
        """Validate (1-D, same length, finite), then compute; NaN on an empty selection."""
        t, p = validate(y_true, y_pred)
        return float(self.fn(t, p)) if len(t) else float("nan")


def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    if len(y_true) < 2:
        return float("nan")
    ss_tot = float(np.sum((y_true - y_true.mean()) ** 2))
    if ss_tot == 0.0:
        return float("nan")
    return 1.0 - float(np.sum((y_true - y_pred) ** 2)) / ss_tot


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("mae", "MAE (U)", lambda t, p: np.mean(np.abs(t - p)), False),
    Metric("rmse", "RMSE (U)", lambda t, p: np.sqrt(np.mean((t - p) ** 2)), False),
    Metric("r2", "R²", _r2, True),
    Metric("within_1u", "within ±1 U", lambda t, p: np.mean(np.abs(t - p) <= WITHIN_UNITS + _TOL), True),
)}

METRIC_COLUMNS = ("n", *METRICS, "n_dose", *(f"{m}_dose" for m in METRICS), "missed", "unwanted")


def _as_1d(name: str, values, n: int | None = None) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric: {exc}") from None
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}.")
    if n is not None and len(arr) != n:
        raise ValueError(f"{name} has {len(arr)} values but y_true has {n}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has {int(np.sum(~np.isfinite(arr)))} non-finite values (NaN/inf).")
    return arr


def validate(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    """Both as 1-D finite float arrays of the same length, or a ValueError saying what is wrong."""
    t = _as_1d("y_true", y_true)
    return t, _as_1d("y_pred", y_pred, len(t))


def dose_metrics(y_true, y_pred) -> dict:
    """mae, rmse, r2, within_1u and n on all rows, the same with `_dose` on y_true > 0, and the
    counts of missed and unwanted doses (DOSE_GIVEN_U)."""
    t, p = validate(y_true, y_pred)
    dose = t > 0
    out: dict = {"n": int(len(t))}
    out.update({name: m(t, p) for name, m in METRICS.items()})
    out["n_dose"] = int(dose.sum())
    out.update({f"{name}_dose": m(t[dose], p[dose]) for name, m in METRICS.items()})
    out["missed"] = int(np.sum(dose & (p < DOSE_GIVEN_U)))
    out["unwanted"] = int(np.sum(~dose & (p >= DOSE_GIVEN_U)))
    return out


def per_patient_metrics(patient_id, y_true, y_pred) -> pd.DataFrame:
    """One row per patient (sorted): patient_id, n, n_dose (rows with a dose), mae, mae_dose (NaN
    without doses), within_1u."""
    t, p = validate(y_true, y_pred)
    pid = np.asarray(patient_id)
    if pid.ndim != 1 or len(pid) != len(t):
        raise ValueError(f"patient_id must be 1-D with {len(t)} values, got shape {pid.shape}.")
    err = np.abs(t - p)
    df = pd.DataFrame({"patient_id": pid, "err": err, "within": err <= WITHIN_UNITS + _TOL,
                       "err_dose": np.where(t > 0, err, np.nan)})
    g = df.groupby("patient_id", sort=True)
    out = pd.DataFrame({
        "n": g.size(),
        "n_dose": g["err_dose"].count(),
        "mae": g["err"].mean(),
        "mae_dose": g["err_dose"].mean(),  # mean skips NaN: doses only, NaN when none
        "within_1u": g["within"].mean(),
    })
    return out.rename_axis("patient_id").reset_index()


def metrics_table(predictions: dict[str, np.ndarray], y_true, mask=None) -> pd.DataFrame:
    """One row per model/baseline name (in the dict's order) with the `dose_metrics` columns: the one
    metric table of evaluation, the Predictions page and the CLI.

    `mask` (boolean of len(y_true), or row indices) restricts every model to the same rows, e.g.
    leaving out implausible target doses.
    """
    t = _as_1d("y_true", y_true)
    sel = np.arange(len(t)) if mask is None else np.asarray(mask)
    if sel.dtype == bool and len(sel) != len(t):
        raise ValueError(f"mask has {len(sel)} values but y_true has {len(t)}.")
    rows = []
    for name, pred in predictions.items():
        p = _as_1d(f"predictions[{name!r}]", pred, len(t))
        rows.append({"name": name, **dose_metrics(t[sel], p[sel])})
    return pd.DataFrame(rows, columns=["name", *METRIC_COLUMNS])


# An evaluation's table (pipeline.evaluate) has each name twice: on every row ("all") and without
# the implausible target doses. The headline figures are the first.
ALL_ROWS = "all"


def all_rows(evaluation_table: pd.DataFrame) -> pd.DataFrame:
    """Each model/baseline's metrics on every row of the part (the `rows` column dropped)."""
    return evaluation_table[evaluation_table["rows"] == ALL_ROWS].drop(columns="rows")


def headline(evaluation_table: pd.DataFrame, name: str = "model") -> dict:
    """One model/baseline's metrics on every row ({} when it is not in the table)."""
    rows = all_rows(evaluation_table)
    row = rows[rows["name"] == name]
    return row.iloc[0].drop("name").to_dict() if len(row) else {}
