"""From a cohort to a trained, evaluated model: the one path the CLI, the app, background runs and
the benchmarks use.

prepare():        features -> windows -> split -> scalers fit on the training part only -> arrays
run_experiment(): prepare, DoseNet on the training part (early stopping on the validation part),
                  evaluate
evaluate():       the model and every baseline on the test part, with and without implausible doses

Fit-and-calibrate lives once, on `Prepared`: `fit_baselines` fits each baseline on the training
part, `calibrate` gives any predictor its conformal table from the validation part (a saved
bundle's own table is kept). Evaluation, serving and the what-if engine all go through them.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from ..models.baselines import BASELINES, make_baseline
from ..configs import check_keys
from ..prep.features import SEQ_FEATURES, now_roles
from .metrics import ALL_ROWS, METRIC_COLUMNS, headline, metrics_table, per_patient_metrics
from ..models.model import DEFAULT_SIZES, DoseNet, ModelConfig
from ..data.provenance import data_record
from ..prep.splits import DEFAULT_SPLIT, Split, split_windows
from ..models.predictor import BaselinePredictor, DosePredictor, InputScaling, NetworkPredictor
from ..models.arrays import ArrayPart, TrainData
from ..models.train import EpochLog, TrainConfig, TrainResult, train_model
from ..prep.windows import WindowConfig, WindowSet, make_windows




@dataclass(frozen=True)
class ExperimentConfig:
    window: WindowConfig = field(default_factory=WindowConfig)
    split: str = DEFAULT_SPLIT
    patients: tuple[int, ...] = ()  # empty = every patient
    # Typing errors such as 344 U of Regular are left out of training (and validation); the test
    # part keeps them and evaluation reports metrics with and without them.
    exclude_implausible: bool = True
    seed: int = 0

    def to_dict(self) -> dict:
        return {"window": self.window.to_dict(), "split": self.split, "patients": list(self.patients),
                "exclude_implausible": self.exclude_implausible, "seed": self.seed}

    @classmethod
    def from_dict(cls, d: dict) -> "ExperimentConfig":
        check_keys(cls, d)
        return cls(WindowConfig.from_dict(d["window"]), d["split"], tuple(d.get("patients", ())),
                   d.get("exclude_implausible", True), d.get("seed", 0))


@dataclass
class Prepared:
    ws: WindowSet
    split: Split
    train_idx: np.ndarray  # split.train less implausible targets when excluded
    val_idx: np.ndarray
    scaling: InputScaling  # fit on the training part (a bundle's own when re-prepared for it)

    def predictor(self, model: DoseNet) -> NetworkPredictor:
        """The network `model` with this experiment's scaling (not calibrated: see `calibrate`)."""
        return NetworkPredictor(model, self.scaling)

    def part(self, idx: np.ndarray) -> ArrayPart:
        return self.scaling.part(self.ws, idx)

    def train_data(self) -> TrainData:
        return TrainData(self.part(self.train_idx), self.part(self.val_idx))

    def calibrate(self, predictor: DosePredictor) -> DosePredictor:
        """`predictor` with a conformal table: its own (a saved bundle's), else one calibrated now
        on the validation part."""
        return predictor if predictor.conformal is not None else predictor.calibrated(self.ws, self.val_idx)

    def fit_baselines(self, names: list[str] | None = None) -> dict[str, BaselinePredictor]:
        """Each baseline (default: every registered one) fit on the training part and calibrated."""
        return {name: self.calibrate(BaselinePredictor(make_baseline(name).fit(self.ws, self.train_idx)))
                for name in (list(BASELINES) if names is None else names)}


def select_patients(features: pd.DataFrame, patients: tuple[int, ...]) -> pd.DataFrame:
    if not patients:
        return features
    missing = sorted(set(patients) - set(features["patient_id"].unique()))
    if missing:
        raise ValueError(f"Unknown patient(s) {missing}; the data has {features['patient_id'].nunique()} patients.")
    return features[features["patient_id"].isin(patients)].reset_index(drop=True)


def prepare(features: pd.DataFrame, cfg: ExperimentConfig) -> Prepared:
    ws = make_windows(select_patients(features, cfg.patients), cfg.window)
    split = split_windows(ws.context, cfg.split, cfg.seed)
    keep = ~ws.context["implausible"].to_numpy() if cfg.exclude_implausible else np.ones(len(ws), bool)
    train_idx, val_idx = split.train[keep[split.train]], split.val[keep[split.val]]
    if len(train_idx) == 0 or len(val_idx) == 0 or len(split.test) == 0:
        raise ValueError(f"Too few windows ({len(ws)}) to split into train, validation and test parts; "
                         "pick more patients or a shorter window.")
    return Prepared(ws, split, train_idx, val_idx, InputScaling.fit(ws, train_idx))


def model_config_for(prepared: Prepared, **sizes) -> ModelConfig:
    """A ModelConfig whose data-given fields match the prepared windows; `sizes` set the rest."""
    ws = prepared.ws
    return ModelConfig(n_seq_features=ws.seq_rows.shape[2], n_now_features=ws.now.shape[1],
                       n_patients=len(prepared.scaling.patient_index), window=ws.config.length,
                       n_targets=len(ws.targets), now_roles=now_roles(ws.now_features),
                       **{**DEFAULT_SIZES, **sizes})


