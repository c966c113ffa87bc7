"""Train: choose data, window and network sizes; start a run in the background (insulin_core/jobs/runs.py);
watch this browser's runs (progress, time left, loss curve, Stop); see, rename or delete each finished run."""
import pandas as pd
import streamlit as st

from insulin_core.models.baselines import BASELINES
from insulin_core.data.codes import MAX_DOSE_WINDOW_MIN
from insulin_core.configs import MAX_MEMBERS, MAX_WINDOW
from insulin_core.labels import label, plain_table
from insulin_core.prep.splits import SPLITS
from insulin_core.prep.timeline import MAX_CGM_EVERY_MIN
from insulin_core.prep.windows import TARGETS
from ui import charts
from ui.session import form_defaults, current_cohort, page_header, set_active_model, shows_errors
from ui.train_form import FORM_DEFAULTS, run_spec_of
from ui.training import owner_token, run_manager, runs_panel, runs_table, started_here

WIDTHS = [4, 8, 16, 32, 64, 128, 256]

page_header("Train a model")
owner = owner_token()
cohort = current_cohort()
if cohort is None:
    st.stop()
form_defaults(FORM_DEFAULTS, "train_patients", cohort)

with st.form("train_form", border=True):
    data_col, net_col, fit_col = st.columns(3)
    with data_col:
        st.markdown("**Data**")
        st.multiselect("Patients (none picked = all)", cohort.patients, key="train_patients", persist_state="session",
                       format_func=lambda p: f"patient {p}")
        st.slider("Window length (diary rows before the decision)", 1, MAX_WINDOW, key="train_window", persist_state="session")
        st.selectbox("Target", TARGETS, key="train_target", persist_state="session", format_func=label,
                     help="decision-point: the dose at a moment with a reading or meal, from what is known then. "
                          "next-row: the seed's formulation (flatters the score, see docs).")
        st.number_input("Dose window (minutes after the reading)", 0, MAX_DOSE_WINDOW_MIN, step=5,
                        key="train_dose_window", persist_state="session",
                        help="What is predicted: the decision dose, i.e. the Regular written at the decision point plus "
                             "Regular written on its own row up to this many minutes later (before the next decision "
                             "point). Many patients logged the dose minutes after the reading. 0 = the moment's own dose.")
        if cohort.has_cgm:  # a CGM stream: how often a reading is a moment to decide
            st.number_input("CGM decision cadence (minutes)", 1, MAX_CGM_EVERY_MIN, step=5, key="train_cgm_every",
                            persist_state="session",
                            help="A CGM reading is a decision point only as the first reading in each clock interval "
                                 "of this many minutes; meals, fingersticks and exercise always are. The model "
                                 "keeps it: its What-if and evaluation use the same cadence.")
        st.selectbox("Split", SPLITS, key="train_split", persist_state="session", format_func=label,
                     help="chrono: each patient's last days are the test part; patients: unseen patients; random.")
        st.number_input("Seed", 0, 2**31 - 1, step=1, key="train_seed", persist_state="session")
    with net_col:
        st.markdown("**Network**")
        st.select_slider("LSTM hidden units", WIDTHS, key="train_lstm_hidden", persist_state="session")
        st.slider("LSTM layers", 1, 4, key="train_lstm_layers", persist_state="session")
        st.select_slider("GRU hidden units", WIDTHS, key="train_gru_hidden", persist_state="session")
        st.slider("GRU layers", 1, 4, key="train_gru_layers", persist_state="session")
        st.text_input("Dense layers (widths, comma separated)", key="train_dense", persist_state="session")
        st.slider("Dropout", 0.0, 0.9, step=0.05, key="train_dropout", persist_state="session")
        st.select_slider("Patient embedding (0 = pooled model)", [0, 2, 4, 8, 16, 32], key="train_embedding", persist_state="session")
        st.toggle("Attention over the window", key="train_attention", persist_state="session",
                  help="Adds a learned weighting of the window's steps beside the GRU's last state.")
        st.slider("Ensemble members", 1, MAX_MEMBERS, key="train_members", persist_state="session",
                  help="Networks trained side by side whose answers are averaged; each adds its training time.")
    with fit_col:
        st.markdown("**Fitting**")
        st.slider("Epochs (at most)", 1, 300, key="train_epochs", persist_state="session")
        st.slider("Early-stopping patience (epochs)", 1, 50, key="train_patience", persist_state="session")
        st.select_slider("Learning rate", [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2], key="train_lr", persist_state="session",
                         format_func=lambda v: f"{v:g}")
        st.select_slider("Batch size", [16, 32, 64, 128, 256, 512, 1024], key="train_batch", persist_state="session")
        st.multiselect("Baselines to compare with", list(BASELINES), key="train_baselines", persist_state="session",
                       format_func=label,
                       help="The gradient-boosting baselines take a few seconds each.")
    submitted = st.form_submit_button("Train", type="primary", icon=":material/play_arrow:", key="train_go")


