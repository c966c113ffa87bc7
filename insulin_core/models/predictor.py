"""The one predictor contract that turns windows into Regular doses, for the network and for every
baseline (darts' one fit/predict contract; conformal intervals wrap any predictor).

A `DosePredictor` answers with two heads for windows `idx` of a `WindowSet`: the amount (units)
and P(dose). Everything else is the same for every kind and lives once, here: the dose is
`dose_rule.to_dose` of the heads; the 90% interval is the split-conformal table (`intervals.py`)
around it, calibrated on a validation part (`calibrated`) and checked on another (`coverage`).
Two kinds meet it:

- `NetworkPredictor`: a DoseNet and its `InputScaling` (the scalers fit on the training part and
  the patient index, which turn windows into the network's inputs); it also answers for inputs
  edited away from any WindowSet (`heads_of`: the what-if, the explanations).
- `BaselinePredictor`: a fitted baseline (its amount is its own prediction, its P(dose) its
  classifier's or 1 where it gives a dose).

Evaluation, the predictions table, the what-if engine, the explanations and the intervals all
predict through the contract; `pipeline.Prepared` fits and calibrates them (one place).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from .baselines import Baseline
from .dose_rule import DOSE_THRESHOLD, continuous_dose, to_dose
from .intervals import CONFORMAL_ALPHA, conformal_from_scores, conformal_interval, coverage_of
from .model import DoseNet
from ..prep.scaling import MinMaxScaler
from .arrays import ArrayPart, predict_raw
from ..prep.windows import RowWindows, WindowSet


@dataclass(frozen=True)
class InputScaling:
    """What turns unscaled windows into a network's inputs: Min-Max scalers fit on the training
    part and the patient index (training patients -> 1..n; anyone else -> 0, unknown)."""
    seq: MinMaxScaler
    now: MinMaxScaler
    patient_index: dict[int, int] = field(default_factory=dict)

    @classmethod
    def fit(cls, ws: WindowSet, train_idx: np.ndarray) -> "InputScaling":
        """Fit on the training windows only (validation and test never leak into the bounds)."""
        patients = sorted(int(p) for p in np.unique(ws.patient_id[train_idx]))
        # the bounds over the training windows' rows: the same as over the windows, without copying them
        return cls(MinMaxScaler.fit(ws.seq_rows.select(train_idx).rows), MinMaxScaler.fit(ws.now[train_idx]),
                   {p: i + 1 for i, p in enumerate(patients)})

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
        # (bundles/schema.py checks that its names are exactly those)
        now = np.asarray(now)[:, :len(self.now.low)]
        seq = seq.map_rows(self.seq.transform) if isinstance(seq, RowWindows) else self.seq.transform(seq)
        return ArrayPart(seq, self.now.transform(now), patient, y)

    def knows(self, patients) -> np.ndarray:
        """Whether each of `patients` (one id or an array) has an embedding row of its own; anyone
        else is served by row 0, the unknown patient."""
        return np.isin(np.asarray(patients), np.fromiter(self.patient_index, dtype=np.int64))

    def to_meta(self) -> dict:
        """As a bundle's metadata stores it (registry.ModelBundle.scaling reads it back)."""
        return {"scalers": {"seq": self.seq.to_dict(), "now": self.now.to_dict()},
                "patient_index": {str(k): v for k, v in self.patient_index.items()}}