@dataclass
class Evaluation:
    metrics: pd.DataFrame  # one row per model/baseline; columns from dose_metrics, plus `rows`
    predictions: pd.DataFrame  # one row per test decision point
    per_patient: pd.DataFrame  # the model's per-patient metrics
    conformal: dict = field(default_factory=dict)  # the model's interval table, calibrated on the validation part
    coverage: dict = field(default_factory=dict)  # how often that interval holds the actual dose here
    coverages: dict = field(default_factory=dict)  # the same for every predictor, baselines included

    def headline(self, name: str = "model") -> dict:
        return headline(self.metrics, name)


def predictors(model: DoseNet, prepared: Prepared, baselines: list[str] | None = None) -> dict[str, DosePredictor]:
    """The model and each baseline (fit on the training part), each calibrated on the validation part."""
    return {"model": prepared.calibrate(prepared.predictor(model)), **prepared.fit_baselines(baselines)}


def evaluate(model: DoseNet, prepared: Prepared, baselines: list[str] | None = None,
             part: str = "test") -> Evaluation:
    """The model and each baseline on one part (default test), through one predictor contract."""
    ws, idx = prepared.ws, getattr(prepared.split, part)
    y = ws.y[idx, 0]
    found = predictors(model, prepared, baselines)
    heads = {name: p.heads(ws, idx) for name, p in found.items()}  # one prediction pass per predictor
    patients = ws.patient_id[idx]
    preds = {name: found[name].dose_of(*h, patients) for name, h in heads.items()}
    plausible = ~ws.context["implausible"].to_numpy()[idx]
    metrics = pd.concat([metrics_table(preds, y).assign(rows=ALL_ROWS),
                         metrics_table(preds, y, plausible).assign(rows="without implausible")])
    order = {name: i for i, name in enumerate(preds)}
    metrics = metrics.sort_values("name", key=lambda n: n.map(order), kind="stable").reset_index(drop=True)
    ctx = ws.context.iloc[idx]
    predictions = pd.DataFrame({
        "patient_id": ctx["patient_id"].to_numpy(), "timestamp": ctx["timestamp"].to_numpy(),
        "split": part, "actual": y, "predicted": preds["model"],
        **{name: p for name, p in preds.items() if name != "model"},
    })
    coverage = {name: found[name].coverage_of(*h, patients, y, part) for name, h in heads.items()}
    return Evaluation(metrics[["name", "rows", *METRIC_COLUMNS]], predictions,
                      per_patient_metrics(ctx["patient_id"].to_numpy(), y, preds["model"]),
                      found["model"].conformal, coverage["model"], coverage)


@dataclass
class ExperimentResult:
    prepared: Prepared
    training: TrainResult
    evaluation: Evaluation
    seconds: dict[str, float]


def run_experiment(features: pd.DataFrame, exp: ExperimentConfig, sizes: dict, train_cfg: TrainConfig,
                   callback: Callable[[EpochLog], bool | None] | None = None,
                   baselines: list[str] | None = None,
                   on_trained: Callable[[TrainResult], None] | None = None) -> ExperimentResult:
    """Prepare, train (`callback` each epoch), evaluate; `on_trained` hears of the end of training
    before the evaluation starts (a background run says "evaluating")."""
    t0 = time.perf_counter()
    prepared = prepare(features, exp)
    t1 = time.perf_counter()
    training = train_model(model_config_for(prepared, **sizes), train_cfg, prepared.train_data(), callback)
    t2 = time.perf_counter()
    if on_trained is not None:
        on_trained(training)
    evaluation = evaluate(training.model, prepared, baselines)
    t3 = time.perf_counter()
    return ExperimentResult(prepared, training, evaluation,
                            {"prepare": t1 - t0, "train": t2 - t1, "evaluate": t3 - t2})


def bundle_meta(result: ExperimentResult, exp: ExperimentConfig, train_cfg: TrainConfig,
                source_label: str, fingerprint: str, data_format: str = "AIM94") -> dict:
    """Everything a bundle stores beside its weights (see registry.py)."""
    p, ev = result.prepared, result.evaluation
    metrics = {row["name"] if row["rows"] == ALL_ROWS else f"{row['name']} (without implausible)":
               {k: v for k, v in row.items() if k not in ("name", "rows")}
               for row in ev.metrics.to_dict("records")}
    return {
        "window": exp.window.to_dict(), "split": exp.split, "experiment": exp.to_dict(),
        "train_config": train_cfg.to_dict(),
        "features": {"seq": list(SEQ_FEATURES), "now": list(p.ws.now_features), "targets": list(p.ws.targets)},
        **p.scaling.to_meta(),
        "history": [asdict(h) for h in result.training.history],
        "stop_reason": result.training.stop_reason, "best_epoch": result.training.best_epoch,
        "metrics": metrics, "seconds": result.seconds,
        "conformal": ev.conformal,
        "metrics_extra": {"interval_coverage": ev.coverage},
        "sizes": {"train": int(len(p.train_idx)), "val": int(len(p.val_idx)), "test": int(len(p.split.test))},
        "data": data_record(source_label, fingerprint, len(p.scaling.patient_index), data_format),
    }
