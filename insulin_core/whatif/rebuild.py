"""The bounded rebuild: a `Scenario` applied to the patient's EVENTS and rebuilt into the model's
inputs by the one code path training used.

`build` edits the events at the decision moment and in the window before it, and rebuilds the
features (`build_timeline` + `add_features` on a bounded tail of that patient's history,
`make_windows` with `rows=[decision row]`). The tail is bounded by the history look-backs of
features.py (`LOOKBACKS`), so a feature with a longer look-back widens it. `band_variants` and
`set_moment` are the fast paths: edits of the moment alone change only the moment's own
NOW_FEATURES columns. Tests (tests/test_whatif.py) prove each fast path equal to a full rebuild.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from ..data.codes import (CODE_TABLE, DEFAULT_CGM_EVERY_MIN, EXERCISE_CODES, GLUCOSE_METER_MAX,
                          GLUCOSE_METER_MIN, LEVELS, MAX_PLAUSIBLE_DOSE, MEAL_CODES)
from ..prep.features import (DEFAULT_DOSE_WINDOW_MIN, GLUCOSE_BAND_MGDL, GLUCOSE_DRIVEN, LOOKBACKS, N_BANDS,
                             NOW_FEATURES, add_features, meal_inputs, now_columns)
from ..prep.timeline import (DECISION_KINDS, build_timeline, cgm_readings, day_parts, decision_points, fold_doses,
                             stamp_text)
from .scenarios import NEXT, Scenario, parse_time_of_day
from ..prep.windows import WindowConfig, WindowSet, make_windows

NEXT_GAP = pd.Timedelta(hours=1)  # "next" = one hour after the patient's last event, unless time_of_day says when
HYPO_CODE, SPECIAL_CODE, UNSPECIFIED_GLUCOSE_CODE = 65, 72, 57
# A moment with nothing on record would have no timeline row; an "unspecified special event" marks
# it. No feature reads `special`, so the marker changes nothing the model sees.

NOW_INDEX = {name: i for i, name in enumerate(NOW_FEATURES)}
_DRIVEN = [NOW_INDEX[name] for name in GLUCOSE_DRIVEN]


@dataclass
class Built:
    """A scenario applied: edited events, rebuilt features, the decision row's window (unscaled)."""

    scenario: Scenario
    moment: pd.Timestamp
    day_part: str
    events: pd.DataFrame  # the edited tail of the patient's events fed to build_timeline
    features: pd.DataFrame
    row: int  # the decision row in `features` (its last row)
    ws: WindowSet  # one window
    new_glucose_code: int  # the code a glucose reading now would get (the patient's habit)
    band_now: np.ndarray | None = None  # band_variants(), filled on first use


def _event(pid: int, stamp: pd.Timestamp, code: int, value: float = 0.0, paper: bool = False) -> dict:
    c = CODE_TABLE[code]
    implausible = c.kind in MAX_PLAUSIBLE_DOSE and value > MAX_PLAUSIBLE_DOSE[c.kind]
    return {"patient_id": pid, "timestamp": stamp, "code": code, "value": float(value), "kind": c.kind,
            "detail": c.detail, "paper_time": paper, "censored": "", "implausible": implausible,
            "file": "what-if", "line": 0}


def _is_decision(kind: pd.Series) -> bool:
    return bool(kind.isin(DECISION_KINDS).any())


def _habit_glucose_code(history: pd.DataFrame, part: str) -> int:
    """The glucose code this patient usually records in this day part (else 'unspecified')."""
    glucose = history["kind"].to_numpy() == "glucose"
    if not glucose.any():
        return UNSPECIFIED_GLUCOSE_CODE
    parts = day_parts(history["timestamp"].to_numpy()[glucose])
    mine = history["code"].to_numpy()[glucose][parts == part]
    if not len(mine):
        return UNSPECIFIED_GLUCOSE_CODE
    codes, counts = np.unique(mine, return_counts=True)
    return int(codes[counts == counts.max()].min())  # the commonest code, the smallest on a tie (as mode().min())


