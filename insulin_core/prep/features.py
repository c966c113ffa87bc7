"""The timeline (timeline.py) -> model features.

Two feature families, both computed here so the app, training and what-if share one code path:
- SEQ_FEATURES describe every timeline row; a window is a stack of them.
- NOW_FEATURES describe a decision moment: what a person deciding a dose knows then (the glucose
  just measured, the time, meal/exercise/hypo, the patient's recent routine), never the insulin
  given at that moment. History summaries use only rows strictly before the moment.

The decision dose (timeline.py, `fold_doses`) is the target of its decision point and never its
input; later moments see it in their history, counted as part of the decision dose it belongs to.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.codes import DAY_PARTS, DEFAULT_DOSE_WINDOW_MIN, GLUCOSE_METER_MAX, LEVELS, MAX_PLAUSIBLE_DOSE
from .grouped import Groups, mean_of_rows, median_of_rows
from .timeline import GLUCOSE_SLOTS, _minutes, add_decision_doses, day_part_of, fold_doses, hour_of_day

GLUCOSE_BAND_MGDL = 40
N_BANDS = int(GLUCOSE_METER_MAX // GLUCOSE_BAND_MGDL) + 1  # bands of a meter reading (the last holds 600)
SHARE_WINDOW = 10  # decision moments looked back on for "how often does this patient dose now"
# The history look-backs of the decision-moment features: how many earlier items of each kind a
# feature reads. The what-if's bounded history tail (rebuild.py) is computed from these, so a
# feature that looks further back must say so here.
LOOKBACKS = {
    "glucose": 1,  # glucose_prev, log_hours_since_glucose
    "regular": 1, "nph": 1, "ultralente": 1,  # last_regular, last_nph, last_ultralente
    "regular_same_day_part": 7,  # last_regular_same_dp, median3/median7_regular_same_dp
    "decisions_same_day_part": SHARE_WINDOW,  # share_dose_same_dp
    "decisions_same_band": SHARE_WINDOW,  # last/median5/share of the personal sliding scale
    "readings_same_day_part": SHARE_WINDOW,  # share_dose_reading_same_dp, share_followed_same_dp
}
FOLLOW_UP_MIN = 10  # a decision point this soon after a reading is its follow-up (the dose often goes there)
MAX_GAP_HOURS = 24.0 * 14  # gaps beyond two weeks say nothing more than "long ago"


SEQ_FEATURES = (
    "glucose", "has_glucose", "regular", "nph", "ultralente", "hypo", "meal", "exercise",
    "tod_sin", "tod_cos", *(f"dp_{p}" for p in DAY_PARTS), "log_hours_since_prev", "paper_time",
)
NOW_FEATURES = (
    "glucose", "has_glucose", *(f"slot_{s}" for s in GLUCOSE_SLOTS), "hypo", "meal", "exercise",
    "tod_sin", "tod_cos", *(f"dp_{p}" for p in DAY_PARTS), "log_hours_since_prev", "paper_time",
    "glucose_prev", "log_hours_since_glucose",
    "last_regular_same_dp", "has_last_regular_same_dp", "log_age_last_regular_same_dp",
    "median3_regular_same_dp", "median7_regular_same_dp", "share_dose_same_dp",
    "last_regular", "log_hours_since_regular", "last_nph", "last_ultralente",
    "last_regular_same_band", "median5_regular_same_band", "share_dose_same_band", "has_same_band",
    # Appended (bundles saved before them read the list above as a prefix of this one):
    "scale_last_regular", "scale_median5_regular", "scale_share_dose", "scale_has",
    "share_dose_reading_same_dp", "share_followed_same_dp",
    "has_meal", "meal_size",
)
# The patient's own dosing habit at this day part: how much, and how often, they dosed here before.
# A monotone network takes these as "up" inputs too (a larger usual dose, or a dose more often at
# this time, never lowers the answer). Why: as context they let the network learn the cohort's
# habits instead ("at 22:00 nobody doses") and explain each known patient's exceptions with the
# patient embedding. A new patient who doses 14-18 U every night at 22:00 was then given 0 U at 90
# of those moments, all at night (patient 2 left out of training, issue 17: held-out MAE 1.92
# against the monotone two-stage GBM's 1.34). As rising inputs the context cannot cancel them.
HABIT = ("last_regular_same_dp", "has_last_regular_same_dp", "median3_regular_same_dp", "median7_regular_same_dp",
         "share_dose_same_dp", "share_dose_reading_same_dp")
# The columns a glucose now decides besides glucose itself and its slot (set from a rebuild per band
# by rebuild.set_moment): the patient's same-band history and own sliding scale. Every other
# column of a moment is the same whatever its glucose.
SCALE = ("scale_last_regular", "scale_median5_regular", "scale_share_dose", "scale_has")
SAME_BAND = ("last_regular_same_band", "median5_regular_same_band", "share_dose_same_band", "has_same_band")
# How a monotone network (model.py) takes each decision-moment feature. "up": the dose may only
# rise with it (glucose now, the patient's own sliding scale made non-decreasing in glucose, the
# patient's habit at this day part, the size of a meal eaten now: less <= typical <= more, as every
# bolus rule has it; as context a larger meal gave less insulin at 1.6% of the real test part's
# moments, docs/results.md); "down": the dose may only fall with it (exercise now);
# "ignored": the network does not read it (the raw same-band history, which moves with glucose now
# but not monotonically; the raw meal level, whose "none" is mostly a meal not written down);
# anything else is context. Why meal_size and has_meal rather than the meal level itself: 717 of
# the demo's 823 pre-meal moments carry no meal code, so "none" <= "less" would tie a smaller meal's
# dose to the usual one (meal fidelity fell from 98.6% to 84.5% within 1 U when it did); "none"
# is has_meal = 0, free in the context, with meal_size at typical. Kept by each bundle
# (ModelConfig.now_roles).
MONOTONE_ROLES = {
    "glucose": "up", **dict.fromkeys(SCALE, "up"), **dict.fromkeys(HABIT, "up"), "meal_size": "up",
    "exercise": "down", **dict.fromkeys(SAME_BAND, "ignored"), "meal": "ignored",
}
GLUCOSE_DRIVEN = ("glucose", "has_glucose", *(f"slot_{s}" for s in GLUCOSE_SLOTS), *SCALE, *SAME_BAND)


def meal_inputs(meal: np.ndarray) -> dict[str, np.ndarray]:
    """The meal level now (LEVELS) as the monotone network reads it: whether a meal is on record,
    and its size with "none" at typical (the has_meal context sets what no meal code means)."""
    eaten = np.nan_to_num(meal) > 0
    return {"has_meal": eaten.astype(float), "meal_size": np.where(eaten, meal, LEVELS["typical"])}


def now_roles(names=NOW_FEATURES) -> tuple[str, ...]:
    """The role of each decision-moment feature in a monotone network: up, down, ignored or context."""
    return tuple(MONOTONE_ROLES.get(n, "context") for n in names)


def add_features(timeline: pd.DataFrame, dose_window: int = DEFAULT_DOSE_WINDOW_MIN) -> pd.DataFrame:
    """Add the decision dose (DOSE_COLUMNS) and SEQ_FEATURES and NOW_FEATURES columns (prefixed
    `seq_` / `now_`). History summaries count decision doses, so a late-logging patient's routine
    is seen; `dose_window=0` gives the earlier, moment-only definition."""
    tl = add_decision_doses(timeline, dose_window)
    stamp = tl["timestamp"]
    t = stamp.to_numpy()
    hours = hour_of_day(t)
    part = day_part_of(hours)
    doses = {k: np.minimum(tl[k].to_numpy(dtype=float), MAX_PLAUSIBLE_DOSE[k])
             for k in ("regular", "nph", "ultralente")}
    glucose = tl["glucose"].to_numpy(dtype=float)
    by_patient = Groups(tl["patient_id"].to_numpy())

    moment = {
        "glucose": np.nan_to_num(glucose), "has_glucose": (~np.isnan(glucose)).astype(float),
        "hypo": tl["hypo"], "meal": tl["meal"], "exercise": tl["exercise"], **meal_inputs(tl["meal"].to_numpy(dtype=float)),
        "tod_sin": np.sin(2 * np.pi * hours / 24), "tod_cos": np.cos(2 * np.pi * hours / 24),
        **{f"dp_{p}": (part == i).astype(float) for i, p in enumerate(DAY_PARTS)},
        "log_hours_since_prev": _log_hours(_hours_since_prev_row(t, by_patient)),
        "paper_time": tl["paper_time"].astype(float),
    }
    history = _history_features(tl, doses, history_doses(tl)[0], part, by_patient)
    slot = tl["glucose_slot"].to_numpy(dtype=object)
    slots = {f"slot_{s}": (slot == s).astype(float) for s in GLUCOSE_SLOTS}
    now = {**history, **slots, **moment}
    # One float block for all feature columns: a frame from 53 separate arrays costs more than the
    # features themselves on a few hundred rows.
    values = np.column_stack([np.asarray(doses[n] if n in doses else moment[n], dtype=float) for n in SEQ_FEATURES]
                             + [np.asarray(now[n], dtype=float) for n in NOW_FEATURES])
    values[:, len(SEQ_FEATURES):] = np.nan_to_num(values[:, len(SEQ_FEATURES):])
    features = pd.DataFrame(values, index=tl.index, columns=seq_columns() + now_columns())
    # day_part joins last: reading columns of a frame just assigned to makes pandas consolidate it.
    return pd.concat([tl.assign(day_part=np.asarray(DAY_PARTS)[part]), features], axis=1)


def _log_hours(hours: pd.Series | np.ndarray) -> np.ndarray:
    """log1p of a gap in hours, capped; unknown (no earlier event) counts as the cap."""
    h = np.nan_to_num(np.asarray(hours, dtype=float), nan=MAX_GAP_HOURS)
    return np.log1p(np.clip(h, 0.0, MAX_GAP_HOURS))


def _hours_since_prev_row(t: np.ndarray, by_patient: Groups) -> np.ndarray:
    """Gap to the patient's previous row (NaN on their first); pandas' total_seconds keeps it
    bit-for-bit what a groupby diff gave."""
    prev = by_patient.previous_row()
    gap = np.where(prev >= 0, t - t[prev], np.timedelta64("NaT"))
    return pd.to_timedelta(gap).total_seconds().to_numpy() / 3600.0


def history_doses(tl: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The Regular each row adds to the patient's history, and whether a typing error is in it:
    the one rule for a past dose, read by the history features and by the What-if's safety check
    (`WhatIf.history_doses`). A row adds its decision dose on a decision point, its own dose on an
    insulin-only row that stayed alone, 0 on a folded row (counted at its decision point).

    Each part is capped at the plausible limit, as every dose input is: the history features count
    a typing error (344 U of Regular, patient 70) as a large dose, bounded. The safety check leaves
    the marked rows out instead: "far above the largest dose on record" must not measure against
    a typing error."""
    cap = MAX_PLAUSIBLE_DOSE["regular"]
    regular = np.nan_to_num(tl["regular"].to_numpy(dtype=float))
    capped = np.minimum(regular, cap)
    decision = tl["decision_point"].to_numpy(dtype=bool)
    folded = tl["folded_regular"].to_numpy(dtype=bool)
    typo = np.where(decision, tl["dose_implausible"].to_numpy(dtype=bool), regular > cap)
    if not folded.any():
        return capped, typo
    dose, _ = fold_doses(tl["patient_id"].to_numpy(), _minutes(tl["timestamp"].to_numpy()), decision,
                         capped, int(tl["dose_window"].iloc[0]))
    return np.where(decision, dose, np.where(folded, 0.0, capped)), typo & ~folded


