"""DosePredictor: the one contract that turns windows into Regular doses, for the network and for
every baseline (darts' one fit/predict contract; conformal intervals wrap any predictor).

A predictor answers with two heads for windows `idx` of a `WindowSet`: the amount (units) and
P(dose). The dose is `dose_rule.to_dose` of them; the 90% interval is the split-conformal table
(`intervals.py`) around it. For the network the predictor also holds what turns windows into its
inputs (the scalers fit on the training part, the patient index); for a baseline, the fitted
baseline (its amount is its own prediction, its P(dose) its classifier's or 1 where it gives a
dose). Evaluation, the predictions table, the what-if engine, the explanations and the intervals
all predict through it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .baselines import Baseline
from .dose_rule import DOSE_THRESHOLD, continuous_dose, to_dose
from .intervals import CONFORMAL_ALPHA, conformal_from_scores, conformal_interval, coverage_of
from .model import DoseNet
from .scaling import MinMaxScaler
from .train import ArrayPart, predict_raw
from .windows import RowWindows, WindowSet


@dataclass(frozen=True)
class DosePredictor:
    name: str
    network: DoseNet | None = None
    baseline: Baseline | None = None
    seq_scaler: MinMaxScaler | None = None
    now_scaler: MinMaxScaler | None = None
    patient_index: dict[int, int] = field(default_factory=dict)  # training patients -> 1..n; others 0
    conformal: dict | None = None  # the interval table, calibrated on a validation part

    @classmethod
    def of_network(cls, network: DoseNet, seq_scaler: MinMaxScaler, now_scaler: MinMaxScaler,
                   patient_index: dict[int, int], conformal: dict | None = None, name: str = "model") -> "DosePredictor":
        return cls(name, network, None, seq_scaler, now_scaler, dict(patient_index), conformal)

    @classmethod
    def of_baseline(cls, baseline: Baseline) -> "DosePredictor":
        return cls(baseline.name, baseline=baseline)

    # -- the network's inputs ----------------------------------------------------------------
    @property
    def threshold(self) -> float:
        """P(dose) above which a dose is given (the network's own, tuned or 0.5)."""
        if self.network is None:
            return DOSE_THRESHOLD
        return float(self.network.dose_threshold.reshape(-1)[0])

    @property
    def round_units(self) -> bool:
        """The network answers in whole units, as people inject; baselines keep their own values."""
        return self.network is not None

    def part(self, ws: WindowSet, idx: np.ndarray) -> ArrayPart:
        """Scaled network inputs for windows `idx` (targets kept: training and evaluation use them)."""
        # the part's windows stay a view of its own rows (scaled once), never L copies of them
        return self.inputs_of(ws.seq_rows.select(idx), ws.now[idx], ws.patient_id[idx], ws.y[idx])

    def inputs_of(self, seq: np.ndarray | RowWindows, now: np.ndarray, patient_ids,
                  y: np.ndarray | None = None) -> ArrayPart:
        """Scaled network inputs for unscaled (n, L, F) windows (an array or RowWindows), (n, F)
        moments and n patient ids."""
        ids = np.asarray(patient_ids).reshape(-1)
        patient = pd.Series(ids).map(self.patient_index).fillna(0).to_numpy(dtype=np.int64, copy=True)
        y = np.zeros((len(now), 1), np.float32) if y is None else y
        # a bundle saved before decision-moment features were appended knows only the leading ones
        # (bundle_schema checks that its names are exactly those)
        now = np.asarray(now)[:, :len(self.now_scaler.low)]
        seq = seq.map_rows(self.seq_scaler.transform) if isinstance(seq, RowWindows) else self.seq_scaler.transform(seq)
        return ArrayPart(seq, self.now_scaler.transform(now), patient, y)

    # -- the contract ------------------------------------------------------------------------
    def heads(self, ws: WindowSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(amount in units, P(dose)) of the Regular target for windows `idx`."""
        idx = np.asarray(idx)
        if self.network is None:
            return self.baseline.heads(ws, idx)
        return self.heads_of_inputs(self.part(ws, idx))

    def heads_of(self, seq: np.ndarray, now: np.ndarray, patient_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The network's heads for unscaled (n, L, F) / (n, F) inputs of one patient (what-if,
        explanations: inputs edited away from any WindowSet)."""
        return self.heads_of_inputs(self.inputs_of(seq, now, np.full(len(now), patient_id)))

    def heads_of_inputs(self, part: ArrayPart) -> tuple[np.ndarray, np.ndarray]:
        """The network's heads for already scaled inputs."""
        amount, p = predict_raw(self.network, part)
        return amount[:, 0].astype(float), p[:, 0].astype(float)

    def dose(self, ws: WindowSet, idx: np.ndarray) -> np.ndarray:
        amount, p = self.heads(ws, idx)
        return self.dose_of(amount, p)

    def dose_of(self, amount: np.ndarray, p: np.ndarray) -> np.ndarray:
        return to_dose(amount, p, self.threshold, self.round_units)

    def interval(self, ws: WindowSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dose, low, high) of the 90% conformal interval; needs a calibrated predictor."""
        return self.interval_of(*self.heads(ws, idx))

    def interval_of(self, amount: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.conformal is None:
            raise ValueError(f"{self.name}: no conformal table; calibrate the predictor on a validation part first")
        return conformal_interval(amount, p, self.conformal, self.threshold, self.round_units)

    # -- calibration -------------------------------------------------------------------------
    def calibrated(self, ws: WindowSet, idx: np.ndarray, alpha: float = CONFORMAL_ALPHA, part: str = "val") -> "DosePredictor":
        """The same predictor with a conformal table calibrated on windows `idx` (a validation part)."""
        amount, p = self.heads(ws, idx)
        table = conformal_from_scores(continuous_dose(amount, p, self.threshold), ws.y[idx, 0], p, alpha)
        table["part"] = part
        return replace(self, conformal=table)

    def coverage(self, ws: WindowSet, idx: np.ndarray, part: str = "test") -> dict:
        """How often the interval holds the actual dose on windows `idx` (target: 1 - alpha)."""
        return self.coverage_of(*self.heads(ws, idx), ws.y[idx, 0], part)

    def coverage_of(self, amount: np.ndarray, p: np.ndarray, y: np.ndarray, part: str = "test") -> dict:
        """The same from heads already computed (evaluation predicts each part once)."""
        _, low, high = self.interval_of(amount, p)
        return {"part": part, "alpha": self.conformal["alpha"], **coverage_of(y, low, high)}
