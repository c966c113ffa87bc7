"""Live training in the page script: a per-epoch callback that draws progress and the loss curve,
and turns a click on Stop (or any other click) into a clean stop that keeps the best weights.

How Stop works: a click while the script runs interrupts the run at its next `st.*` call, here the
progress update inside the callback: with `runner.fastReruns` (the default) as a `StopException`
while a new run starts at once in another thread; without it as a `RerunException`. Left alone,
either would unwind through the training loop and lose the model. The callback catches it and
tells the loop to stop (returns True: `stopped_by_user`); the page stores the result (best weights,
metrics) in `training_store()`, a plain dict, since any further Streamlit call (session state
included) would raise again, and then re-raises it. The new run, meanwhile, sees the store's
`running` flag and waits for that result (`wait_for_training`) instead of showing the page without it.
"""
from __future__ import annotations

import time

import pandas as pd
import streamlit as st

from insulin_core.train import EpochLog
from ui import charts
from ui.streamlit_internals import ScriptControlException


class LiveTraining:
    def __init__(self, epochs: int):
        self.epochs = epochs
        self.history: list[dict] = []
        self.interrupt: ScriptControlException | None = None
        self.progress = st.progress(0.0, text="Preparing windows and scalers...")
        self.chart = st.empty()

    def __call__(self, log: EpochLog) -> bool:
        self.history.append(vars(log).copy())
        if self.interrupt is not None:
            return True
        try:
            self.progress.progress(min(1.0, log.epoch / self.epochs),
                                   text=f"Epoch {log.epoch}/{self.epochs}: train loss {log.train_loss:.4f}, "
                                        f"validation loss {log.val_loss:.4f}, validation MAE {log.val_mae:.2f} U "
                                        f"({log.elapsed_s:.1f} s)")
            self.chart.altair_chart(charts.loss_curve(pd.DataFrame(self.history), self.epochs), width="stretch")
        except ScriptControlException as exc:  # a click (Stop, or anything else): stop, keep the best weights
            self.interrupt = exc
            return True
        return False

    def finish(self) -> None:
        """Re-deliver a click that arrived during training (after the result is stored)."""
        if self.interrupt is not None:
            raise self.interrupt


def training_store() -> dict:
    """This session's training state, one plain dict (running flag, run counter, last result).
    The page holds it by reference, so the training run can update it without a Streamlit call."""
    return st.session_state.setdefault("train_store", {})


def wait_while_running(store: dict, message: str, timeout_s: float) -> None:
    """Called by a run that started while another run of this session is still working (training,
    a study): wait until that run has stopped after its epoch and stored its result."""
    deadline = time.monotonic() + timeout_s
    with st.spinner(message):
        while store.get("running") and time.monotonic() < deadline:
            time.sleep(0.2)
    store["running"] = False


def wait_for_training(timeout_s: float = 180.0) -> None:
    wait_while_running(training_store(), "Stopping after the current epoch, then scoring the model and the baselines...",
                       timeout_s)