def _history_features(tl: pd.DataFrame, doses: dict[str, np.ndarray], regular: np.ndarray, part: np.ndarray,
                      by_patient: Groups) -> dict[str, np.ndarray]:
    pid = tl["patient_id"].to_numpy()
    stamp_h = ((tl["timestamp"] - pd.Timestamp("1980-01-01")).dt.total_seconds() / 3600.0).to_numpy()
    dosed = regular > 0
    given = np.where(dosed, regular, np.nan)
    given_at = np.where(dosed, stamp_h, np.nan)
    glucose = tl["glucose"].to_numpy(dtype=float)
    glucose_at = np.where(np.isnan(glucose), np.nan, stamp_h)
    same_dp = Groups(pid, part)

    # Medians over the last 3/7 doses in this day part before each row (what a rolling median as
    # of the last dose strictly before it gives), and the share of the last SHARE_WINDOW decision
    # moments in this day part before it that carried a Regular dose.
    last7 = same_dp.last_values_before(given, LOOKBACKS["regular_same_day_part"])
    decided = np.where(tl["decision_point"].to_numpy(dtype=bool), dosed.astype(float), np.nan)
    last_given_same_dp = last7[:, 0]
    return {
        "glucose_prev": by_patient.last_before(glucose),
        "log_hours_since_glucose": _log_hours(stamp_h - by_patient.last_before(glucose_at)),
        "last_regular_same_dp": last_given_same_dp,
        "has_last_regular_same_dp": (~np.isnan(last_given_same_dp)).astype(float),
        "log_age_last_regular_same_dp": _log_hours(stamp_h - same_dp.last_before(given_at)),
        "median3_regular_same_dp": median_of_rows(last7[:, :3]),
        "median7_regular_same_dp": median_of_rows(last7),
        "share_dose_same_dp": mean_of_rows(same_dp.last_values_before(decided, LOOKBACKS["decisions_same_day_part"])),
        **_logging_habit(tl, pid, glucose, dosed, same_dp),
        "last_regular": by_patient.last_before(given),
        "log_hours_since_regular": _log_hours(stamp_h - by_patient.last_before(given_at)),
        "last_nph": by_patient.last_before(np.where(doses["nph"] > 0, doses["nph"], np.nan)),
        "last_ultralente": by_patient.last_before(np.where(doses["ultralente"] > 0, doses["ultralente"], np.nan)),
        **_personal_scale(pid, part, glucose, tl["decision_point"].to_numpy(dtype=bool), regular),
    }