def _replace_glucose(events: pd.DataFrame, pid: int, stamp: pd.Timestamp, value: float, code: int) -> pd.DataFrame:
    """One glucose reading at `stamp` with `value`; keeps the slot (code) already recorded there."""
    here = (events["timestamp"] == stamp) & (events["kind"] == "glucose")
    if here.any():
        # build_timeline takes the max slot name of a moment; keep that one so the slot is unchanged
        old = events[here]
        code = int(old["code"].to_numpy()[np.argmax(old["detail"].to_numpy() == old["detail"].max())])
    paper = bool(events.loc[events["timestamp"] == stamp, "paper_time"].any())
    return pd.concat([events[~here], pd.DataFrame([_event(pid, stamp, code, value, paper)])], ignore_index=True)


def _replace_level(events: pd.DataFrame, pid: int, stamp: pd.Timestamp, kind: str, level: str) -> pd.DataFrame:
    here = (events["timestamp"] == stamp) & (events["kind"] == kind)
    out = events[~here]
    if level != "none":
        code = (MEAL_CODES if kind == "meal" else EXERCISE_CODES)[level]
        paper = bool(events.loc[events["timestamp"] == stamp, "paper_time"].any())
        out = pd.concat([out, pd.DataFrame([_event(pid, stamp, code, 0.0, paper)])], ignore_index=True)
    return out


def _moment_of(scenario: Scenario, patient_events: pd.DataFrame) -> tuple[pd.Timestamp, pd.DataFrame, pd.DataFrame]:
    """(decision moment, its recorded events moved there, the history strictly before it)."""
    pe = patient_events
    stamps = pe["timestamp"]
    if scenario.at == NEXT:
        last = stamps.max()
        moment = last + NEXT_GAP
        if scenario.time_of_day:
            t = parse_time_of_day(scenario.time_of_day)
            moment = last.normalize() + pd.Timedelta(hours=t.hour, minutes=t.minute)
            if moment <= last:
                moment += pd.Timedelta(days=1)
        return moment, pe.iloc[:0], pe
    at = scenario.at
    here = _between(pe, at, at)
    if here.empty or not _is_decision(here["kind"]):
        dec = pe.loc[pe["kind"].isin(DECISION_KINDS), "timestamp"]
        near = dec.iloc[int(np.argmin(np.abs((dec - at).dt.total_seconds().to_numpy())))] if len(dec) else None
        raise ValueError(f"{stamp_text(at)} is not a decision point of patient {scenario.patient_id} "
                         f"(no glucose, meal, exercise or hypoglycemia recorded then)"
                         + (f"; the nearest is {stamp_text(near)}" if near is not None else ""))
    moment = at
    if scenario.time_of_day:
        t = parse_time_of_day(scenario.time_of_day)
        moment = at.normalize() + pd.Timedelta(hours=t.hour, minutes=t.minute)
    # Only what happened before the recorded moment is history, and only what precedes the moved
    # moment: events between the two would otherwise jump across the decision.
    history = _between(pe, None, min(at, moment), right_closed=False)
    return moment, here.assign(timestamp=moment), history


def _between(events: pd.DataFrame, first: pd.Timestamp | None, last: pd.Timestamp | None,
             right_closed: bool = True) -> pd.DataFrame:
    """The events with first <= timestamp <= last (< last when not `right_closed`; None = open).
    A slice when the events are sorted by time (a patient's events always are here): a boolean
    mask copies every column, which was a large part of a What-if cache miss."""
    stamps = events["timestamp"]
    if stamps.is_monotonic_increasing:
        t = stamps.to_numpy()
        lo = 0 if first is None else int(np.searchsorted(t, pd.Timestamp(first).to_datetime64(), "left"))
        hi = len(t) if last is None else int(np.searchsorted(t, pd.Timestamp(last).to_datetime64(),
                                                              "right" if right_closed else "left"))
        return events.iloc[lo:max(lo, hi)]
    keep = np.ones(len(events), dtype=bool)
    if first is not None:
        keep &= (stamps >= first).to_numpy()
    if last is not None:
        keep &= (stamps <= last if right_closed else stamps < last).to_numpy()
    return events[keep]


