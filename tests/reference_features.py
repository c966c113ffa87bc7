"""Test-only reference: `build_timeline` and `add_features` as they were before the numpy rewrite
(pandas groupby shift/ffill/rolling), kept verbatim so tests can check the fast versions equal them."""
from __future__ import annotations

import numpy as np
import pandas as pd

from insulin_core.data.codes import DAY_PARTS, DEFAULT_CGM_EVERY_MIN, LEVELS, MAX_PLAUSIBLE_DOSE
from insulin_core.prep.features import (FOLLOW_UP_MIN, GLUCOSE_BAND_MGDL, MAX_GAP_HOURS, N_BANDS, NOW_FEATURES,
                                        SEQ_FEATURES, SHARE_WINDOW)
from insulin_core.prep.timeline import GLUCOSE_SLOTS, TIMELINE_COLUMNS, day_part_of


def build_timeline(events: pd.DataFrame) -> pd.DataFrame:
    """Pivot events to one row per (patient, timestamp); doses summed, glucose averaged."""
    keys = ["patient_id", "timestamp"]
    ev = events.assign(
        glucose=events["value"].where(events["kind"] == "glucose"),
        **{k: events["value"].where(events["kind"] == k, 0.0) for k in ("regular", "nph", "ultralente")},
        hypo=(events["kind"] == "hypo").astype(float),
        meal=_level(events, "meal"),
        exercise=_level(events, "exercise"),
        special=(events["kind"] == "special").astype(float),
        glucose_slot=events["detail"].where(events["kind"] == "glucose", ""),
        censored=events["censored"].where(events["censored"] != "", None),
    )
    timeline = ev.groupby(keys, sort=True).agg(
        glucose=("glucose", "mean"), glucose_slot=("glucose_slot", "max"),
        regular=("regular", "sum"), nph=("nph", "sum"), ultralente=("ultralente", "sum"),
        hypo=("hypo", "max"), meal=("meal", "max"), exercise=("exercise", "max"),
        special=("special", "max"), paper_time=("paper_time", "max"),
        censored=("censored", "first"), implausible=("implausible", "max"),
    ).reset_index()
    timeline["censored"] = timeline["censored"].fillna("")
    # A decision point is a moment with something other than insulin on record: a row that exists
    # only because insulin was written down would give its answer away by existing.
    timeline["decision_point"] = (
        timeline["glucose"].notna() | (timeline["meal"] > 0) | (timeline["exercise"] > 0) | (timeline["hypo"] > 0)
    )
    # (added with the CGM cadence columns: AIM94 data has no CGM reading; the default cadence applied)
    timeline = timeline.assign(cgm_reading=False, other_evidence=timeline["decision_point"],
                               cgm_every=np.int64(DEFAULT_CGM_EVERY_MIN))
    return timeline[TIMELINE_COLUMNS]


def _level(events: pd.DataFrame, kind: str) -> pd.Series:
    return events["detail"].map(LEVELS).where(events["kind"] == kind, 0.0).astype(float)


def add_features(timeline: pd.DataFrame) -> pd.DataFrame:
    """Add SEQ_FEATURES and NOW_FEATURES columns (prefixed `seq_` / `now_`)."""
    tl = timeline.reset_index(drop=True)
    out: dict[str, np.ndarray] = {}
    hours = (tl["timestamp"].dt.hour + tl["timestamp"].dt.minute / 60.0).to_numpy()
    part = day_part_of(hours)
    tl = tl.assign(day_part=np.asarray(DAY_PARTS)[part])
    doses = {k: tl[k].clip(upper=MAX_PLAUSIBLE_DOSE[k]) for k in ("regular", "nph", "ultralente")}

    moment = {
        "glucose": tl["glucose"].fillna(0.0), "has_glucose": tl["glucose"].notna().astype(float),
        "hypo": tl["hypo"], "meal": tl["meal"], "exercise": tl["exercise"],
        # a meal on record, and its size with no meal read as a typical one (LEVELS: typical = 2)
        "has_meal": (tl["meal"].fillna(0) > 0).astype(float), "meal_size": tl["meal"].where(tl["meal"].fillna(0) > 0, 2.0),
        "tod_sin": np.sin(2 * np.pi * hours / 24), "tod_cos": np.cos(2 * np.pi * hours / 24),
        **{f"dp_{p}": (part == i).astype(float) for i, p in enumerate(DAY_PARTS)},
        "log_hours_since_prev": _log_hours(_hours_since_prev_row(tl)),
        "paper_time": tl["paper_time"].astype(float),
    }
    for name in SEQ_FEATURES:
        out[f"seq_{name}"] = np.asarray(doses[name] if name in doses else moment[name], dtype=float)
    history = _history_features(tl, doses)
    slots = {f"slot_{s}": (tl["glucose_slot"] == s).astype(float) for s in GLUCOSE_SLOTS}
    for name in NOW_FEATURES:
        source = moment.get(name, slots.get(name, history.get(name)))
        out[f"now_{name}"] = np.nan_to_num(np.asarray(source, dtype=float))
    return pd.concat([tl, pd.DataFrame(out, index=tl.index)], axis=1)


