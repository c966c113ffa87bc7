"""The Tune page's side of background studies (insulin_core/jobs/studies.py does the work), built like
the Train page's runs (ui/training.py):

- One `StudyManager` per server process and models folder, in a `st.cache_resource` singleton: the
  study's worker belongs to the server, so a page switch, a click elsewhere or a refresh (each of
  which ends or restarts the page script) leaves it running.
- Whose study: the owner token of ui/training.owner_token (kept in the URL), so only this browser
  can stop it; the trials are in the shared Optuna storage, which every session reads by name.
- The live panel (ui/training.live_jobs) is a fragment that reruns itself every second while a
  study of this owner is active (no loop in the script), and reruns the whole page once when it
  ends, so the results, the best trial and its buttons below are drawn from the finished study.
"""
from __future__ import annotations

import os
from pathlib import Path

import optuna
import streamlit as st

from insulin_core.labels import TRIAL_LABELS
from insulin_core.jobs.studies import StudyInfo, StudyManager
from insulin_core.jobs.study_storage import default_storage
from insulin_core.jobs.tune import SEARCH_SPACE, TuneSettings, find_study, trials_table
from ui import charts
from ui.cache import models_dir
from ui.training import live_jobs, started

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the page shows the trials; no log line per trial

# Where the page keeps its studies: set by whoever runs the server (a shared database for several
# machines, see the README), never typed into the page, so a browser cannot point it elsewhere.
TUNE_STORAGE_ENV = "INSULIN_DASH_TUNE_STORAGE"
ENDED = ("complete", "pruned", "fail")  # trial states that count as done in the progress bar

PARAMS = list(SEARCH_SPACE)


def settings_of(s) -> TuneSettings:
    """The Tune form's values (its `tune_*` widget keys) as what a study holds fixed."""
    return TuneSettings(split=s["tune_split"], patients=tuple(s["tune_patients"]), epochs=int(s["tune_epochs"]),
                        seed=int(s["tune_seed"]), members=int(s["tune_members"]))


def tune_storage() -> str:
    return os.environ.get(TUNE_STORAGE_ENV) or default_storage()


@st.cache_resource(show_spinner=False)
def _manager(folder: str) -> StudyManager:
    return StudyManager(Path(folder)).warm_up()


def study_manager() -> StudyManager:
    return _manager(str(models_dir().resolve()))


def progress_text(job: StudyInfo, done: int) -> str:
    if job.state == "starting" or job.trial is None:
        text = "Starting the study's process and preparing the data..."
    else:
        text = f"Trial {job.trial}, epoch {job.epoch} of at most {job.epochs}"
    text += f" · {done} of {job.budget} trials done"
    if job.stop_requested:
        text += " · stopping after the current epoch"
    return text


def live_study(job: StudyInfo, manager: StudyManager, owner: str, storage: str) -> None:
    """One running study: progress, the trials so far (read from the storage) and Stop."""
    study = find_study(job.study, storage)
    table = trials_table(study) if study is not None else None
    done = int(table["state"].isin(ENDED).sum()) if table is not None else 0
    with st.container(border=True):
        st.markdown(f"**Study {job.study}** · running in the background since {started(job)}")
        st.progress(min(1.0, done / max(job.budget, 1)), text=progress_text(job, done))
        if table is not None and table["val_mae"].notna().any():
            st.altair_chart(charts.trials_chart(table), width="stretch")
        if table is not None and len(table):
            st.dataframe(table, width="stretch", hide_index=True, column_config=trial_columns())
        if st.button("Stop", key=f"tune_stop_{job.id}", icon=":material/stop_circle:", disabled=job.stop_requested,
                     help="Stops after the current epoch; that trial is recorded as failed, the others stay."):
            manager.stop(job.id, owner)
            # No st.rerun(scope="fragment") here: a full page run (a test's, or a click landing on one)
            # refuses it; the panel's timer redraws within a second anyway.
            st.caption("Stopping after the current epoch...")


def study_panel(owner: str, storage: str) -> list[StudyInfo]:
    """The live part of the page: this owner's running study, refreshed by a timer while it runs."""
    manager = study_manager()
    return live_jobs(lambda: manager.studies(owner), lambda job: live_study(job, manager, owner, storage))


def last_outcome(jobs: list[StudyInfo], name: str) -> None:
    """How this browser's last study of `name` ended, in words."""
    ended = [j for j in jobs if j.study == name and not j.active]
    if not ended:
        return
    job = ended[0]
    if job.state == "failed":
        st.error(f"The study could not run: {job.error}", icon=":material/error:")
    elif job.state == "stopped":
        st.warning(f"Stopped: {job.ran} trial(s) finished in {job.seconds:.1f} s; the trial that was training is "
                   "recorded as failed.", icon=":material/flag:")
    else:
        st.success(f"Done: the background study ran {job.ran} trial(s) in {job.seconds:.1f} s.", icon=":material/flag:")


def trial_columns() -> dict:
    """A trials table's headers in words (the frame keeps its names: the page and tests read them)."""
    numbers = {"val_mae": "%.3f", "seconds": "%.1f"}
    return {c: st.column_config.NumberColumn(TRIAL_LABELS[c], format=numbers[c]) if c in numbers
            else st.column_config.Column(TRIAL_LABELS[c]) for c in TRIAL_LABELS}