def _logging_habit(tl: pd.DataFrame, pid: np.ndarray, glucose: np.ndarray, dosed: np.ndarray, same_dp: Groups) -> dict[str, np.ndarray]:
    """How this patient logs at a reading, whatever its value: of their last readings at decision
    points in this day part (strictly before the row), the share that carried the decision dose
    themselves, and the share followed within FOLLOW_UP_MIN minutes by another decision point
    (where many write the dose). Without these, the only trace of the habit was the same-band
    history, which moves with glucose; these stay the same at every glucose of a What-if sweep."""
    decision = tl["decision_point"].to_numpy(dtype=bool)
    reading = decision & ~np.isnan(glucose)
    pos = np.flatnonzero(decision)
    before = Groups(pid[pos]).previous_row()  # each decision point's previous one of the patient
    here, nxt = pos[before[before >= 0]], pos[before >= 0]
    minutes = _minutes(tl["timestamp"].to_numpy())
    following = np.full(len(tl), np.inf)  # minutes to the patient's next decision point
    following[here] = minutes[nxt] - minutes[here]
    k = LOOKBACKS["readings_same_day_part"]
    return {
        "share_dose_reading_same_dp": mean_of_rows(same_dp.last_values_before(np.where(reading, dosed, np.nan), k)),
        "share_followed_same_dp": mean_of_rows(same_dp.last_values_before(
            np.where(reading, following <= FOLLOW_UP_MIN, np.nan), k)),
    }