@dataclass
class _HistoryRows:
    """One entry per timestamp of the history (numpy arrays): what the tail bound needs to know.
    Plain arrays, not a DataFrame: band_variants asks for 15 bounds at once, and pandas column
    access was most of a What-if cache miss."""

    stamps: pd.DatetimeIndex
    day_part: np.ndarray  # its name (codes.DAY_PARTS)
    glucose: np.ndarray  # bool: a glucose reading
    glucose_value: np.ndarray  # mean glucose, NaN if none
    regular: np.ndarray  # bool: carries a Regular dose in the history features
    nph: np.ndarray
    ultralente: np.ndarray
    decision: np.ndarray  # bool: a decision point
    folded: np.ndarray  # bool: an insulin-only dose counted at an earlier decision point
    cgm_every: int = 0  # the CGM cadence when the history has CGM readings, else 0


def _history_rows(history: pd.DataFrame, dose_window: int, cgm_every: int) -> _HistoryRows:
    """One row per timestamp of the history: what the tail bound needs to know about it.
    `regular` marks the rows that carry a Regular dose in the history features: a decision
    point with a decision dose, or an insulin-only dose that stayed alone; `folded` the
    insulin-only rows counted at an earlier decision point. Decision points as the timeline has
    them (a CGM reading only at the cadence: counting every one made the tail too short, and the
    What-if's features differ from the pipeline's at 6 of 30 pump-demo moments)."""
    kind = history["kind"].to_numpy()
    t = history["timestamp"].to_numpy()
    value = history["value"].to_numpy(dtype=float)
    cgm = cgm_readings(history)
    # Group by timestamp with numpy (sorted unique + reduceat), as groupby().agg did.
    order = np.argsort(t, kind="stable")
    t, kind, value, cgm = t[order], kind[order], value[order], cgm[order]
    first = np.flatnonzero(np.r_[True, t[1:] != t[:-1]]) if len(t) else np.zeros(0, dtype=np.int64)
    is_glucose = kind == "glucose"

    def any_of(mask: np.ndarray) -> np.ndarray:
        return np.maximum.reduceat(mask, first).astype(bool) if len(first) else np.zeros(0, bool)

    def sum_of(values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, first) if len(first) else np.zeros(0)

    n_glucose = sum_of(is_glucose.astype(float))
    with np.errstate(invalid="ignore", divide="ignore"):
        glucose_value = sum_of(np.where(is_glucose, value, 0.0)) / n_glucose
    regular_u = sum_of(np.where(kind == "regular", np.nan_to_num(value), 0.0))
    stamps = pd.DatetimeIndex(t[first])
    decision = decision_points(np.zeros(len(first)), stamps.to_numpy(), any_of(np.isin(kind, DECISION_KINDS) & ~cgm),
                               any_of(cgm), cgm_every)
    dose, folded = fold_doses(np.zeros(len(first)), stamps.to_numpy().astype("datetime64[m]").astype(np.int64).astype(float),
                              decision, regular_u, dose_window)
    return _HistoryRows(
        stamps=stamps, day_part=day_parts(stamps), glucose=n_glucose > 0,
        glucose_value=glucose_value, regular=np.where(decision, dose, np.where(folded, 0.0, regular_u)) > 0,
        nph=any_of(kind == "nph"), ultralente=any_of(kind == "ultralente"), decision=decision,
        folded=np.asarray(folded, dtype=bool), cgm_every=cgm_every if cgm.any() else 0)


def _tail_start(history: pd.DataFrame, part: str, length: int, glucose_now: float | None,
                dose_window: int = DEFAULT_DOSE_WINDOW_MIN,
                cgm_every: int = DEFAULT_CGM_EVERY_MIN) -> pd.Timestamp | None:
    """Earliest timestamp the decision row's features can depend on (None = keep everything)."""
    if history.empty:
        return None
    rows = _history_rows(history, dose_window, cgm_every)
    return _tail_starts(rows, part, length, [glucose_now])[0]