if submitted:
    with shows_errors("These settings cannot be used"):
        spec = run_spec_of(st.session_state, cohort)
    with shows_errors("Could not start the training", stop=False):
        started_here().add(run_manager().start(owner, cohort.features, spec))

st.subheader("Your runs")
runs = runs_panel(owner)
if not runs:
    st.info("Set the options and press **Train**. Training runs in the background: switch pages or reload, "
            "it goes on. A tiny model (hidden 8, a few epochs) trains in seconds.", icon=":material/model_training:")
    st.stop()
st.dataframe(runs_table(runs), key="train_runs_table", width="stretch", hide_index=True,
             column_config={"test MAE (U)": st.column_config.NumberColumn(format="%.2f")})
done = [r for r in runs if not r.active]
if not done:
    st.stop()

by_id = {r.id: r for r in done}
if st.session_state.get("train_run_pick") not in by_id:
    st.session_state["train_run_pick"] = done[0].id
pick = st.selectbox("Show the run", list(by_id), key="train_run_pick", format_func=lambda i: f"{by_id[i].name} "
                    f"({by_id[i].state}, started {by_id[i].created[:19].replace('T', ' ')})")
last = by_id[pick]

st.subheader(f"Result: {last.name}")
if last.state == "failed":
    st.warning(f"This run failed: {last.error}", icon=":material/error:")
else:
    stopped = last.stop_reason == "stopped_by_user"
    (st.warning if stopped or last.stop_reason == "diverged" else st.success)(last.message, icon=":material/flag:")
    st.caption(f"Windows: {last.sizes['train']:,} train, {last.sizes['val']:,} validation, {last.sizes['test']:,} test. "
               f"Seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in last.seconds.items()))
    headline, model_row = last.all_rows(), last.headline()
    cols = st.columns(4)
    cols[0].metric("MAE (units)", f"{model_row['mae']:.2f}")
    cols[1].metric("RMSE (units)", f"{model_row['rmse']:.2f}")
    cols[2].metric("R²", f"{model_row['r2']:.2f}")
    cols[3].metric("Within ±1 U", f"{model_row['within_1u']:.0%}")
    left, right = st.columns(2)
    left.altair_chart(charts.loss_curve(pd.DataFrame(last.history)), width="stretch")
    right.altair_chart(charts.metric_bars(headline.assign(name=headline["name"].map(lambda n: label(n))), "mae"),
                       width="stretch")
    shown = plain_table(headline)
    st.dataframe(shown, key="train_metrics_table", width="stretch", hide_index=True,
                 column_config={c: st.column_config.NumberColumn(format="%.3f")
                                for c in shown.columns if shown[c].dtype.kind == "f"})

with st.container(border=True):
    st.markdown("**This run**" + (f": saved as the model **{last.bundle}**" if last.bundle else ""))
    name_col, rename_col, use_col, delete_col = st.columns([3, 1, 1.3, 1], vertical_alignment="bottom")
    if last.bundle:
        name_col.text_input("New name", key="train_rename", placeholder="e.g. lstm64-window10")
        if rename_col.button("Rename", key="train_rename_go", icon=":material/edit:"):
            with shows_errors("Could not rename the run", stop=False):
                was_active = st.session_state.get("active_model") == f"saved:{last.bundle}"
                new = run_manager().rename(last.id, owner, st.session_state["train_rename"])
                if was_active:
                    set_active_model(f"saved:{new}")
                st.rerun()
        if use_col.button("Use this model", key="train_use", help="Makes it the model of the Predictions and What-if pages."):
            set_active_model(f"saved:{last.bundle}")
            st.rerun()
    if delete_col.button("Delete", key="train_delete", icon=":material/delete:"):
        st.session_state["train_delete_armed"] = last.id
    if st.session_state.get("train_delete_armed") == last.id:
        st.warning(f"Delete the run **{last.name}**" + (" and its saved model" if last.bundle else "") + "?",
                   icon=":material/delete:")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", key="train_delete_yes", type="primary"):
            st.session_state.pop("train_delete_armed", None)
            with shows_errors("Could not delete the run", stop=False):
                run_manager().delete(last.id, owner)
                st.rerun()
        if no.button("Keep it", key="train_delete_no"):
            st.session_state.pop("train_delete_armed", None)
            st.rerun()
