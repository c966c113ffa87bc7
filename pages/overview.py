"""Overview: data source, cohort summary, data-quality report."""
import pandas as pd
import streamlit as st

from ui.state import DISCLAIMER, current_cohort

st.title("insulin-dash")
st.warning(DISCLAIMER, icon=":material/warning:")

cohort = current_cohort()
if cohort is None:
    st.stop()
summary = cohort.summary()
if summary["synthetic"]:
    st.info(f"Showing the **{summary['source']}**. Point `AIM94_DIR` at the real files to use them.",
            icon=":material/science:")
else:
    st.caption(f"Source: {summary['source']}")

cols = st.columns(4)
cols[0].metric("Patients", summary["patients"])
cols[1].metric("Events", f"{summary['events']:,}")
cols[2].metric("Decision points", f"{summary['decision_points']:,}")
cols[3].metric("Regular doses", f"{summary['regular_doses']:,}")
st.subheader("Events by kind")
st.dataframe(pd.Series(summary["events_by_kind"], name="events").rename_axis("kind"), width="stretch")

report = cohort.report
st.subheader("Data quality")
st.write(f"{report.lines:,} lines read, {report.accepted:,} accepted, {report.rejected_total:,} rejected.")
rejected = pd.DataFrame([{"reason": r, "lines": n} for r, n in report.rejected.items()])
if len(rejected):
    st.dataframe(rejected, key="rejected_table", width="stretch", hide_index=True)
    for reason, examples in report.examples.items():
        with st.expander(f"{reason}: examples"):
            st.dataframe(pd.DataFrame(examples), width="stretch", hide_index=True)
with st.expander("What the loader does with odd values"):
    for what, action in report.actions.items():
        st.markdown(f"- **{what}**: {action}")
