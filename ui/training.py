"""Live training in the page script: a per-epoch callback that draws progress and the loss curve,
and turns a click on Stop (or any other click) into a clean stop that keeps the best weights.

How Stop works: while the script runs, a click makes Streamlit ask for a rerun, which it delivers
as a `RerunException` raised from the next `st.*` call, here the progress update inside the
callback. Left alone, that exception would unwind through the training loop and lose the model.
The callback catches it, tells the loop to stop (returns True: `stopped_by_user`), and the page
re-raises it once the result is stored in the session, so the click is still handled normally.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner_utils.exceptions import ScriptControlException

from insulin_core.train import EpochLog
from ui import charts


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
