"""What-if: change what was known at one decision moment and see how the model's dose answer moves.

A thin page over `insulin_core.whatif.WhatIf`: pick a model, a patient and a decision point (the
list or a click on the timeline), move the moment's inputs and see the dose, its 90% conformal
interval, P(dose), the change from the unedited prediction, the safety flags, the dose-response
curves and an occlusion explanation. The inputs and results sit in one `st.fragment`, so a slider
move reruns only that part; moment edits use the engine's `rebuild=False` fast path.

The engine is shared with `st.cache_resource` (every model is a saved bundle): it holds only
memoised data derived from (bundle, cohort) (rebuilt histories, unedited doses, timelines), no
per-user state.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import streamlit as st

from insulin_core.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, LEVEL_NAMES, level_name
from insulin_core.fidelity import summary_text
from insulin_core.labels import FEATURE_LABELS, LEVEL_PHRASES
from insulin_core.registry import ModelBundle
from insulin_core.serving import bundle_experiment, check_bundle_fits
from insulin_core.whatif import NEXT, Scenario, WhatIf, edits_from_widgets
from ui import charts
from ui.cache import bundle_key, decision_points, window_key
from ui.session import CORE_ERRORS, model_page, shows_errors

FIDELITY_FIGURES = Path(__file__).resolve().parent.parent / "docs" / "fidelity.json"  # bench/fidelity.py writes it
NEXT_LABEL = "next (after their last entry)"
GLUCOSE_WITHOUT_READING = 150  # where the glucose slider starts when nothing was measured
FLAG_TITLES = {"out_of_range": "Outside the training data", "non_monotone": "Dose-response not monotone",
               "above_history": "Far above their own history", "uncertain": "Dose or no dose: a coin toss",
               "flat_zero": "No dose at any glucose"}
MONOTONE_NOTE = (":material/trending_up: Monotone by construction: whatever this model learned, its dose never "
                 "falls as glucose now rises, and never rises with exercise now.")
NOT_MONOTONE_NOTE = (":material/warning: This model was saved before the monotone network: its dose can fall as "
                     "glucose rises. The 'not monotone' flag above checks this curve at every moment.")
WINDOW_SHOWN = ["timestamp", "day_part", "glucose", "regular", "nph", "ultralente", "meal", "exercise", "hypo"]


@st.cache_resource(max_entries=4, show_spinner="Preparing the what-if engine...")
def _shared_engine(bundle_id: tuple, fingerprint: str, _bundle: ModelBundle, _cohort) -> WhatIf:
    return WhatIf(_bundle, _cohort.events, _cohort.features)


def engine_for(bundle: ModelBundle, cohort) -> WhatIf:
    return _shared_engine(*shared_engine_key(bundle, cohort), bundle, cohort)


def shared_engine_key(bundle: ModelBundle, cohort) -> tuple:
    """What names a shared engine: a saved bundle (ui.cache.bundle_key) on a cohort."""
    return bundle_key(bundle), cohort.fingerprint


# Speed: answers are shared by every session and rerun that asks the same scenario of the same engine
# (the first view of a moment is the same for everyone; a slider moved back is asked again).
@st.cache_resource(max_entries=256, show_spinner=False)
def _shared_answers(engine_key: tuple, scenario_key: str, _engine: WhatIf, _scenario: Scenario) -> tuple:
    return _engine.answers(_scenario, points=100)  # the four answers from one forward pass


def answers(engine: WhatIf, engine_key: tuple, scenario: Scenario) -> tuple:
    """(prediction, glucose sweep, meal sweep, explanation) of a scenario; raises CORE_ERRORS."""
    return _shared_answers(engine_key, repr(scenario), engine, scenario)


@st.cache_resource(max_entries=256, show_spinner=False)
def _shared_recorded(engine_key: tuple, patient: int, at_key: str, _engine: WhatIf, _scenario: Scenario):
    return _engine.predict(_scenario)


def recorded_prediction(engine: WhatIf, engine_key: tuple, patient: int, at):
    return _shared_recorded(engine_key, patient, str(at), engine, Scenario(patient, at))


def restore(values: dict) -> None:
    """Every what-if widget back to the recorded data (also the reset button's callback)."""
    st.session_state.update(values)


def pick_from_timeline() -> None:
    picked = st.session_state["whatif_timeline"]["selection"].get("timeline_pick") or []
    if picked and picked[0].get("point"):
        st.session_state["whatif_point"] = picked[0]["point"]


# ---- model, patient, decision point -------------------------------------------------------------
cohort, bundle, (_, patient_col, point_col) = model_page(
    "What if?", "Change what was known at one decision moment and see how the model's dose answer moves.", [2, 1, 2])
window_cfg = bundle_experiment(bundle).window
if window_cfg.target != "decision-point":
    st.info("This model uses the next-row target, which sees no decision-moment glucose or meal; "
            "pick a decision-point model.", icon=":material/info:")
    st.stop()
with shows_errors("This model does not fit the data in use"):
    for note in check_bundle_fits(bundle, cohort):
        st.info(note, icon=":material/info:")
    points = decision_points(window_key(bundle), cohort.source, cohort)
    engine = engine_for(bundle, cohort)
engine_key = shared_engine_key(bundle, cohort)
length = window_cfg.length

patients = sorted(int(p) for p in points["patient_id"].unique())
if st.session_state.get("whatif_patient") not in patients:
    st.session_state["whatif_patient"] = patients[0]
patient = patient_col.selectbox("Patient", patients, key="whatif_patient", persist_state="session",
                                format_func=lambda p: f"patient {p}")
mine = points[points["patient_id"] == patient].sort_values("timestamp", ascending=False)
mine = mine.assign(point=mine["timestamp"].dt.strftime("%Y-%m-%d %H:%M"), actual=mine["actual_dose"])
options = [NEXT, *mine["point"]]
day_parts = dict(zip(mine["point"], mine["day_part"]))
if st.session_state.get("whatif_point") not in options:
    st.session_state["whatif_point"] = options[1] if len(options) > 1 else NEXT
point = point_col.selectbox(
    "Decision point (newest first)", options, key="whatif_point", persist_state="session",
    format_func=lambda p: NEXT_LABEL if p == NEXT else f"{p} ({day_parts[p]})")
at = NEXT if point == NEXT else pd.Timestamp(point)

st.vega_lite_chart(charts.decision_timeline_spec(mine[["point", "timestamp", "day_part", "glucose_now", "actual"]], point),
                   key="whatif_timeline", on_select=pick_from_timeline, selection_mode="timeline_pick", width="stretch")

# ---- the actual window and dose -----------------------------------------------------------------
patient_rows = cohort.features.index[cohort.features["patient_id"] == patient]
if at == NEXT:
    window = cohort.features.loc[patient_rows[-length:], WINDOW_SHOWN]
    actual_dose = None
else:
    row = int(mine.loc[mine["point"] == point, "row"].iloc[0])
    window = cohort.features.iloc[row - length:row + 1][WINDOW_SHOWN]
    actual_dose = float(mine.loc[mine["point"] == point, "actual_dose"].iloc[0])
shown = window.assign(**{c: window[c].map(level_name) for c in ("meal", "exercise")}, hypo=window["hypo"] > 0,
                      glucose=window["glucose"].map(lambda g: "–" if pd.isna(g) else f"{g:.0f}"))  # ui-honest: no "None"
dose_col, window_note_col = st.columns([1, 4], vertical_alignment="bottom")
window_note_col.caption(f"Below: the {length} entries the model reads"
                        + ("" if at == NEXT else ", then the decision point itself (last row)")
                        + ". Insulin in units; meal and exercise as written (none, less, typical, more than usual).")
# the whole width: beside the dose, its nine columns scrolled sideways at 1280 px
st.dataframe(shown, key="whatif_window", hide_index=True, height=35 * (len(shown) + 1) + 3, width="stretch",
             column_config={"timestamp": st.column_config.DatetimeColumn("time", format="ddd DD MMM YYYY HH:mm"),
                            "glucose": st.column_config.TextColumn("glucose (mg/dL)"),  # ui-honest: words
                            "day_part": st.column_config.TextColumn("day part")})
dose_window = window_cfg.dose_window
dose_col.metric("Regular given", "not yet" if actual_dose is None else f"{actual_dose:.0f} U",
                help="The next moment has not happened: there is no recorded dose." if actual_dose is None else
                f"The decision dose: Regular written at this moment plus Regular written on its own up to "
                f"{dose_window} minutes later, before the next decision point.")

with shows_errors("Could not rebuild this decision point"):
    recorded = recorded_prediction(engine, engine_key, patient, at)
history = window.iloc[:length] if at != NEXT else window
readings = [(i, ts, float(g)) for i, (ts, g) in enumerate(zip(history["timestamp"], history["glucose"])) if pd.notna(g)]
rec = recorded.inputs
recorded_widgets = {
    "whatif_glucose_on": rec["glucose_now"] is not None,
    "whatif_glucose": int(round(rec["glucose_now"])) if rec["glucose_now"] is not None else GLUCOSE_WITHOUT_READING,
    "whatif_meal": rec["meal_now"], "whatif_exercise": rec["exercise_now"], "whatif_hypo": rec["hypo_now"],
    "whatif_time": dt.time.fromisoformat(rec["time"]),
    **{f"whatif_reading_{i}": g for i, _, g in readings},
}
moment_key = (patient, point, length)
if st.session_state.get("whatif_recorded_for") != moment_key or any(k not in st.session_state for k in recorded_widgets):
    restore(recorded_widgets)
    st.session_state["whatif_recorded_for"] = moment_key


# ---- the scenario: inputs and results rerun alone -------------------------------------------------
def describe(p, actual_dose: float | None) -> str:
    i = p.inputs
    glucose = f"glucose {i['glucose_now']:.0f} mg/dL" if i["glucose_now"] is not None else "no glucose reading"
    parts = [glucose, LEVEL_PHRASES["meal"][i["meal_now"]], LEVEL_PHRASES["exercise"][i["exercise_now"]],  # ui-honest: words
             "hypoglycemic symptoms" if i["hypo_now"] else "no hypo", f"{i['time']} ({i['day_part']})"]
    if p.scenario.glucose_readings:
        parts.append(f"{len(p.scenario.glucose_readings)} window reading(s) edited")
    change = "" if p.change is None else f"; unedited {p.unedited_dose:.0f} U (change {p.change:+.0f} U)"
    actual = "" if actual_dose is None else f"; actually given {actual_dose:.0f} U"
    return (f"Scenario: {', '.join(parts)} -> {p.dose:.0f} U of Regular (90% interval {p.low:.0f}-{p.high:.0f} U), "
            f"P(dose) {p.p_dose:.0%}{change}{actual}.")


@st.fragment
def scenario_panel(engine: WhatIf, engine_key: tuple, model_name: str, patient: int, at, recorded_widgets: dict,
                   readings: list, actual_dose: float | None) -> None:
    st.subheader("Change the moment")
    g_col, time_col = st.columns([3, 2])
    with g_col:
        if not recorded_widgets["whatif_glucose_on"]:
            st.toggle("Add a glucose reading now (none was recorded)", key="whatif_glucose_on", persist_state="session")
        st.slider("Glucose now (mg/dL)", int(GLUCOSE_METER_MIN), int(GLUCOSE_METER_MAX), key="whatif_glucose",
                  persist_state="session", disabled=not st.session_state["whatif_glucose_on"],
                  help=f"The meter range, {GLUCOSE_METER_MIN:g}-{GLUCOSE_METER_MAX:g} mg/dL.")
    time_col.slider("Time of day", dt.time(0, 0), dt.time(23, 59), key="whatif_time", step=dt.timedelta(minutes=5),
                    persist_state="session", help="Moves the decision moment within its day (rebuilds the window).")
    meal_col, ex_col, hypo_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    meal_col.segmented_control("Meal now", LEVEL_NAMES, key="whatif_meal", required=True, persist_state="session")
    ex_col.segmented_control("Exercise now", LEVEL_NAMES, key="whatif_exercise", required=True, persist_state="session")
    hypo_col.toggle("Hypo symptoms now", key="whatif_hypo", persist_state="session",
                    help="Hypoglycemic symptoms recorded at this moment (AIM94 code 65).")
    if readings:
        with st.expander(f"Glucose readings in the window ({len(readings)})"):
            cols = st.columns(min(len(readings), 5))
            for n, (i, ts, _) in enumerate(readings):
                cols[n % len(cols)].number_input(f"{ts:%a %d %b %H:%M} (mg/dL)", key=f"whatif_reading_{i}", step=1.0,
                                                 format="%.0f", persist_state="session")

    current = {k: st.session_state[k] for k in recorded_widgets if k in st.session_state}
    edits, refused = edits_from_widgets(recorded_widgets, current, readings)
    for message in refused:
        st.error(message, icon=":material/block:")
    try:
        scenario = Scenario(patient, at, **edits)
        prediction, glucose_sweep, meal_sweep, explanation = answers(engine, engine_key, scenario)
    except CORE_ERRORS as exc:
        st.error(f"Could not predict this scenario: {exc}", icon=":material/error:")
        return

    p = prediction
    m = st.columns(4)
    m[0].metric("Predicted Regular dose", f"{p.dose:.0f} U", delta=f"{p.change:+.0f} U vs unedited", delta_color="off")
    m[1].metric("90% interval", f"{p.low:.0f}-{p.high:.0f} U", help="Split-conformal, calibrated on the validation part.")
    uncertain = any(f.kind == "uncertain" for f in p.flags)
    m[2].metric("P(dose)", f"{p.p_dose:.0%}", delta="dose or no dose: a coin toss" if uncertain else None,
                delta_color="off", delta_arrow="off",
                help="The model's probability that a Regular dose is given now.")
    m[3].metric("Unedited prediction", f"{p.unedited_dose:.0f} U")
    st.caption(describe(p, actual_dose))
    for flag in p.flags:
        st.warning(f"**{FLAG_TITLES.get(flag.kind, flag.kind)}.** {flag.message}", icon=":material/warning:")
    if not p.flags:
        st.caption(":material/verified: No safety flag: inputs inside the training range, P(dose) clear of its "
                   "threshold, the curve does not fall as glucose rises, the dose is within their own history.")

    curve_col, meal_chart_col = st.columns([3, 2])
    current = None if p.inputs["glucose_now"] is None else {
        "glucose": p.inputs["glucose_now"], "dose": p.dose, "low": p.low, "high": p.high}
    # specs built once, data swapped in (ui/charts.py with_data): a slider move rebuilds no chart
    curve_col.vega_lite_chart(charts.dose_response_spec(glucose_sweep.table(), glucose_sweep.real_doses, current),
                              width="stretch")
    meal_chart_col.vega_lite_chart(charts.meal_response_spec(meal_sweep.table(), p.inputs["meal_now"]), width="stretch")
    curve_col.caption(MONOTONE_NOTE if engine.bundle.monotone else NOT_MONOTONE_NOTE)
    faithful = summary_text(FIDELITY_FIGURES, engine.bundle.meta.get("created"))  # only this very model's figures
    if faithful:
        with curve_col.expander("How faithful is this curve?"):
            st.markdown(faithful)

    heat_col, why_col = st.columns([3, 2])
    heat_col.vega_lite_chart(charts.attribution_heatmap_spec(explanation.seq.rename(columns=FEATURE_LABELS)),
                             width="stretch")
    with why_col:
        st.markdown(f"**Why.** {explanation.sentence}")
        # a list, not a table: the descriptions are sentences, which a narrow grid cut off
        st.markdown("\n".join(f"- **{row.attribution:+.2f} U**: {row.description}"
                               for row in explanation.groups.head(6).itertuples()))
        st.caption("Occlusion: each input replaced by this patient's average; the change in the expected dose "
                   "(P(dose) x amount).")

    st.button("Reset to the recorded data", key="whatif_reset", on_click=restore, args=(recorded_widgets,),
              icon=":material/restart_alt:")
    saved_panel(p, model_name)


def saved_panel(p, model_name: str) -> None:
    """Name and save the current scenario; compare the saved ones (table, chart, CSV)."""
    saved: list[dict] = st.session_state.setdefault("whatif_saved", [])
    st.subheader("Saved scenarios")
    name_col, save_col = st.columns([3, 1], vertical_alignment="bottom")
    name = name_col.text_input("Scenario name", key="whatif_save_name", placeholder=f"scenario {len(saved) + 1}")
    if save_col.button("Save this scenario", key="whatif_save", icon=":material/bookmark_add:"):
        name = name.strip() or f"scenario {len(saved) + 1}"
        row = {"name": name, "model": model_name, "patient": p.patient_id, "moment": f"{p.moment:%Y-%m-%d %H:%M}",
               "day part": p.day_part, "edits": p.scenario.words(), "dose": p.dose, "low": p.low, "high": p.high,
               "P(dose)": round(p.p_dose, 3), "unedited": p.unedited_dose, "change": p.change,
               "flags": "; ".join(FLAG_TITLES.get(f.kind, f.kind) for f in p.flags)}  # words, never identifiers
        saved[:] = [s for s in saved if s["name"] != name] + [row]  # a name saved again replaces the old one
    if not saved:
        st.caption("Nothing saved yet: name the current scenario and save it to compare it with others.")
        return
    table = pd.DataFrame(saved)
    units = {c: st.column_config.NumberColumn(f"{c} (U)", format="%.1f") for c in ("dose", "unedited", "change")}
    st.dataframe(table, key="whatif_compare", hide_index=True, width="stretch",
                 column_config={**units, "low": st.column_config.NumberColumn("90% low (U)", format="%.1f"),
                                "high": st.column_config.NumberColumn("90% high (U)", format="%.1f"),
                                "P(dose)": st.column_config.NumberColumn(format="%.2f")})
    chart_col, buttons_col = st.columns([3, 1])
    chart_col.altair_chart(charts.scenario_comparison(table), width="stretch")
    buttons_col.download_button("Download the comparison (CSV)", table.to_csv(index=False).encode(),
                                file_name="whatif-scenarios.csv", mime="text/csv", key="whatif_csv",
                                icon=":material/download:")
    # a callback: it runs before the next run draws the list (no rerun call, which a click landing
    # on a whole-page run would refuse with scope="fragment")
    buttons_col.button("Clear the saved scenarios", key="whatif_clear", on_click=saved.clear)


scenario_panel(engine, engine_key, bundle.name, patient, at, recorded_widgets, readings, actual_dose)
