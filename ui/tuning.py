"""A study run in the page script: per-epoch progress and a per-trial table and chart, drawn live.
A click (Stop, or anything else) during the study reaches the script as a ScriptControlException
at its next `st.*` call; it is caught so the study stops after the current epoch and its result is
stored, then raised again so Streamlit still handles the click. (The Train page does not need
this: its runs are background workers, ui/training.py.)"""
from __future__ import annotations

import os

import time

import optuna
import streamlit as st

from insulin_core.train import EpochLog
from insulin_core.tune import SEARCH_SPACE, default_storage, trials_table
from ui import charts
from ui.streamlit_internals import ScriptControlException

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the page shows the trials; no log line per trial

# Where the page keeps its studies: set by whoever runs the server (a shared database for several
# machines, see the README), never typed into the page, so a browser cannot point it elsewhere.
TUNE_STORAGE_ENV = "INSULIN_DASH_TUNE_STORAGE"


def tune_storage() -> str:
    return os.environ.get(TUNE_STORAGE_ENV) or default_storage()


def tuning_store() -> dict:
    """This session's study state (running flag, last run), one plain dict held by reference."""
    return st.session_state.setdefault("tune_store", {})


class LiveStudy:
    def __init__(self, epochs: int, budget: int):
        self.epochs, self.budget = epochs, budget
        self.interrupt: ScriptControlException | None = None
        self.status = st.empty()
        self.status.caption("Preparing windows and scalers...")
        self.chart = st.empty()
        self.table = st.empty()

    def epoch(self, trial: int, log: EpochLog) -> bool:
        if self.interrupt is not None:
            return True
        try:
            self.status.caption(f"Trial {trial} (budget {self.budget}), epoch {log.epoch}/{self.epochs}: validation "
                                f"loss {log.val_loss:.4f}, validation MAE {log.val_mae:.2f} U ({log.elapsed_s:.1f} s)")
        except ScriptControlException as exc:  # a click: stop after this epoch
            self.interrupt = exc
            return True
        return False

    def trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.interrupt is not None:
            study.stop()
            return
        try:
            table = trials_table(study)
            self.chart.altair_chart(charts.trials_chart(table), width="stretch")
            self.table.dataframe(table, width="stretch", hide_index=True)
        except ScriptControlException as exc:
            self.interrupt = exc
            study.stop()

    def finish(self) -> None:
        """Re-deliver a click that arrived while the study ran (after its result is stored); else
        clear the live view: the page shows the whole study below."""
        if self.interrupt is not None:
            raise self.interrupt
        for placeholder in (self.status, self.chart, self.table):
            placeholder.empty()


def wait_for_study(timeout_s: float = 600.0) -> None:
    """Called by a study that started while another study of this session is still working: wait
    until that one has stopped after its epoch and stored its result."""
    store, deadline = tuning_store(), time.monotonic() + timeout_s
    with st.spinner("Stopping the study after the current epoch..."):
        while store.get("running") and time.monotonic() < deadline:
            time.sleep(0.2)
    store["running"] = False


PARAMS = list(SEARCH_SPACE)
