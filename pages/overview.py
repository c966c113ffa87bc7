"""Overview: pick the data source, see the cohort summary and the data-quality report."""
from pathlib import Path

import pandas as pd
import streamlit as st

from insulin_core.data.download import UCI_URL, download_aim94
from insulin_core.data.source import DataSource, check_allowed_folder, demo_source
from ui import charts
from ui.chart_specs import chart_spec
from ui.cache import cached_cohort
from ui.session import adopt_upload, current_cohort, current_source, env_data_dir, load_upload, page_header, set_source, shows_errors

page_header("insulin-dash", "Predicts a patient's next mealtime (Regular or rapid-acting) insulin dose from their diary "
            "or pump and CGM export with a hybrid LSTM-GRU network.",
            uses_models=False)

SOURCES = {"demo": "Demo cohort (synthetic)", "folder": "A folder of diaries or exports", "upload": "Upload files",
           "download": "Download from UCI"}
KIND_OF_SOURCE = {"demo": "demo", "env": "folder", "folder": "folder", "upload": "upload"}  # DataSource.kind -> radio
UPLOAD_HELP = ("The format is read from the files: AIM94 diaries (data-01 ... data-70), Nightscout API exports "
               "(entries and treatments JSON), a Tidepool JSON export, OhioT1DM XML, or HUPA-UCM CSV. Parsed in "
               "memory for this session only, never saved.")
DOWNLOAD_DIR = Path(__file__).resolve().parent.parent / "data" / "aim94"


def use(source: DataSource) -> None:
    """Switch to `source` only when it loads with some usable line; otherwise keep the current one and say why."""
    with shows_errors(f"Could not use {source.label}", stop=False):
        if reason := cached_cohort(source).report.unusable_reason():
            raise ValueError(f"nothing usable there ({reason}); the data source was not changed")
        set_source(source)
        switched(source)


def switched(source: DataSource) -> None:
    st.toast(f"Now using {source.label}.", icon=":material/check_circle:")
    st.rerun()  # so the sidebar and every count below show the new data


with st.container(border=True):
    st.markdown("**:material/database: Data source**")
    # the radio starts on the source actually in use ($AIM94_DIR is a folder), never on "demo" over real data
    st.session_state.setdefault("source_kind", KIND_OF_SOURCE.get(current_source().kind, "demo"))
    st.session_state.setdefault("source_folder", env_data_dir() or "")
    kind = st.radio("Where the diaries come from", list(SOURCES), format_func=SOURCES.get, key="source_kind", persist_state="session",
                    horizontal=True)
    if kind == "demo":
        st.caption("Made up, no real person's data: 20 patients in the exact AIM94 format (1990s paper and "
                   "meter diaries), or 6 pump and CGM patients as Nightscout exports (a reading every 5 minutes, "
                   "boluses, carbohydrates in grams).")
        aim94_demo, modern_demo = st.columns(2)
        if aim94_demo.button("Use the AIM94-format demo", key="source_use_demo"):
            use(DataSource("demo"))
        if modern_demo.button("Use the pump + CGM demo", key="source_use_modern_demo"):
            use(demo_source("modern"))
    elif kind == "folder":
        folder = st.text_input("Folder with AIM94 files (data-01 ... data-70) or one export", key="source_folder",
                               persist_state="session")
        if st.button("Use this folder", key="source_use_folder"):
            if not folder.strip():
                st.error("Type the path of a folder first.", icon=":material/error:")
            else:
                with shows_errors("Could not use this folder", stop=False):
                    use(DataSource("folder", str(check_allowed_folder(folder.strip()))))
    elif kind == "upload":
        files = st.file_uploader("Diary or export files", accept_multiple_files=True, key="source_upload",
                                 help=UPLOAD_HELP)
        if st.button("Use the uploaded files", key="source_use_upload", disabled=not files):
            with shows_errors("Could not use the uploaded files", stop=False):
                cohort = load_upload(files)
                adopt_upload(cohort)
                switched(cohort.source)
    else:
        st.caption(f"Fetches {UCI_URL} and keeps the data-NN files in `{DOWNLOAD_DIR}`.")
        if st.button("Download the AIM94 data set", key="source_download_go"):
            bar = st.progress(0.0, text="Connecting to UCI...")

            def progress(done: int, total: int | None) -> None:
                share = done / total if total else 0.0
                bar.progress(min(share, 1.0), text=f"Downloaded {done / 1e6:.2f} MB" + (f" of {total / 1e6:.2f} MB" if total else ""))

            with shows_errors("Download failed", stop=False):
                result = download_aim94(DOWNLOAD_DIR, progress=progress)
                bar.progress(1.0, text=f"{result.files} files, {result.lines:,} lines")
                use(DataSource("folder", str(result.dest)))

