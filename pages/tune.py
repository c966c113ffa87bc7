"""Tune: an Optuna study of the model's settings, run in the background (insulin_core/jobs/studies.py);
trials arrive live; send the best to Train, or train and save it as a background run."""
import streamlit as st

from insulin_core.configs import MAX_MEMBERS
from insulin_core.labels import label
from insulin_core.prep.splits import SPLITS
from insulin_core.jobs.studies import best_run_spec
from insulin_core.jobs.study_storage import storage_label
from insulin_core.jobs.tune import (TuneSettings, best_trial, default_study_name, find_study, study_names, study_settings,
                               trials_table)
from ui import charts
from ui.session import form_defaults, DEFAULT_BASELINES, current_cohort, page_header, shows_errors
from ui.train_form import form_of_trial
from ui.training import adopt_finished, data_tag, owner_token, run_manager, started_here
from ui.tuning import PARAMS, last_outcome, settings_of, study_manager, study_panel, trial_columns, tune_storage

_S = TuneSettings()
DEFAULTS = {"tune_study": "", "tune_trials": 12, "tune_timeout_min": 0, "tune_split": _S.split,
            "tune_epochs": _S.epochs, "tune_members": _S.members, "tune_patients": [], "tune_seed": _S.seed,
            "tune_save_name": ""}

page_header("Tune the settings",
            "An Optuna study: each trial trains a model with settings drawn from the search space and is scored by "
            "its validation MAE (the test part is never used); trials far behind the others are pruned. Several "
            "processes or machines can work on one study (README, Tuning). The study runs in the background: "
            "switch pages or reload, it goes on.")
owner = owner_token()
cohort = current_cohort()
if cohort is None:
    st.stop()
form_defaults(DEFAULTS, "tune_patients", cohort)
storage = tune_storage()

with st.form("tune_form", border=True):
    left, mid, right = st.columns(3)
    left.text_input("Study (start a new one or join one by its name)", key="tune_study", persist_state="session",
                    placeholder="empty = named after the split and the data")
    left.number_input("Trial budget (trials in all, over every worker)", 1, 500, key="tune_trials",
                      persist_state="session")
    left.number_input("Time limit here (minutes, 0 = none)", 0, 24 * 60, key="tune_timeout_min", persist_state="session")
    mid.selectbox("Split", SPLITS, key="tune_split", persist_state="session", format_func=label)
    mid.multiselect("Patients (none picked = all)", cohort.patients, key="tune_patients", persist_state="session",
                    format_func=lambda p: f"patient {p}")
    right.slider("Epochs per trial (at most)", 1, 300, key="tune_epochs", persist_state="session")
    right.number_input("Ensemble members per trial", 1, MAX_MEMBERS, step=1, key="tune_members", persist_state="session",
                       help="Held fixed, not searched: 1 ranks settings at a fraction of the default's cost.")
    right.number_input("Seed", 0, 2**31 - 1, step=1, key="tune_seed", persist_state="session")
    submitted = st.form_submit_button("Run trials", type="primary", icon=":material/play_arrow:", key="tune_go")
known = study_names(storage)
st.caption(f"Storage: {storage_label(storage)}" + (f"; studies in it: {', '.join(known)}" if known else ""))

s = st.session_state
settings = settings_of(s)
name = s["tune_study"].strip() or default_study_name(settings, cohort.fingerprint)
if submitted:
    with shows_errors("The study could not start", stop=False):
        study_manager().start(owner, cohort.features, cohort.fingerprint, settings, int(s["tune_trials"]), storage,
                              name, timeout=float(s["tune_timeout_min"]) * 60 or None)

jobs = study_panel(owner, storage)
if any(j.active and j.study == name for j in jobs):
    st.stop()  # the live panel shows this study's trials; the results below come when it ends
last_outcome(jobs, name)
with shows_errors("The study cannot be read"):
    study = find_study(name, storage)
if study is None:
    st.info(f"No study named **{name}** yet: set the budget and press **Run trials**.", icon=":material/tune:")
    st.stop()

table = trials_table(study)
done = table[table["state"] == "complete"]
st.subheader(f"Study {name}")
st.button("Refresh", key="tune_refresh", icon=":material/refresh:",
          help="Shows trials that other workers (processes, machines) have added since.")
cols = st.columns(4)
cols[0].metric("Trials", len(table))
cols[1].metric("Complete", len(done))
cols[2].metric("Pruned", int((table["state"] == "pruned").sum()))
cols[3].metric("Best validation MAE (U)", f"{done['val_mae'].min():.3f}" if len(done) else "-")
if len(done):
    st.altair_chart(charts.trials_chart(table), width="stretch")
    st.altair_chart(charts.params_chart(table, PARAMS), width="stretch")
st.dataframe(table, key="tune_trials_table", width="stretch", hide_index=True, column_config=trial_columns())
if not len(done):
    st.stop()

best = best_trial(study)
with st.container(border=True):
    st.markdown(f"**Best: trial {best.number}**, validation MAE {best.value:.3f} U: "
                + ", ".join(f"{k} {v}" for k, v in best.params.items()))
    send_col, name_col, save_col = st.columns([2, 3, 1], vertical_alignment="bottom")
    if send_col.button("Send to the Train page", key="tune_send", icon=":material/send:"):
        s.update(form_of_trial(best.params, study_settings(study)))
        st.success("The Train page's form now holds these settings.", icon=":material/check_circle:")
        st.page_link("pages/train.py", label="Open Train", icon=":material/model_training:")
    name_col.text_input("Or train it and save it under the name", key="tune_save_name", persist_state="session",
                        placeholder="e.g. tuned-chrono")
    if save_col.button("Save", key="tune_save", icon=":material/save:",
                       help="Trains the best configuration in the background, like the Train page's runs, and "
                            "scores it beside the baselines of that page's form as last submitted (all of them "
                            "unless changed)."):
        with shows_errors("Could not start training the best configuration", stop=False):
            # the run is listed on the Train page beside that form's runs: the same baselines
            baselines = list(s.get("train_baselines", DEFAULT_BASELINES))
            spec = best_run_spec(study, storage, cohort.source.label, cohort.fingerprint, baselines,
                                 s["tune_save_name"], data_tag(cohort.source))
            manager = run_manager()
            started_here().add(manager.start(owner, cohort.features, spec))
            adopt_finished(manager.runs(owner))  # from now on its end makes it the active model on any page
            st.success(f"Training the best configuration in the background. It is saved as **{spec.bundle_name}** "
                       f"(or **{spec.bundle_name}-2**... if that name is taken) and becomes the model in use when "
                       "it finishes; follow it on the Train page.", icon=":material/check_circle:")
            st.page_link("pages/train.py", label="Open Train", icon=":material/model_training:")
