"""What-if (minimum): one decision point, its glucose and meal changed, the predicted dose updating.

The decision-moment features of the chosen window are edited (glucose, meal) and the model asked
again. The what-if work (insulin_core/whatif.py: scenarios, sweeps, intervals) replaces these calls.
"""
import numpy as np
import pandas as pd
import streamlit as st

from insulin_core.codes import GLUCOSE_METER_MAX, GLUCOSE_METER_MIN, LEVELS
from insulin_core.serving import bundle_experiment, check_bundle_fits, predict_windows, windows_for
from ui import charts
from ui.state import page_header, current_cohort, decision_points, model_picker, shows_errors, window_key

page_header("What if?", "Change what was known at one decision moment and see how the model's dose answer moves.")
cohort = current_cohort()
if cohort is None:
    st.stop()
bundle = model_picker()
if bundle is None:
    st.stop()
if bundle_experiment(bundle).window.target != "decision-point":
    st.info("This model uses the next-row target, which sees no decision-moment glucose or meal; "
            "pick a decision-point model.", icon=":material/info:")
    st.stop()
with shows_errors("This model does not fit the data in use"):
    check_bundle_fits(bundle, cohort)
    points = decision_points(window_key(bundle), cohort.source, cohort)

patients = sorted(int(p) for p in points["patient_id"].unique())
if st.session_state.get("whatif_patient") not in patients:
    st.session_state["whatif_patient"] = patients[0]
left, right = st.columns([1, 3])
patient = left.selectbox("Patient", patients, key="whatif_patient", persist_state="session", format_func=lambda p: f"patient {p}")
mine = points[points["patient_id"] == patient]
rows = mine["row"].tolist()
labels = {int(r): f"{t:%Y-%m-%d %H:%M} ({d})" for r, t, d in zip(mine["row"], mine["timestamp"], mine["day_part"])}


def reset_to_recorded() -> None:
    """A new decision point starts from what was recorded there."""
    at = mine[mine["row"] == st.session_state["whatif_point"]].iloc[0]
    st.session_state["whatif_glucose"] = int(at["glucose_now"]) if pd.notna(at["glucose_now"]) else 150
    st.session_state["whatif_meal"] = {v: k for k, v in LEVELS.items()}.get(float(at["meal_now"]), "none")


if st.session_state.get("whatif_point") not in rows:
    st.session_state["whatif_point"] = rows[len(rows) // 2]
    reset_to_recorded()
point = right.select_slider("Decision point", rows, key="whatif_point", persist_state="session", format_func=labels.get,
                            on_change=reset_to_recorded)

g_col, m_col = st.columns(2)
glucose = g_col.slider("Glucose at this moment (mg/dL)", int(GLUCOSE_METER_MIN), int(GLUCOSE_METER_MAX),
                       key="whatif_glucose", persist_state="session")
meal = m_col.select_slider("Meal", list(LEVELS), key="whatif_meal", persist_state="session")

with shows_errors("Could not predict"):
    ws = windows_for(bundle, cohort.features, np.array([point]))
    recorded = float(predict_windows(bundle, ws)[0])
    now = list(ws.now_features)
    grid = np.arange(40, 401, 10, dtype=np.float32)
    # One batch: the edited moment first, then the same moment over a glucose grid for the curve.
    batch = ws.subset(np.zeros(len(grid) + 1, dtype=int))
    batch.now[:, now.index("glucose")] = np.concatenate([[glucose], grid])
    batch.now[:, now.index("has_glucose")] = 1.0
    batch.now[:, now.index("meal")] = LEVELS[meal]
    doses = predict_windows(bundle, batch)

at = mine[mine["row"] == point].iloc[0]
actual = float(cohort.features["regular"].iloc[point])
cols = st.columns(3)
cols[0].metric("Predicted Regular dose", f"{doses[0]:.0f} U", delta=f"{doses[0] - recorded:+.0f} U vs as recorded",
               delta_color="off")
cols[1].metric("Predicted as recorded", f"{recorded:.0f} U",
               help=f"glucose {at['glucose_now']:.0f} mg/dL" if pd.notna(at["glucose_now"]) else "no glucose recorded")
cols[2].metric("Actually given", f"{actual:.0f} U")
st.caption(f"Scenario: glucose {glucose} mg/dL, meal {meal} -> the model says {doses[0]:.0f} U of Regular.")
sweep = pd.DataFrame({"glucose": grid, "predicted": doses[1:]})
st.altair_chart(charts.dose_response(sweep, glucose), width="stretch")