def _tail_starts(rows: _HistoryRows, part: str, length: int, glucose_nows: list) -> list:
    """_tail_start for each glucose now in `glucose_nows` (one per band in band_variants): what
    does not depend on the glucose now is computed once.

    The window needs `length` rows plus one (its first row's gap to the one before); the history
    features need what features.LOOKBACKS names: the last glucose, Regular, NPH and UltraLente,
    the last Regular doses and decision moments of this day part, and of this glucose band (decision
    moments counted before the window: window edits can only add decision moments inside it).
    """
    stamps = rows.stamps
    n = len(stamps)
    if n <= length + 1:
        return [None] * len(glucose_nows)
    same_dp = rows.day_part == part
    window_start = n - length

    def nth_last(mask: np.ndarray, k: int, before: int = n) -> int:
        # with fewer than k such rows the rolling figures use all of them: keep from the first
        pos = np.flatnonzero(mask[:before])
        return n if len(pos) == 0 else int(pos[-min(k, len(pos))])

    needs = [window_start - 1, nth_last(rows.glucose, LOOKBACKS["glucose"], window_start)]
    for kind in ("regular", "nph", "ultralente"):
        needs.append(nth_last(getattr(rows, kind), LOOKBACKS[kind]))
    needs.append(nth_last(rows.regular & same_dp, LOOKBACKS["regular_same_day_part"]))
    needs.append(nth_last(rows.decision & same_dp, LOOKBACKS["decisions_same_day_part"], window_start))
    needs.append(nth_last(rows.decision & rows.glucose & same_dp, LOOKBACKS["readings_same_day_part"], window_start))
    common = min(needs)
    with np.errstate(invalid="ignore"):
        band = np.floor(rows.glucose_value / GLUCOSE_BAND_MGDL)
    decision_dp = rows.decision & same_dp
    starts = []
    for glucose_now in glucose_nows:
        start = common
        # The patient's own sliding scale: earlier moments with a reading in the same 40 mg/dL band
        # and day part as the glucose now.
        # The sliding scale of features._monotone_scale reads every band up to the glucose now's.
        if glucose_now is not None and not np.isnan(glucose_now):
            top = min(np.floor(glucose_now / GLUCOSE_BAND_MGDL), N_BANDS - 1)
            for b in np.unique(band[decision_dp & (np.minimum(band, N_BANDS - 1) <= top)]):
                same_band = decision_dp & (np.minimum(band, N_BANDS - 1) == b)
                start = min(start, nth_last(same_band, LOOKBACKS["decisions_same_band"], window_start))
            same_band = decision_dp & (band == np.floor(glucose_now / GLUCOSE_BAND_MGDL))  # the raw same-band history
            start = min(start, nth_last(same_band, LOOKBACKS["decisions_same_band"], window_start))
        # A tail must not begin inside a CGM clock interval: its first reading there would pass for the
        # interval's first, a decision point the whole history does not have (1 of 150 pump-demo moments).
        if rows.cgm_every and 0 < start < n:
            start = int(np.searchsorted(stamps, stamps[start].floor(f"{rows.cgm_every}min")))
        # A tail must not begin on a dose folded into a decision point it leaves out: that dose would
        # count alone there. Start at that decision point instead (the last one before the row).
        if 0 < start < n and rows.folded[start]:
            start = int(np.flatnonzero(rows.decision[:start])[-1])
        starts.append(None if start <= 0 else stamps[start])
    return starts


def _day_part_at(stamp: pd.Timestamp) -> str:
    return str(day_parts([stamp])[0])


def _check_window_edits(scenario: Scenario, history: pd.DataFrame, moment: pd.Timestamp, length: int) -> None:
    window_stamps = history["timestamp"].drop_duplicates().sort_values().iloc[-length:]
    for stamp in [*scenario.glucose_readings, *scenario.exercise_earlier]:
        if len(window_stamps) == 0 or not window_stamps.iloc[0] <= stamp < moment:
            first = f"{window_stamps.iloc[0]:%Y-%m-%d %H:%M}" if len(window_stamps) else "?"
            raise ValueError(f"{stamp:%Y-%m-%d %H:%M} is outside the window before the decision moment "
                             f"({first} up to {moment:%Y-%m-%d %H:%M}); edit readings inside it")