def _log_hours(hours: pd.Series | np.ndarray) -> np.ndarray:
    """log1p of a gap in hours, capped; unknown (no earlier event) counts as the cap."""
    h = np.nan_to_num(np.asarray(hours, dtype=float), nan=MAX_GAP_HOURS)
    return np.log1p(np.clip(h, 0.0, MAX_GAP_HOURS))


def _hours_since_prev_row(tl: pd.DataFrame) -> pd.Series:
    return tl.groupby("patient_id")["timestamp"].diff().dt.total_seconds() / 3600.0


def _last_before(values: pd.Series, keys: list[pd.Series]) -> pd.Series:
    """Per group, the last non-NaN value on a row strictly before each row."""
    return values.groupby(keys).shift(1).groupby(keys).ffill()


def _history_features(tl: pd.DataFrame, doses: dict[str, pd.Series]) -> dict[str, pd.Series]:
    pid, dp = tl["patient_id"], tl["day_part"]
    stamp_h = (tl["timestamp"] - pd.Timestamp("1980-01-01")).dt.total_seconds() / 3600.0
    regular = doses["regular"]
    given = regular.where(regular > 0)
    given_at = stamp_h.where(regular > 0)
    glucose_at = stamp_h.where(tl["glucose"].notna())

    # Rolling medians over the patient's doses in this day part, up to and including each dose;
    # `_last_before` then hands each row the value as of the last dose strictly before it.
    dose_rows = given.dropna()
    dose_keys = [pid[dose_rows.index], dp[dose_rows.index]]
    med = {w: dose_rows.groupby(dose_keys).rolling(w, min_periods=1).median().droplevel([0, 1])
           for w in (3, 7)}
    # Share of earlier decision moments in this day part that carried a Regular dose.
    dec = tl["decision_point"]
    dosed = (regular > 0).astype(float)[dec]
    dec_keys = [pid[dec], dp[dec]]
    share = dosed.groupby(dec_keys).rolling(SHARE_WINDOW, min_periods=1).mean().droplevel([0, 1])

    same_dp = [pid, dp]
    last_dose_same_dp_at = _last_before(given_at, same_dp)
    band = _personal_scale(tl, regular)
    # Of the last SHARE_WINDOW readings at decision points in this day part: the share with a dose
    # and the share followed within FOLLOW_UP_MIN minutes by the patient's next decision point.
    reading = dec & tl["glucose"].notna()
    next_at = pd.to_datetime(tl["timestamp"].where(dec).groupby(pid).transform(lambda t: t.dropna().shift(-1).reindex(t.index)))
    followed = ((next_at - tl["timestamp"]).dt.total_seconds() <= FOLLOW_UP_MIN * 60).astype(float)[reading]
    read_keys = [pid[reading], dp[reading]]

    def reading_share(values: pd.Series) -> pd.Series:
        rolled = values.groupby(read_keys).rolling(SHARE_WINDOW, min_periods=1).mean().droplevel([0, 1])
        return _last_before(rolled.reindex(tl.index), same_dp)

    return {
        "glucose_prev": _last_before(tl["glucose"], [pid]),
        "log_hours_since_glucose": _log_hours(stamp_h - _last_before(glucose_at, [pid])),
        "last_regular_same_dp": _last_before(given, same_dp),
        "has_last_regular_same_dp": _last_before(given, same_dp).notna().astype(float),
        "log_age_last_regular_same_dp": _log_hours(stamp_h - last_dose_same_dp_at),
        "median3_regular_same_dp": _last_before(med[3].reindex(tl.index), same_dp),
        "median7_regular_same_dp": _last_before(med[7].reindex(tl.index), same_dp),
        "share_dose_same_dp": _last_before(share.reindex(tl.index), same_dp),
        "last_regular": _last_before(given, [pid]),
        "log_hours_since_regular": _log_hours(stamp_h - _last_before(given_at, [pid])),
        "last_nph": _last_before(doses["nph"].where(doses["nph"] > 0), [pid]),
        "last_ultralente": _last_before(doses["ultralente"].where(doses["ultralente"] > 0), [pid]),
        **band,
        **_monotone_scale(tl, regular),
        "share_dose_reading_same_dp": reading_share((regular > 0).astype(float)[reading]),
        "share_followed_same_dp": reading_share(followed),
    }


