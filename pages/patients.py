"""Patients: one or more patients' diaries over time, their daily glucose pattern, their own sliding scale."""
import datetime as dt

import streamlit as st

from ui import charts
from ui.chart_specs import chart_spec
from ui.session import current_cohort, page_header

page_header("Patients", uses_models=False)
cohort = current_cohort()
if cohort is None:
    st.stop()

patients = cohort.patients
if any(p not in patients for p in st.session_state.get("patients_select", [])):
    del st.session_state["patients_select"]  # another data source: the old picks do not exist here
st.session_state.setdefault("patients_select", patients[:1])
chosen = st.multiselect("Patients", patients, key="patients_select", persist_state="session", format_func=lambda p: f"patient {p}")
if not chosen:
    st.warning("Pick at least one patient.", icon=":material/person_search:")
    st.stop()

tl = cohort.features[cohort.features["patient_id"].isin(chosen)]
first, last = tl["timestamp"].min().date(), tl["timestamp"].max().date()
span = st.session_state.get("patients_range")
if not span or span[0] < first or span[1] > last:  # new patients: start with their first four weeks
    st.session_state["patients_range"] = (first, min(last, first + dt.timedelta(days=27)))
start, end = st.slider("Days shown", min_value=first, max_value=last, key="patients_range", format="YYYY-MM-DD")
shown = tl[(tl["timestamp"].dt.date >= start) & (tl["timestamp"].dt.date <= end)]
st.caption(f"{len(shown):,} diary moments from {start} to {end}: "
           f"{int(shown['glucose'].notna().sum()):,} glucose readings, {int((shown['regular'] > 0).sum()):,} Regular doses.")
if shown.empty:
    st.info("No diary entries in this span; widen it.", icon=":material/info:")
    st.stop()

typos = charts.dose_marks(shown.assign(patient=shown["patient_id"]), list(charts.INSULIN_NAMES)).query("implausible")
if len(typos):
    st.caption(":material/warning: " + "; ".join(f"{r.insulin} {r.recorded:g} U on {r.timestamp:%Y-%m-%d %H:%M} (patient {r.patient})"
                                                 for r in typos.itertuples())
               + ": implausible doses (typing errors), drawn at the plausible maximum and marked with a red triangle.")
st.vega_lite_chart(chart_spec(charts.patient_timeline, shown), width="stretch")
left, right = st.columns(2)
left.vega_lite_chart(chart_spec(charts.daily_pattern, tl), width="stretch")
right.vega_lite_chart(chart_spec(charts.sliding_scale, tl), width="stretch")