def _personal_scale(pid: np.ndarray, part: np.ndarray, glucose: np.ndarray, decision: np.ndarray,
                    regular: np.ndarray) -> dict[str, np.ndarray]:
    """The patient's own sliding scale so far: what they did before at a glucose in the same
    40 mg/dL band and day part (last dose, median of the last 5 moments, share with a dose).
    Only decision moments with a glucose take part; other rows get NaN (0 once finished)."""
    rows = np.flatnonzero(decision & ~np.isnan(glucose))
    same_band = Groups(pid[rows], part[rows], glucose[rows] // GLUCOSE_BAND_MGDL)
    dose = regular[rows]  # 0 = the patient chose no dose at that glucose: part of their scale
    earlier = same_band.last_values_before(dose, LOOKBACKS["decisions_same_band"])
    found = {
        "last_regular_same_band": earlier[:, 0],
        "median5_regular_same_band": median_of_rows(earlier[:, :5]),
        "share_dose_same_band": mean_of_rows(np.where(np.isnan(earlier), np.nan, earlier > 0)),
        "has_same_band": np.where(np.isnan(earlier[:, 0]), np.nan, 1.0),
    }
    found.update(_monotone_scale(rows, pid, part, glucose, dose))
    everywhere = {}
    for name, values in found.items():
        everywhere[name] = np.full(len(glucose), np.nan)
        everywhere[name][rows] = values
    return everywhere


def _monotone_scale(rows: np.ndarray, pid: np.ndarray, part: np.ndarray, glucose: np.ndarray,
                    dose: np.ndarray) -> dict[str, np.ndarray]:
    """The personal sliding scale made non-decreasing in glucose (the `scale_*` features): per
    band, the same-band figures of `_personal_scale`, then at a moment's band the largest of them
    over its own band and every band below it (a running max over bands, NaN skipped).

    Why: a What-if sweep moves glucose now across bands, and the raw same-band history can fall
    from one band to the next (a patient's noisy record), which made the predicted dose fall as
    glucose rose. The running max rises, or stays, with glucose for ANY history, so a network that
    takes it with non-negative weights stays monotone (model.py); where a patient's own scale
    already rises with glucose, it is their band's own figure. Each band's figures are the last
    LOOKBACKS["decisions_same_band"] decision moments in that band and day part strictly before
    the moment: the same-(patient, day part) history of the doses masked to that band."""
    n = len(rows)
    band = np.clip(glucose[rows] // GLUCOSE_BAND_MGDL, 0, N_BANDS - 1).astype(int)
    k = LOOKBACKS["decisions_same_band"]
    per_band = {name: np.full((n, N_BANDS), np.nan) for name in ("last", "median5", "share", "has")}
    same_dp = Groups(pid[rows], part[rows])  # one sort for every band
    for b in np.unique(band):  # a band no moment falls in adds nothing to any running max
        earlier = same_dp.last_values_before(np.where(band == b, dose, np.nan), k)
        per_band["last"][:, b] = earlier[:, 0]
        per_band["median5"][:, b] = median_of_rows(earlier[:, :5])
        per_band["share"][:, b] = mean_of_rows(np.where(np.isnan(earlier), np.nan, earlier > 0))
        per_band["has"][:, b] = np.where(np.isnan(earlier[:, 0]), np.nan, 1.0)
    at_band = np.arange(n), band
    return {f"scale_{name}": np.fmax.accumulate(values, axis=1)[at_band] if n else values[:, 0]
            for name, values in (("last_regular", per_band["last"]), ("median5_regular", per_band["median5"]),
                                 ("share_dose", per_band["share"]), ("has", per_band["has"]))}


def seq_columns() -> list[str]:
    return [f"seq_{n}" for n in SEQ_FEATURES]


def now_columns() -> list[str]:
    return [f"now_{n}" for n in NOW_FEATURES]