cohort = current_cohort()
if cohort is None:
    st.caption(f"In use: **{current_source().label}**")
    st.stop()
st.caption(f"In use: **{cohort.data_label}**")
summary = cohort.summary()
if summary["synthetic"]:
    st.info(f"Showing the **{summary['source']}**. Pick real data under *Data source* to use it.",
            icon=":material/science:")

cols = st.columns(5)
cols[0].metric("Patients", summary["patients"])
cols[1].metric("Median days per patient", f"{summary['days_median']:.0f}")
cols[2].metric("Events", f"{summary['events']:,}")
cols[3].metric("Decision points", f"{summary['decision_points']:,}")
cols[4].metric("Regular doses" if cohort.format == "AIM94" else "Boluses (in Regular's role)", f"{summary['regular_doses']:,}")

fold = summary["decision_doses"]
st.markdown(
    f"**What is predicted: the decision dose.** Many patients wrote the Regular dose on a row of its own a few "
    f"minutes after the reading. Of the {fold['insulin_only_regular']:,} Regular doses written that way, "
    f"**{fold['folded']:,}** fall within {fold['dose_window_min']} minutes of a decision point and count as its dose "
    f"({fold['decision_points_with_folded_dose']:,} decision points; {fold['patients_mostly_late']} patients wrote "
    f"most of their doses this way); **{fold['alone']:,}** stay alone, with no decision point before them, and "
    f"are history only.")

KIND_WORDS = {"glucose": "glucose readings", "regular": "Regular insulin", "nph": "NPH insulin",
              "ultralente": "UltraLente insulin", "meal": "meals", "exercise": "exercise", "hypo": "hypoglycemic symptoms",
              "special": "other entries"}
by_kind = pd.DataFrame({"kind": [KIND_WORDS.get(k, k) for k in summary["events_by_kind"]],
                        "events": list(summary["events_by_kind"].values())})
report = cohort.report
left, right = st.columns(2)
left.vega_lite_chart(chart_spec(charts.counts_bar, by_kind, "kind", "events", "Events by kind"), width="stretch")
with right:
    st.subheader("Data quality")
    record = report.record_name
    st.write(f"{report.lines:,} {record}s read ({cohort.format}), {report.accepted:,} accepted, "
             f"{report.rejected_total:,} rejected.")
    if report.units:
        st.caption("Glucose records by unit: " + ", ".join(f"{n:,} in {unit}" for unit, n in report.units.items())
                   + " (every value shown in mg/dL).")
    if report.rejected:
        # a list, not a table: the reasons are sentences, which a half-width grid cut off
        st.markdown("\n".join(f"- **{n:,}** {record if n == 1 else record + 's'}: {report.reason_words(r)}"
                               for r, n in report.rejected.items()))
        for reason, examples in report.examples.items():
            with st.expander(f"{report.reason_words(reason)}: examples"):
                st.dataframe(pd.DataFrame(examples), width="stretch", hide_index=True)
    else:
        st.caption(f"No {record} was rejected.")
    if report.skipped_files:
        with st.expander(f"{len(report.skipped_files)} file(s) or folder entries not read"):
            st.markdown("\n".join(f"- `{entry}`" for entry in report.skipped_files))
    if report.assumed:
        st.markdown("\n".join(f"- **{n:,}** read assuming: {why}" for why, n in report.assumed.items()))
    with st.expander("What the loader does with odd values"):
        for what, action in report.actions.items():
            st.markdown(f"- **{what}**: {action}")