def _monotone_scale(tl: pd.DataFrame, regular: pd.Series) -> dict[str, pd.Series]:
    """The sliding scale made non-decreasing in glucose, moment by moment in plain Python: per
    band up to the moment's, the same-band figures over the earlier moments of that band (same
    patient and day part), then the running max over the bands."""
    dec = tl.index[tl["decision_point"] & tl["glucose"].notna()]
    band = np.clip(tl.loc[dec, "glucose"] // GLUCOSE_BAND_MGDL, 0, N_BANDS - 1).astype(int)
    out = {name: pd.Series(np.nan, index=tl.index) for name in
           ("scale_last_regular", "scale_median5_regular", "scale_share_dose", "scale_has")}
    for (_, _), rows in tl.loc[dec].groupby(["patient_id", "day_part"]).groups.items():
        seen: dict[int, list[float]] = {b: [] for b in range(N_BANDS)}  # earlier doses per band, in order
        for r in rows:
            best = dict.fromkeys(out, np.nan)
            for b in range(band[r] + 1):
                earlier = seen[b][-SHARE_WINDOW:]
                if not earlier:
                    continue
                figures = {"scale_last_regular": earlier[-1], "scale_median5_regular": float(np.median(earlier[-5:])),
                           "scale_share_dose": float(np.mean(np.array(earlier) > 0)), "scale_has": 1.0}
                best = {k: np.fmax(best[k], v) for k, v in figures.items()}
            for k, v in best.items():
                out[k][r] = v
            seen[band[r]].append(regular[r])
    return out


def _personal_scale(tl: pd.DataFrame, regular: pd.Series) -> dict[str, pd.Series]:
    """The patient's own sliding scale so far: what they did before at a glucose in the same
    40 mg/dL band and day part (last dose, median of the last 5 moments, share with a dose)."""
    dec = tl.index[tl["decision_point"] & tl["glucose"].notna()]
    keys = [tl.loc[dec, "patient_id"], tl.loc[dec, "day_part"], (tl.loc[dec, "glucose"] // GLUCOSE_BAND_MGDL)]
    dose = regular[dec]  # 0 = the patient chose no dose at that glucose: part of their scale
    seen = pd.Series(1.0, index=dec)
    last = _last_before(dose, keys)
    med = _last_before(dose.groupby(keys).rolling(5, min_periods=1).median().droplevel([0, 1, 2]).reindex(dec), keys)
    share = _last_before((dose > 0).astype(float).groupby(keys).rolling(SHARE_WINDOW, min_periods=1).mean()
                         .droplevel([0, 1, 2]).reindex(dec), keys)
    has = _last_before(seen, keys)
    return {name: values.reindex(tl.index) for name, values in {
        "last_regular_same_band": last, "median5_regular_same_band": med,
        "share_dose_same_band": share, "has_same_band": has}.items()}
