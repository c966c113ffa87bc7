"""The What-if page's side of the engine (insulin_core/whatif/engine.py does the work): the shared engines
and answers, the moment's window as the page shows it, and its widgets' glue (the recorded values
of each widget key, widget values -> a scenario's edits, a saved scenario's row).

The engine is shared with `st.cache_resource` (every model is a saved bundle): it holds only
memoised data derived from (bundle, cohort) (rebuilt histories, unedited doses, timelines), no
per-user state. Answers are shared by every session and rerun that asks the same scenario of the
same engine (the first view of a moment is the same for everyone; a slider moved back is asked again).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import pandas as pd
import streamlit as st

from insulin_core.prep.timeline import stamp_text
from insulin_core.data.codes import level_name
from insulin_core.labels import FLAG_TITLES
from insulin_core.bundles.registry import ModelBundle
from insulin_core.whatif.scenarios import NEXT, Scenario, check_glucose
from insulin_core.whatif.engine import MealGrams, Prediction, WhatIf
from ui.cache import bundle_key

WINDOW_SHOWN = ["timestamp", "day_part", "glucose", "regular", "nph", "ultralente", "meal", "exercise", "hypo"]
GLUCOSE_WITHOUT_READING = 150  # where the glucose slider starts when nothing was measured


# ---- shared engines and answers ---------------------------------------------------------------
@st.cache_resource(max_entries=4, show_spinner="Preparing the what-if engine...")
def _shared_engine(bundle_id: tuple, fingerprint: str, _bundle: ModelBundle, _cohort) -> WhatIf:
    return WhatIf(_bundle, _cohort.events, _cohort.features)


def engine_for(bundle: ModelBundle, cohort) -> WhatIf:
    return _shared_engine(*shared_engine_key(bundle, cohort), bundle, cohort)


def shared_engine_key(bundle: ModelBundle, cohort) -> tuple:
    """What names a shared engine: a saved bundle (ui.cache.bundle_key) on a cohort."""
    return bundle_key(bundle), cohort.fingerprint


@st.cache_resource(max_entries=256, show_spinner=False)
def _shared_answers(engine_key: tuple, scenario_key: str, _engine: WhatIf, _scenario: Scenario) -> tuple:
    return _engine.answers(_scenario, points=100)  # the four answers from one forward pass


def answers(engine: WhatIf, engine_key: tuple, scenario: Scenario) -> tuple:
    """(prediction, glucose sweep, meal sweep, explanation) of a scenario; raises CORE_ERRORS."""
    return _shared_answers(engine_key, repr(scenario), engine, scenario)


@st.cache_resource(max_entries=256, show_spinner=False)
def _shared_recorded(engine_key: tuple, patient: int, at_key: str, _engine: WhatIf, _scenario: Scenario):
    return _engine.predict(_scenario)


def recorded_prediction(engine: WhatIf, engine_key: tuple, patient: int, at) -> Prediction:
    return _shared_recorded(engine_key, patient, str(at), engine, Scenario(patient, at))


# ---- the moment and its window --------------------------------------------------------------------
def patient_points(points: pd.DataFrame, patient: int) -> pd.DataFrame:
    """A patient's decision points, newest first, each named by its minute, or its second where
    the record has one (`point`, the picker's value: `timeline.stamp_text`), with its recorded dose
    as `actual` (the timeline chart's)."""
    mine = points[points["patient_id"] == patient].sort_values("timestamp", ascending=False)
    return mine.assign(point=stamp_text(mine["timestamp"]), actual=mine["actual_dose"])


def recorded_window(features: pd.DataFrame, patient: int, row: int | None, length: int) -> pd.DataFrame:
    """The entries the model reads for a moment: the `length` rows before decision row `row`, then
    that row; for the next moment (`row` None), the patient's last `length` rows."""
    if row is None:
        return features.loc[features.index[features["patient_id"] == patient][-length:], WINDOW_SHOWN]
    return features.iloc[row - length:row + 1][WINDOW_SHOWN]


def window_readings(window: pd.DataFrame, at, length: int) -> list[tuple[int, pd.Timestamp, float]]:
    """The glucose readings before the moment, as (i, timestamp, mg/dL): each gets a number input."""
    history = window.iloc[:length] if at != NEXT else window
    return [(i, ts, float(g)) for i, (ts, g) in enumerate(zip(history["timestamp"], history["glucose"])) if pd.notna(g)]


def window_table(window: pd.DataFrame) -> pd.DataFrame:
    """The window as a person reads it: levels by name, hypo yes/no, a dash for no glucose."""
    return window.assign(**{c: window[c].map(level_name) for c in ("meal", "exercise")}, hypo=window["hypo"] > 0,
                         glucose=window["glucose"].map(lambda g: "–" if pd.isna(g) else f"{g:.0f}"))  # ui-honest: no "None"


# ---- widgets <-> scenario ------------------------------------------------------------------------
def recorded_widgets(recorded: Prediction, readings: list) -> dict:
    """Each What-if widget's value for the record (its key -> value)."""
    rec = recorded.inputs
    return {
        "whatif_glucose_on": rec["glucose_now"] is not None,
        "whatif_glucose": int(round(rec["glucose_now"])) if rec["glucose_now"] is not None else GLUCOSE_WITHOUT_READING,
        "whatif_meal": rec["meal_now"], "whatif_exercise": rec["exercise_now"], "whatif_hypo": rec["hypo_now"],
        "whatif_time": dt.time.fromisoformat(rec["time"]),
        **{f"whatif_reading_{i}": g for i, _, g in readings},
    }


def restore(values: dict) -> None:
    """Every what-if widget back to the recorded data (also the reset button's callback)."""
    st.session_state.update(values)


def pick_from_timeline() -> None:
    """The timeline chart's click picks the decision point."""
    picked = st.session_state["whatif_timeline"]["selection"].get("timeline_pick") or []
    if picked and picked[0].get("point"):
        st.session_state["whatif_point"] = picked[0]["point"]


def edits_from_widgets(recorded: Mapping, current: Mapping, readings: list,
                       meal_grams: MealGrams | None = None) -> tuple[dict, list[str]]:
    """A scenario's edits from the What-if page's widget values: only what differs from the record.

    `recorded` holds each widget's value for the record (keys `whatif_glucose_on`, `whatif_glucose`,
    `whatif_meal`, `whatif_exercise`, `whatif_hypo`, `whatif_time`, `whatif_reading_<i>`),
    `current` the values now (a widget not shown in this run keeps its recorded value), `readings`
    the window's glucose readings as (i, timestamp, mg/dL). Where the data has grams (`meal_grams`),
    the meal is the `whatif_carbs_g` field read as the model reads a meal (`MealGrams.level`).
    Returns (edits for `Scenario`, messages for the readings refused: a refused reading keeps its
    recorded value)."""
    if meal_grams is not None and current.get("whatif_carbs_g", recorded["whatif_carbs_g"]) != recorded["whatif_carbs_g"]:
        current = {**current, "whatif_meal": meal_grams.level(current["whatif_carbs_g"])}

    def now(key):
        return current.get(key, recorded[key])

    def changed(key):
        return now(key) if now(key) != recorded[key] else None

    glucose = now("whatif_glucose") if now("whatif_glucose_on") else None
    edits = {
        "glucose_now": float(glucose) if glucose is not None and (
            not recorded["whatif_glucose_on"] or glucose != recorded["whatif_glucose"]) else None,
        "meal_now": changed("whatif_meal"), "exercise_now": changed("whatif_exercise"), "hypo_now": changed("whatif_hypo"),
        "time_of_day": f"{now('whatif_time'):%H:%M}" if changed("whatif_time") is not None else None,
        "glucose_readings": {},
    }
    refused = []
    for i, ts, g in readings:
        value = now(f"whatif_reading_{i}")
        if value is None or value == g:
            continue
        try:
            edits["glucose_readings"][ts] = check_glucose(value, f"the {ts:%a %d %b %H:%M} reading")
        except ValueError as exc:
            refused.append(f"Refused: {exc}. The model uses the recorded {g:.0f} mg/dL.")
    return edits, refused


def saved_row(p: Prediction, name: str, model_name: str) -> dict:
    """A saved scenario as a row of the comparison table (words, never identifiers)."""
    return {"name": name, "model": model_name, "patient": p.patient_id, "moment": f"{p.moment:%Y-%m-%d %H:%M}",
            "day part": p.day_part, "edits": p.scenario.words(), "dose": p.dose, "low": p.low, "high": p.high,
            "P(dose)": round(p.p_dose, 3), "unedited": p.unedited_dose, "change": p.change,
            "flags": "; ".join(FLAG_TITLES.get(f.kind, f.kind) for f in p.flags)}