class DosePredictor(ABC):
    """The contract: `heads`, `dose`, `interval`, `calibrated`, `coverage` (each also `*_of` heads
    already computed). A kind says only how it gets its heads and how it gives a dose."""
    name: str
    conformal: dict | None  # the interval table, calibrated on a validation part

    @abstractmethod
    def heads(self, ws: WindowSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(amount in units, P(dose)) of the Regular target for windows `idx`."""

    @property
    @abstractmethod
    def threshold(self) -> float:
        """P(dose) above which a dose is given (to a patient the predictor knows)."""

    def threshold_for(self, patients) -> np.ndarray:
        """The threshold for each of `patients` (ids, one or an array): the same for all here."""
        return np.full(np.shape(patients), self.threshold)

    @property
    @abstractmethod
    def round_units(self) -> bool:
        """Whether doses are whole units."""

    def dose(self, ws: WindowSet, idx: np.ndarray) -> np.ndarray:
        amount, p = self.heads(ws, idx)
        return self.dose_of(amount, p, ws.patient_id[idx])

    def dose_of(self, amount: np.ndarray, p: np.ndarray, patients) -> np.ndarray:
        """The doses of heads already computed for `patients` (one id, or one per row)."""
        return to_dose(amount, p, self.threshold_for(patients), self.round_units)

    def interval(self, ws: WindowSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dose, low, high) of the 90% conformal interval; needs a calibrated predictor."""
        return self.interval_of(*self.heads(ws, idx), ws.patient_id[idx])

    def interval_of(self, amount: np.ndarray, p: np.ndarray, patients) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.conformal is None:
            raise ValueError(f"{self.name}: no conformal table; calibrate the predictor on a validation part first")
        return conformal_interval(amount, p, self.conformal, self.threshold_for(patients), self.round_units)

    def calibrated(self, ws: WindowSet, idx: np.ndarray, alpha: float = CONFORMAL_ALPHA, part: str = "val") -> "DosePredictor":
        """The same predictor with a conformal table calibrated on windows `idx` (a validation part)."""
        amount, p = self.heads(ws, idx)
        cont = continuous_dose(amount, p, self.threshold_for(ws.patient_id[idx]))
        table = conformal_from_scores(cont, ws.y[idx, 0], p, alpha)
        table["part"] = part
        return replace(self, conformal=table)

    def coverage(self, ws: WindowSet, idx: np.ndarray, part: str = "test") -> dict:
        """How often the interval holds the actual dose on windows `idx` (target: 1 - alpha)."""
        return self.coverage_of(*self.heads(ws, idx), ws.patient_id[idx], ws.y[idx, 0], part)

    def coverage_of(self, amount: np.ndarray, p: np.ndarray, patients, y: np.ndarray, part: str = "test") -> dict:
        """The same from heads already computed (evaluation predicts each part once)."""
        _, low, high = self.interval_of(amount, p, patients)
        return {"part": part, "alpha": self.conformal["alpha"], **coverage_of(y, low, high)}


@dataclass(frozen=True)
class NetworkPredictor(DosePredictor):
    """A DoseNet with the scaling of the experiment it was trained in."""
    network: DoseNet
    scaling: InputScaling
    conformal: dict | None = None
    name: str = "model"

    @property
    def threshold(self) -> float:
        """The network's own threshold for the patients it knows (tuned on the validation part, or 0.5)."""
        return float(self.network.dose_threshold.reshape(-1)[0])

    @property
    def new_patient_threshold(self) -> float:
        """The threshold for anyone else, served by the unknown row (train.tune_new_patient_threshold)."""
        return float(self.network.new_patient_threshold.reshape(-1)[0])

    def threshold_for(self, patients) -> np.ndarray:
        return np.where(self.scaling.knows(patients), self.threshold, self.new_patient_threshold)

    @property
    def round_units(self) -> bool:
        return True  # the network answers in whole units, as people inject

    def heads(self, ws: WindowSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.heads_of_inputs(self.scaling.part(ws, np.asarray(idx)))

    def heads_of(self, seq: np.ndarray, now: np.ndarray, patient_id: int) -> tuple[np.ndarray, np.ndarray]:
        """The heads for unscaled (n, L, F) / (n, F) inputs of one patient (what-if, explanations:
        inputs edited away from any WindowSet)."""
        return self.heads_of_inputs(self.scaling.inputs_of(seq, now, np.full(len(now), patient_id)))

    def heads_of_inputs(self, part: ArrayPart) -> tuple[np.ndarray, np.ndarray]:
        """The heads for inputs already scaled."""
        amount, p = predict_raw(self.network, part)
        return amount[:, 0].astype(float), p[:, 0].astype(float)


@dataclass(frozen=True)
class BaselinePredictor(DosePredictor):
    """A fitted baseline (baselines.py) under the same contract."""
    baseline: Baseline
    conformal: dict | None = None

    @property
    def name(self) -> str:
        return self.baseline.name

    @property
    def threshold(self) -> float:
        return DOSE_THRESHOLD

    @property
    def round_units(self) -> bool:
        return False  # a baseline keeps its own values (a median dose may be 4.5 U)

    def heads(self, ws: WindowSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.baseline.heads(ws, np.asarray(idx))
