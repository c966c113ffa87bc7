"""Events -> one row per (patient, timestamp) timeline, and the decision doses on it.

A decision point is a moment with anything on record other than insulin (DECISION_KINDS), with one
exception: a CGM reading (a modern reader's code 48, every 5 minutes) is one only at a fixed cadence,
the first reading in each clock interval of `cgm_every_min` minutes (`cgm_decisions`). Insulin never
makes a moment a decision point. The decision dose: many patients wrote the Regular dose on an
insulin-only row a few minutes after the glucose reading (device logging). The dose decided at a
decision point is therefore the Regular recorded at that moment plus the Regular on insulin-only
rows up to `dose_window` minutes after it, stopping at the next decision point (`fold_doses`).
Those folded doses are the target of their decision point and never its input. The hour of day and
day part of a timestamp are here too (`hour_of_day`, `day_parts`). The model features on this
timeline are features.py's.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..data.codes import (CGM_CODE, CODE_TABLE, DAY_PART_STARTS, DAY_PARTS, DEFAULT_CGM_EVERY_MIN,
                          DEFAULT_DOSE_WINDOW_MIN, LEVELS, MAX_DOSE_WINDOW_MIN, MAX_PLAUSIBLE_DOSE)

MAX_CGM_EVERY_MIN = 24 * 60

GLUCOSE_SLOTS = tuple(dict.fromkeys(c.detail for c in CODE_TABLE.values() if c.kind == "glucose"))
# What makes a moment a decision point: anything on record other than insulin (a CGM reading only at
# the cadence, `cgm_decisions`).
DECISION_KINDS = ("glucose", "meal", "exercise", "hypo")
# Columns only the modern readers write (data/readers/base.EXTRA_COLUMNS): their code 48 is a CGM
# reading. AIM94 writes 48 for a meter reading without a time slot, which stays a decision point.
READER_COLUMN = "record_type"
TIMELINE_COLUMNS = [
    "patient_id", "timestamp", "glucose", "glucose_slot", "regular", "nph", "ultralente",
    "hypo", "meal", "exercise", "special", "paper_time", "censored", "implausible", "decision_point",
    # What the decision point was made of, so that another CGM cadence can be applied to the timeline
    # (`with_cgm_cadence`) as another dose window is, without going back to the events: a CGM reading
    # at this moment, evidence of a decision other than a CGM reading, and the cadence applied.
    "cgm_reading", "other_evidence", "cgm_every",
]
# Added by add_features: the decision dose and how each insulin-only Regular was counted.
DOSE_COLUMNS = ["decision_dose", "dose_implausible", "folded_regular", "dose_window"]


def stamp_text(stamps: pd.Series | pd.Timestamp) -> pd.Series | str:
    """A moment as the pages and messages name it: to the minute ("1991-04-21 09:09"), to the
    second where a record has seconds (CGM and pump exports do); parsing it back gives the moment."""
    if isinstance(stamps, pd.Timestamp):
        return stamp_text(pd.Series([stamps])).iloc[0]
    minute = stamps.dt.strftime("%Y-%m-%d %H:%M")
    exact = stamps == stamps.dt.floor("min")
    return minute.where(exact, stamps.dt.strftime("%Y-%m-%d %H:%M:%S"))


def day_part_of(hours: np.ndarray | pd.Series) -> np.ndarray:
    """Hour of day (float) -> index into DAY_PARTS; night wraps midnight."""
    hours = np.asarray(hours, dtype=float)
    part = np.full(hours.shape, DAY_PARTS.index("night"))
    for name in ("morning", "afternoon", "evening"):
        start = DAY_PART_STARTS[name]
        end = DAY_PART_STARTS[DAY_PARTS[DAY_PARTS.index(name) + 1]]
        part[(hours >= start) & (hours < end)] = DAY_PARTS.index(name)
    return part


def hour_of_day(stamps) -> np.ndarray:
    """Hours since midnight of each timestamp, in whole minutes (as dt.hour + dt.minute / 60.0);
    NaN for NaT. numpy arithmetic: pandas' dt accessors cost more than the features on a cohort."""
    t = np.asarray(stamps, dtype="datetime64[ns]")
    minutes = (t - t.astype("datetime64[D]")).astype("timedelta64[m]").astype(np.int64)
    return np.where(np.isnat(t), np.nan, minutes // 60 + (minutes % 60) / 60.0)


def day_parts(stamps) -> np.ndarray:
    """The day part (a name of DAY_PARTS) of each timestamp."""
    return np.asarray(DAY_PARTS)[day_part_of(hour_of_day(stamps))]


def cgm_decisions(pid: np.ndarray, stamp: np.ndarray, every_min: int) -> np.ndarray:
    """Which of the sorted CGM readings are decision points: the first reading of each patient in
    each clock interval of `every_min` minutes (intervals on the clock, from midnight when they
    divide a day). On the clock rather than counted from the patient's first reading: the same
    moments whatever part of a record is loaded (a What-if's rebuilt tail, an export cut at another
    day) and the same for every patient. Whether a reading is the first of its interval is known
    at that reading: no look-ahead."""
    slot = stamp.astype("datetime64[m]").astype(np.int64) // check_cgm_every(every_min)
    first = np.ones(len(pid), dtype=bool)
    first[1:] = (pid[1:] != pid[:-1]) | (slot[1:] != slot[:-1])
    return first


def build_timeline(events: pd.DataFrame, cgm_every_min: int = DEFAULT_CGM_EVERY_MIN) -> pd.DataFrame:
    """Pivot events to one row per (patient, timestamp); doses summed, glucose averaged.

    Rows are sorted by (patient, timestamp) with a stable sort (events keep their order inside a
    moment, which decides the `censored` first) and each column is reduced over the moment's run
    of rows with `ufunc.reduceat`: a pandas groupby-agg costs ~10 ms even for one patient."""
    pid = events["patient_id"].to_numpy()
    stamp = events["timestamp"].to_numpy()
    order = np.lexsort((stamp, pid))
    pid, stamp = pid[order], stamp[order]
    new_moment = np.ones(len(order), dtype=bool)
    new_moment[1:] = (pid[1:] != pid[:-1]) | (stamp[1:] != stamp[:-1])
    starts = np.flatnonzero(new_moment)
    kind = events["kind"].to_numpy(dtype=object)[order]
    value = events["value"].to_numpy(dtype=float)[order]
    detail = events["detail"].to_numpy(dtype=object)[order]
    is_glucose = kind == "glucose"

    def total(x: np.ndarray) -> np.ndarray:  # NaN-skipping sum per moment, as pandas' sum
        return _per_moment(np.add, np.where(np.isnan(x), 0.0, x), starts)

    def highest(x: np.ndarray) -> np.ndarray:  # NaN-skipping max per moment (fmax ignores NaN)
        return _per_moment(np.fmax, x, starts)

    glucose = np.where(is_glucose, value, np.nan)
    readings = total((~np.isnan(glucose)).astype(float))
    # A CGM reading is evidence of a decision only at the cadence (with_cgm_cadence); any other reading always is.
    cgm = cgm_readings(events)[order]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_glucose = np.where(readings > 0, total(glucose) / readings, np.nan)
    columns = {
        "patient_id": pid[starts], "timestamp": stamp[starts], "glucose": mean_glucose,
        "glucose_slot": pd.array(_last_name(np.where(is_glucose, detail, ""), starts), dtype=events["detail"].dtype),
        **{k: total(np.where(kind == k, value, 0.0)) for k in ("regular", "nph", "ultralente")},
        "hypo": highest((kind == "hypo").astype(float)),
        "meal": highest(_level(kind, detail, "meal")), "exercise": highest(_level(kind, detail, "exercise")),
        "special": highest((kind == "special").astype(float)),
        "paper_time": highest(events["paper_time"].to_numpy()[order]),
        "censored": pd.array(_first_given(events["censored"].to_numpy(dtype=object)[order], starts),
                             dtype=events["censored"].dtype),
        "implausible": highest(events["implausible"].to_numpy()[order]),
    }
    # A decision point is a moment with something other than insulin on record: a row that exists
    # only because insulin was written down would give its answer away by existing.
    # (a glucose counts by its readings: a meter word is a reading; an unknown meal word is not a meal)
    # (a CGM reading only at the cadence: `with_cgm_cadence`)
    evidence = {"glucose": total((~np.isnan(glucose) & ~cgm).astype(float)), "meal": columns["meal"],
                "exercise": columns["exercise"], "hypo": columns["hypo"]}
    columns["other_evidence"] = np.logical_or.reduce([evidence[kind] > 0 for kind in DECISION_KINDS])
    columns["cgm_reading"] = total(cgm.astype(float)) > 0
    columns["decision_point"] = decision_points(pid[starts], stamp[starts], columns["other_evidence"],
                                                columns["cgm_reading"], cgm_every_min)
    columns["cgm_every"] = np.full(len(starts), cgm_every_min, dtype=np.int64)
    return pd.DataFrame({name: columns[name] for name in TIMELINE_COLUMNS})


def cgm_readings(events: pd.DataFrame) -> np.ndarray:
    """Which events (in their order) are CGM readings: a modern reader's glucose of code CGM_CODE
    with a value. AIM94's 48 is a meter reading (READER_COLUMN tells the two apart)."""
    if READER_COLUMN not in events.columns:
        return np.zeros(len(events), dtype=bool)
    return ((events["kind"].to_numpy() == "glucose") & (events["code"].to_numpy() == CGM_CODE)
            & events["value"].notna().to_numpy())


def with_cgm_cadence(timeline: pd.DataFrame, every_min: int) -> pd.DataFrame:
    """The timeline with its decision points at a CGM cadence of `every_min` minutes: a moment is
    one when it holds other evidence, or a CGM reading that is the first of its clock interval
    (`cgm_decisions`). The same timeline when that cadence is applied already; a copy otherwise."""
    every_min = check_cgm_every(every_min)
    if len(timeline) and int(timeline["cgm_every"].iloc[0]) == every_min:
        return timeline
    tl = timeline.copy()
    tl["decision_point"] = decision_points(tl["patient_id"].to_numpy(), tl["timestamp"].to_numpy(),
                                           tl["other_evidence"].to_numpy(dtype=bool),
                                           tl["cgm_reading"].to_numpy(dtype=bool), every_min)
    tl["cgm_every"] = np.full(len(tl), every_min, dtype=np.int64)
    return tl


def decision_points(pid: np.ndarray, stamp: np.ndarray, other_evidence: np.ndarray, cgm_reading: np.ndarray,
                    every_min: int) -> np.ndarray:
    """Which sorted moments are decision points: those with other evidence, and those whose CGM
    reading is the first of its clock interval (`cgm_decisions`). The one rule of the timeline and
    of the What-if's history tail (whatif/rebuild.py)."""
    cgm = np.flatnonzero(cgm_reading)
    first = np.zeros(len(pid), dtype=bool)
    first[cgm] = cgm_decisions(pid[cgm], stamp[cgm], every_min)
    return other_evidence | first


def check_cgm_every(minutes) -> int:
    """A CGM cadence in whole minutes, 1 to a day, or a ValueError saying what is wrong."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, np.integer)) or not 1 <= minutes <= MAX_CGM_EVERY_MIN:
        raise ValueError(f"The CGM cadence must be a whole number of minutes from 1 to {MAX_CGM_EVERY_MIN}, "
                         f"got {minutes!r}.")
    return int(minutes)


def _per_moment(ufunc: np.ufunc, x: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """`ufunc` reduced over each moment's run of sorted rows (reduceat refuses zero rows)."""
    return ufunc.reduceat(x, starts) if len(starts) else x[:0]


def _level(kind: np.ndarray, detail: np.ndarray, which: str) -> np.ndarray:
    """Meal / exercise level of each event of that kind (NaN for an unknown word), 0 for other kinds."""
    out = np.zeros(len(kind))
    rows = np.flatnonzero(kind == which)
    out[rows] = [LEVELS.get(d, np.nan) for d in detail[rows]]
    return out


def _last_name(names: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per moment the alphabetically last name (what pandas' max of strings gives)."""
    uniques, codes = np.unique(names.astype(str), return_inverse=True)
    return uniques.astype(object)[_per_moment(np.maximum, codes, starts)]


def _first_given(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Per moment the first value that is neither missing nor empty, else "" (pandas' `first`)."""
    n = len(values)
    given = pd.notna(values) & (values != "")
    first = _per_moment(np.minimum, np.where(given, np.arange(n), n), starts)
    return np.append(values, "")[first]  # position n = none given


def check_dose_window(minutes) -> int:
    if isinstance(minutes, bool) or not isinstance(minutes, (int, np.integer)) or not 0 <= minutes <= MAX_DOSE_WINDOW_MIN:
        raise ValueError(f"The dose window must be a whole number of minutes from 0 to {MAX_DOSE_WINDOW_MIN}, "
                         f"got {minutes!r}.")
    return int(minutes)


def fold_doses(pid: np.ndarray, minutes: np.ndarray, decision: np.ndarray, regular: np.ndarray,
               dose_window: int) -> tuple[np.ndarray, np.ndarray]:
    """(decision dose per row, folded mask) for rows sorted by (patient, time).

    An insulin-only row's Regular is folded into the patient's last decision point at or before
    it when it lies at most `dose_window` minutes after it; rows in between are insulin-only by
    construction, so folding stops at the next decision point. The decision dose is 0 on rows that
    are not decision points; a Regular that is not folded stays alone (history only)."""
    n = len(pid)
    pos = np.arange(n)
    last_dp = np.maximum.accumulate(np.where(decision, pos, -1)) if n else pos
    has_dp = (last_dp >= 0) & (pid == pid[np.maximum(last_dp, 0)]) if n else decision
    gap = minutes - minutes[np.maximum(last_dp, 0)] if n else minutes
    folded = ~decision & (regular > 0) & has_dp & (gap <= dose_window) & (dose_window > 0)
    dose = np.where(decision, regular, 0.0)
    np.add.at(dose, last_dp[folded], regular[folded])
    return dose, folded


def add_decision_doses(timeline: pd.DataFrame, dose_window: int = DEFAULT_DOSE_WINDOW_MIN) -> pd.DataFrame:
    """The timeline (sorted by patient and time) with DOSE_COLUMNS: the decision dose of each
    decision point, whether any of its parts is an implausible (typing-error) dose, and which
    insulin-only rows were folded into one."""
    tl = timeline.reset_index(drop=True)
    dose_window = check_dose_window(dose_window)
    pid, decision = tl["patient_id"].to_numpy(), tl["decision_point"].to_numpy(dtype=bool)
    minutes = _minutes(tl["timestamp"].to_numpy())
    regular = np.nan_to_num(tl["regular"].to_numpy(dtype=float))
    dose, folded = fold_doses(pid, minutes, decision, regular, dose_window)
    typo = (regular > MAX_PLAUSIBLE_DOSE["regular"]).astype(float)
    bad, _ = fold_doses(pid, minutes, decision, typo, dose_window)
    return tl.assign(decision_dose=dose, dose_implausible=bad > 0, folded_regular=folded,
                     dose_window=np.full(len(tl), dose_window, dtype=np.int64))


def _minutes(t: np.ndarray) -> np.ndarray:
    return t.astype("datetime64[m]").astype(np.int64).astype(float)


def fold_summary(timeline: pd.DataFrame, dose_window: int = DEFAULT_DOSE_WINDOW_MIN) -> dict:
    """How the insulin-only Regular doses were counted: folded into a decision point, or alone."""
    tl = add_decision_doses(timeline, dose_window)
    insulin_only = ~tl["decision_point"] & (tl["regular"] > 0)
    folded = tl["folded_regular"]
    regular = np.nan_to_num(tl["regular"].to_numpy(dtype=float))
    doses = (tl["decision_dose"] > 0).groupby(tl["patient_id"]).sum()
    late = folded.groupby(tl["patient_id"]).sum()
    fed = tl["decision_point"] & (tl["decision_dose"] > regular)
    return {
        "dose_window_min": int(dose_window),
        "insulin_only_regular": int(insulin_only.sum()),
        "folded": int(folded.sum()),
        "alone": int((insulin_only & ~folded).sum()),
        "decision_points_with_folded_dose": int(fed.sum()),
        "of_them_without_own_dose": int((fed & ~(tl["regular"] > 0)).sum()),
        "patients_mostly_late": int((late > 0.5 * doses.clip(lower=1)).sum()),
        # every unit once: decision_units + alone_units == regular_units
        "regular_units": float(regular.sum()), "decision_units": float(tl["decision_dose"].sum()),
        "alone_units": float(regular[(insulin_only & ~folded).to_numpy()].sum()),
    }