def _edit_window(scenario: Scenario, history: pd.DataFrame) -> pd.DataFrame:
    """The history with the scenario's earlier glucose readings and exercise applied."""
    pid = scenario.patient_id
    for stamp, value in scenario.glucose_readings.items():
        history = _replace_glucose(history, pid, stamp, value, code=_habit_glucose_code(history, _day_part_at(stamp)))
    for stamp, level in scenario.exercise_earlier.items():
        history = _replace_level(history, pid, stamp, "exercise", level)
    return history


def _edit_moment(scenario: Scenario, here: pd.DataFrame, moment: pd.Timestamp, code: int) -> pd.DataFrame:
    """The moment's own events with the scenario's edits of the moment applied."""
    pid = scenario.patient_id
    # The Regular given at the moment is the answer, never an input.
    here = here[here["kind"] != "regular"]
    if scenario.glucose_now is not None:
        here = _replace_glucose(here, pid, moment, scenario.glucose_now, code)
    if scenario.meal_now is not None:
        here = _replace_level(here, pid, moment, "meal", scenario.meal_now)
    if scenario.exercise_now is not None:
        here = _replace_level(here, pid, moment, "exercise", scenario.exercise_now)
    if scenario.hypo_now is not None:
        here = here[here["kind"] != "hypo"]
        if scenario.hypo_now:
            here = pd.concat([here, pd.DataFrame([_event(pid, moment, HYPO_CODE)])], ignore_index=True)
    if here.empty:
        here = pd.DataFrame([_event(pid, moment, SPECIAL_CODE)])
    return here


def scenario_events(scenario: Scenario, patient_events: pd.DataFrame, length: int,
                    bounded: bool = True, dose_window: int = DEFAULT_DOSE_WINDOW_MIN,
                    cgm_every: int = DEFAULT_CGM_EVERY_MIN) -> tuple[pd.DataFrame, pd.Timestamp, int]:
    """The patient's events edited by the scenario, cut at the decision moment (and, when
    `bounded`, to the tail that decides the decision row's features); also the moment and the
    glucose code a new reading now gets."""
    moment, here, history = _moment_of(scenario, patient_events)
    part = _day_part_at(moment)
    _check_window_edits(scenario, history, moment, length)
    code = _habit_glucose_code(history, part)
    history = _edit_window(scenario, history)
    here = _edit_moment(scenario, here, moment, code)
    if bounded:
        g = here.loc[here["kind"] == "glucose", "value"]
        start = _tail_start(history, part, length, float(g.mean()) if len(g) else None, dose_window, cgm_every)
        if start is not None:
            history = _between(history, start, None)
    events = pd.concat([history, here], ignore_index=True)
    events = events.sort_values(["timestamp", "code"], kind="stable").reset_index(drop=True)
    return events, moment, code


def build(scenario: Scenario, patient_events: pd.DataFrame, cfg: WindowConfig, bounded: bool = True) -> Built:
    """Apply a scenario: edited events -> build_timeline -> add_features -> the decision window."""
    events, moment, code = scenario_events(scenario, patient_events, cfg.length, bounded, cfg.dose_window,
                                           cfg.cgm_every)
    features = add_features(build_timeline(events, cfg.cgm_every), cfg.dose_window)
    row = len(features) - 1
    if row < cfg.length:
        raise ValueError(f"Patient {scenario.patient_id} has {row} rows of history before "
                         f"{moment:%Y-%m-%d %H:%M}; the model needs {cfg.length}.")
    ws = make_windows(features, cfg, rows=np.array([row]))
    return Built(scenario, moment, str(features["day_part"].iloc[row]), events, features, row, ws, code)


