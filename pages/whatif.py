"""What-if: change what was known at one decision moment and see how the model's dose answer moves.

A thin page over `insulin_core.whatif.engine.WhatIf` (shared engines, answers and widget glue in
`ui/whatif.py`): pick a model, a patient and a decision point (the list or a click on the
timeline), move the moment's inputs and see the dose, its 90% conformal interval, P(dose), the
change from the unedited prediction, the safety flags, the dose-response curves and an occlusion
explanation. The inputs and results sit in one `st.fragment`, so a slider move reruns only that
part; moment edits use the engine's `rebuild=False` fast path.
"""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import streamlit as st

from insulin_core.data.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, LEVEL_NAMES
from insulin_core.whatif.fidelity import summary_text
from insulin_core.labels import FEATURE_LABELS, FLAG_TITLES
from insulin_core.whatif.scenarios import NEXT, Scenario
from insulin_core.bundles.serving import bundle_experiment, check_bundle_fits
from insulin_core.whatif.engine import MAX_MEAL_G, MealGrams, WhatIf
from ui import charts
from ui.cache import decision_points, window_key
from ui.session import CORE_ERRORS, model_page, shows_errors
from ui.whatif import (answers, edits_from_widgets, engine_for, patient_points, pick_from_timeline,
                       recorded_prediction, recorded_widgets, recorded_window, restore, saved_row, shared_engine_key,
                       window_readings, window_table)

FIDELITY_FIGURES = Path(__file__).resolve().parent.parent / "docs" / "fidelity.json"  # bench/fidelity.py writes it
NEXT_LABEL = "next (after their last entry)"
MONOTONE_NOTE = (":material/trending_up: Monotone by construction: whatever this model learned, its dose never "
                 "falls as glucose now rises, and never rises with exercise now.")
NOT_MONOTONE_NOTE = (":material/warning: This model was saved before the monotone network: its dose can fall as "
                     "glucose rises. The 'not monotone' flag above checks this curve at every moment.")

NEW_PATIENT_HELP = (" For a patient new to the model that threshold is its new-patient one, which training now picks "
                    "on the validation part (MAE plus dose-occasion MAE): fewer missed doses, more unwanted ones.")
NEW_PATIENT_NOTE = ("Patient {patient} is not in this model's training: it answers from what it learned of every "
                    "patient (its unknown-patient row), with no habit of this one's, and suggests a dose above "
                    "P(dose) {threshold:.0%}, its threshold for new patients.")


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
mine = patient_points(points, patient)
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
here = mine.loc[mine["point"] == point]
window = recorded_window(cohort.features, patient, None if at == NEXT else int(here["row"].iloc[0]), length)
actual_dose = None if at == NEXT else float(here["actual_dose"].iloc[0])
shown = window_table(window)
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
    meal_grams = engine.meal_grams(Scenario(patient, at))  # None for AIM94 diaries (meals have no grams)
readings = window_readings(window, at, length)
recorded_values = recorded_widgets(recorded, readings)
if meal_grams is not None:
    recorded_values["whatif_carbs_g"] = min(int(round(meal_grams.recorded)), MAX_MEAL_G)
moment_key = (patient, point, length)
if st.session_state.get("whatif_recorded_for") != moment_key or any(k not in st.session_state for k in recorded_values):
    restore(recorded_values)
    st.session_state["whatif_recorded_for"] = moment_key


# ---- the scenario: inputs and results rerun alone -------------------------------------------------
@st.fragment
def scenario_panel(engine: WhatIf, engine_key: tuple, model_name: str, patient: int, at, recorded_values: dict,
                   readings: list, actual_dose: float | None, meal_grams: MealGrams | None) -> None:
    st.subheader("Change the moment")
    g_col, time_col = st.columns([3, 2])
    with g_col:
        if not recorded_values["whatif_glucose_on"]:
            st.toggle("Add a glucose reading now (none was recorded)", key="whatif_glucose_on", persist_state="session")
        st.slider("Glucose now (mg/dL)", int(GLUCOSE_METER_MIN), int(GLUCOSE_METER_MAX), key="whatif_glucose",
                  persist_state="session", disabled=not st.session_state["whatif_glucose_on"],
                  help=f"The meter range, {GLUCOSE_METER_MIN:g}-{GLUCOSE_METER_MAX:g} mg/dL.")
    time_col.slider("Time of day", dt.time(0, 0), dt.time(23, 59), key="whatif_time", step=dt.timedelta(minutes=5),
                    persist_state="session", help="Moves the decision moment within its day (rebuilds the window).")
    meal_col, ex_col, hypo_col = st.columns([2, 2, 2], vertical_alignment="bottom")
    if meal_grams is None:
        meal_col.segmented_control("Meal now", LEVEL_NAMES, key="whatif_meal", required=True, persist_state="session")
    else:
        carbs = meal_col.number_input("Carbohydrates now (g)", 0, MAX_MEAL_G, key="whatif_carbs_g", step=5,
                                      persist_state="session")
        usual = "no earlier meal to compare" if meal_grams.usual is None else f"usual meal {meal_grams.usual:.0f} g"
        meal_col.caption(f"The model reads **{meal_grams.level(carbs)}** ({usual}; under 2/3 of it less, over 1.5x more).")
    ex_col.segmented_control("Exercise now", LEVEL_NAMES, key="whatif_exercise", required=True, persist_state="session")
    hypo_col.toggle("Hypo symptoms now", key="whatif_hypo", persist_state="session",
                    help="Hypoglycemic symptoms recorded at this moment (AIM94 code 65).")
    if readings:
        with st.expander(f"Glucose readings in the window ({len(readings)})"):
            cols = st.columns(min(len(readings), 5))
            for n, (i, ts, _) in enumerate(readings):
                cols[n % len(cols)].number_input(f"{ts:%a %d %b %H:%M} (mg/dL)", key=f"whatif_reading_{i}", step=1.0,
                                                 format="%.0f", persist_state="session")

    current = {k: st.session_state[k] for k in recorded_values if k in st.session_state}
    edits, refused = edits_from_widgets(recorded_values, current, readings, meal_grams)
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
                help=f"The model's probability that a Regular dose is given now; above {p.threshold:.0%} it "
                     "suggests one." + (NEW_PATIENT_HELP if p.new_patient else ""))
    m[3].metric("Unedited prediction", f"{p.unedited_dose:.0f} U")
    st.caption(p.words(actual_dose))
    if p.new_patient:
        st.info(NEW_PATIENT_NOTE.format(patient=p.patient_id, threshold=p.threshold), icon=":material/person_add:")
    for flag in p.flags:
        st.warning(f"**{FLAG_TITLES.get(flag.kind, flag.kind)}.** {flag.message}", icon=":material/warning:")
    if not p.flags:
        st.caption(":material/verified: No safety flag: inputs inside the training range, P(dose) clear of its "
                   "threshold, the curve does not fall as glucose rises, the dose is within their own history.")

    curve_col, meal_chart_col = st.columns([3, 2])
    current = None if p.inputs["glucose_now"] is None else {
        "glucose": p.inputs["glucose_now"], "dose": p.dose, "low": p.low, "high": p.high}
    # specs built once, data swapped in (ui/chart_specs.py with_data): a slider move rebuilds no chart
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

    st.button("Reset to the recorded data", key="whatif_reset", on_click=restore, args=(recorded_values,),
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
        row = saved_row(p, name, model_name)
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


scenario_panel(engine, engine_key, bundle.name, patient, at, recorded_values, readings, actual_dose, meal_grams)
