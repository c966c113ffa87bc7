"""Predictions: a model's Regular dose beside the actual one, week by week, with the baselines."""
import streamlit as st

from insulin_core.models.baselines import BASELINES
from insulin_core.labels import METRIC_LABELS, PART_LABELS, PREDICTOR_LABELS, describe_columns, plain_table
from insulin_core.bundles.serving import (NOTE_EXACT, NOTE_NO_DOSE, NOTE_NO_DOSE_PERFECT, bundle_experiment, check_bundle_fits,
                                  interval_coverage_of, metrics_of, per_patient_of)
from ui import charts, tables
from ui.chart_specs import chart_spec
from ui.cache import predictions
from ui.session import model_page, shows_errors

cohort, bundle, (_, patient_col, part_col) = model_page("Predictions", None, [2, 1, 1])
with shows_errors("This model does not fit the data in use"):
    for note in check_bundle_fits(bundle, cohort):
        st.info(note, icon=":material/info:")

window = bundle_experiment(bundle).window
if window.target == "decision-point":
    st.caption(f"**Actual** is the decision dose: the Regular written at the decision point plus Regular written on "
               f"its own row up to {window.dose_window} minutes later, before the next decision point"
               + (" (0: the moment's own dose only)." if window.dose_window == 0 else ".")
               + (f" On the CGM stream a reading is a decision point once per {window.cgm_every} minutes (the "
                  "model's cadence); meals, fingersticks and exercise always are."
                  if cohort.has_cgm else ""))

# The strongest baseline (two-stage gradient boosting) and the patient's own sliding scale by default.
st.session_state.setdefault("pred_baselines", ["two_stage_gbm", "sliding_scale"])
st.session_state.setdefault("pred_part", "test")
baselines = st.multiselect("Baselines on the charts", list(BASELINES), key="pred_baselines", persist_state="session",
                           format_func=lambda b: PREDICTOR_LABELS.get(b, b),
                           help="The gradient-boosting baselines take a few seconds each the first time.")
with shows_errors("Could not predict with this model"):
    table = predictions(bundle, cohort, baselines)

patients = sorted(int(p) for p in table["patient_id"].unique())
if st.session_state.get("pred_patient") not in patients:
    st.session_state["pred_patient"] = patients[0]
patient = patient_col.selectbox("Patient", patients, key="pred_patient", persist_state="session", format_func=lambda p: f"patient {p}")
part = part_col.selectbox("Decision points scored", ["test", "val", "train", "all"], key="pred_part",
                          persist_state="session", format_func=lambda p: PART_LABELS.get(p, str(p)),
                          help="The model's own split: the test part was never used in training.")

rows = table[table["patient_id"] == patient]
weeks = sorted(rows["week"].dt.date.unique())
if st.session_state.get("pred_week") not in weeks:  # new patient: start at their first test week
    test_weeks = sorted(rows.loc[rows["part"] == "test", "week"].dt.date.unique())
    st.session_state["pred_week"] = test_weeks[0] if test_weeks else weeks[0]
week = st.select_slider("Week starting", weeks, key="pred_week", persist_state="session", format_func=lambda d: d.strftime("%Y-%m-%d"))
in_week = rows[rows["week"].dt.date == week]
st.caption(f"Patient {patient}, week of {week:%d %b %Y}: {len(in_week)} decision points "
           f"({', '.join(f'{n} in the {PART_LABELS[p]}' for p, n in in_week['part'].value_counts().items())}).")
st.vega_lite_chart(chart_spec(charts.actual_vs_predicted, in_week, ["predicted", *baselines]), width="stretch")

scored = rows if part == "all" else rows[rows["part"] == part]
if scored.empty:
    st.info(f"Patient {patient} has no decision points in the {PART_LABELS[part]} of this model's split.",
            icon=":material/info:")
else:
    left, right = st.columns(2)
    left.vega_lite_chart(chart_spec(charts.predicted_scatter, scored), width="stretch")
    right.vega_lite_chart(chart_spec(charts.residuals, scored), width="stretch")
    # two narrow tables rather than one of eleven columns, which scrolled sideways at 1280 px
    scores = metrics_of(scored, "all")
    for heading, suffix, count in (("all {n} decision points", "", "n"), ("the {n} dose occasions only", "_dose", "n_dose")):
        st.markdown(f"**Patient {patient}, {PART_LABELS[part]}: {heading.format(n=int(scores[count].iloc[0]))}**")
        if scores[count].iloc[0] == 0:
            st.caption("No Regular was given here: nothing to score.")
            continue
        columns = {f"{m}{suffix}": m for m in ("mae", "rmse", "r2", "within_1u")}
        counts = ("missed", "unwanted") if suffix == "" else ()  # the two errors of a 0/dose answer
        tables.show(plain_table(scores[["name", *columns, *counts]].rename(columns=columns)),
                    key=f"pred_patient_metrics{suffix}", digits=3, percent=(METRIC_LABELS["within_1u"],),
                    integers=tuple(METRIC_LABELS[c] for c in counts))

st.subheader(f"90% intervals ({PART_LABELS[part]})")
st.caption("Each predictor's split-conformal interval, calibrated on the validation part of the model's split: "
           "how often it holds the actual dose here, and how wide it is.")
coverage = plain_table(interval_coverage_of(table, part)).rename(columns={
    "model or baseline": "predictor", "coverage": "coverage", "coverage_dose_rows": "on dose occasions",
    "coverage_no_dose_rows": "where no dose was given", "mean_width_u": "mean width (U)"})
tables.show(coverage, key="pred_coverage", percent=("coverage", "on dose occasions", "where no dose was given"))

NOTE_WORDS = {
    NOTE_NO_DOSE_PERFECT: "no Regular was written in this part and the model predicted 0 U throughout, so there was "
                          "nothing to get wrong; there is no dose-occasion score.",
    NOTE_NO_DOSE: "no Regular was written in this part: there is no dose-occasion score.",
    NOTE_EXACT: "every dose predicted exactly: worth a look at the raw rows on the Patients page.",
}
st.subheader(f"Every patient (LSTM-GRU model, {PART_LABELS[part]})")
per_patient = per_patient_of(table, part).rename(columns={"patient_id": "patient", **METRIC_LABELS})
# the notes go under the table: a column of sentences made the table scroll sideways at 1280 px
tables.show(per_patient.drop(columns="note"), key="pred_per_patient", digits=3,
            integers=("decision points", "dose occasions"), percent=(METRIC_LABELS["within_1u"],))
for note, who in per_patient[per_patient["note"] != ""].groupby("note")["patient"]:
    st.caption(f"**{note.capitalize()}** (patient{'s' if len(who) > 1 else ''} {', '.join(map(str, who))}): "
               + NOTE_WORDS[note])
csv_col, columns_col = st.columns(2)
# the CSVs are made when clicked (a callable), not on every rerun of every session
csv_col.download_button("Download the predictions (CSV)", lambda table=table: table.to_csv(index=False).encode(),
                        file_name=f"predictions-{bundle.name}.csv", mime="text/csv", key="pred_csv",
                        icon=":material/download:")
columns_col.download_button("What each CSV column holds (CSV)",
                            lambda cols=tuple(table.columns): describe_columns(cols).to_csv(index=False).encode(),
                            file_name=f"predictions-{bundle.name}.columns.csv", mime="text/csv", key="pred_csv_columns",
                            icon=":material/description:")