def band_variants(base: Built, patient_events: pd.DataFrame, length: int,
                  dose_window: int = DEFAULT_DOSE_WINDOW_MIN, cgm_every: int = DEFAULT_CGM_EVERY_MIN) -> np.ndarray:
    """(N_BANDS, n_now) now-vectors of the decision moment with a glucose reading in each 40 mg/dL
    band. Each band's events are what `scenario_events` gives for that glucose now (the edited
    events, cut to that band's own bounded tail); the copies are stacked under stand-in patient
    ids and rebuilt by build_timeline + add_features in ONE call, exact because every feature is
    computed per patient. Tests check each band against a one-by-one rebuild."""
    rep = np.clip(np.arange(N_BANDS) * GLUCOSE_BAND_MGDL + GLUCOSE_BAND_MGDL / 2, GLUCOSE_METER_MIN, GLUCOSE_METER_MAX)
    full, moment, _ = scenario_events(replace(base.scenario, glucose_now=float(rep[0])), patient_events, length,
                                      bounded=False, dose_window=dose_window, cgm_every=cgm_every)
    stamps = full["timestamp"].to_numpy()
    history = _between(full, None, moment, right_closed=False)
    rows = _history_rows(history, dose_window, cgm_every)
    glucose_now = (stamps == moment.to_datetime64()) & (full["kind"].to_numpy() == "glucose")
    # All copies in one take of `full` (one per band, each from its own tail start), then the
    # stand-in patient id and the band's glucose now set as whole columns.
    takes, pids, values = [], [], []
    value = full["value"].to_numpy()
    starts = _tail_starts(rows, base.day_part, length, [float(g) for g in rep]) if len(history) else [None] * len(rep)
    for b, (g, start) in enumerate(zip(rep, starts)):
        idx = np.arange(len(full)) if start is None else np.flatnonzero(stamps >= start.to_datetime64())
        takes.append(idx)
        pids.append(np.full(len(idx), -1 - b, dtype=full["patient_id"].dtype))
        values.append(np.where(glucose_now[idx], g, value[idx]))
    copies = full.take(np.concatenate(takes)).reset_index(drop=True)
    copies["patient_id"] = np.concatenate(pids)
    copies["value"] = np.concatenate(values)
    feats = add_features(build_timeline(copies, cgm_every), dose_window)
    last = feats.groupby("patient_id").tail(1)  # the decision row of each copy
    order = np.argsort(-last["patient_id"].to_numpy())  # -1 (band 0), -2 (band 1), ...
    return last[list(now_columns())].to_numpy(dtype=np.float32)[order]


def set_moment(now: np.ndarray, glucose=None, meal=None, exercise=None, hypo=None,
                band_now: np.ndarray | None = None) -> np.ndarray:
    """Rows of unscaled now-vectors with the moment's own edits applied.

    Meal, exercise and hypoglycemia now only set their own columns (add_features reads the
    moment's own events for them). A glucose now also decides the columns of GLUCOSE_DRIVEN (the
    glucose slot, the patient's same-band history and sliding scale): those come from `band_now`
    (rebuilt per band), then the value itself is set. Every other column stays the moment's own,
    so a sweep's rows differ only where glucose acts (what the monotone network's guarantee
    needs). Each argument is None (unchanged) or an array/scalar broadcast over the rows."""
    now = np.array(now, dtype=np.float32, copy=True)
    if glucose is not None:
        g = np.broadcast_to(np.asarray(glucose, dtype=float), (len(now),))
        band = np.clip(np.floor(g / GLUCOSE_BAND_MGDL).astype(int), 0, N_BANDS - 1)
        now[:, _DRIVEN] = band_now[band][:, _DRIVEN]
        now[:, NOW_INDEX["glucose"]] = g
    if meal is not None:
        level = np.vectorize(LEVELS.get)(meal) if not np.isscalar(meal) else LEVELS[meal]
        now[:, NOW_INDEX["meal"]] = level
        for name, values in meal_inputs(np.broadcast_to(np.asarray(level, dtype=float), (len(now),))).items():
            now[:, NOW_INDEX[name]] = values
    if exercise is not None:
        now[:, NOW_INDEX["exercise"]] = LEVELS[exercise]
    if hypo is not None:
        now[:, NOW_INDEX["hypo"]] = float(bool(hypo))
    return now
