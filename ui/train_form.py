"""The Train page's form: its widget keys (`train_*`) and the core's configs, both ways.

- `FORM_DEFAULTS`: every widget's starting value, from the core's configs (so the form trains what
  the CLI trains by default).
- `run_spec_of(values, cohort)`: the form's values as a background run (`runs.RunSpec`).
- `form_of_trial(params, settings)`: a tuning trial and its study's settings as the form's values
  (the Tune page's "Send to the Train page").

Imported by the Train and Tune pages only: the pipeline (torch) comes with it.
"""
from __future__ import annotations

from collections.abc import Mapping

from insulin_core.configs import DEFAULT_SIZES, TrainConfig, dense_text, parse_dense
from insulin_core.evaluation.pipeline import ExperimentConfig
from insulin_core.jobs.runs import RunSpec
from insulin_core.jobs.tune import TuneSettings, sizes_of
from insulin_core.prep.windows import WindowConfig
from ui.session import DEFAULT_BASELINES
from ui.training import data_tag

_T, _W, _E = TrainConfig(), WindowConfig(), ExperimentConfig()
FORM_DEFAULTS = {
    "train_patients": [], "train_window": _W.length, "train_target": _W.target, "train_split": _E.split,
    "train_dose_window": _W.dose_window, "train_cgm_every": _W.cgm_every,
    **{f"train_{k}": v for k, v in DEFAULT_SIZES.items() if k not in ("dense", "patient_embedding")},
    "train_dense": dense_text(DEFAULT_SIZES["dense"], ", "), "train_embedding": DEFAULT_SIZES["patient_embedding"],
    "train_epochs": _T.epochs, "train_lr": _T.lr, "train_batch": _T.batch, "train_patience": _T.patience,
    "train_seed": _T.seed, "train_baselines": DEFAULT_BASELINES,
}


def run_spec_of(s: Mapping, cohort) -> RunSpec:
    """The form's values as a run on `cohort`; ValueError for values the core refuses (dense layers)."""
    dense = parse_dense(s["train_dense"])
    window = WindowConfig(s["train_window"], s["train_target"], dose_window=int(s["train_dose_window"]),
                          cgm_every=int(s["train_cgm_every"]))
    exp = ExperimentConfig(window, s["train_split"], tuple(s["train_patients"]), seed=int(s["train_seed"]))
    sizes = dict(lstm_hidden=s["train_lstm_hidden"], lstm_layers=s["train_lstm_layers"],
                 gru_hidden=s["train_gru_hidden"], gru_layers=s["train_gru_layers"], dense=dense,
                 dropout=float(s["train_dropout"]), patient_embedding=s["train_embedding"],
                 attention=bool(s["train_attention"]), members=int(s["train_members"]))
    # One thread: on a small shared CPU, torch's default threads make this model far slower.
    train_cfg = TrainConfig(epochs=s["train_epochs"], patience=s["train_patience"], batch=s["train_batch"],
                            lr=float(s["train_lr"]), seed=int(s["train_seed"]), threads=1)
    return RunSpec(exp, sizes, train_cfg, tuple(s["train_baselines"]), cohort.source.label, cohort.fingerprint,
                   data_tag(cohort.source))


def train_config_form(params: dict) -> dict:
    """A trial's parameters as the Train page's form values (its session_state keys)."""
    sizes = sizes_of(params)
    return {"train_window": int(params["window"]), "train_lstm_hidden": sizes["lstm_hidden"],
            "train_lstm_layers": sizes["lstm_layers"], "train_gru_hidden": sizes["gru_hidden"],
            "train_gru_layers": sizes["gru_layers"], "train_dense": dense_text(sizes["dense"], ", "),
            "train_dropout": float(sizes["dropout"]), "train_lr": float(params["lr"]),
            "train_batch": int(params["batch"]), "train_attention": bool(sizes["attention"])}


def form_of_trial(params: dict, settings: TuneSettings) -> dict:
    """A trial with what its study held fixed (data, split, budget, seed) as the form's values."""
    return {**train_config_form(params),
            "train_split": settings.split, "train_patients": list(settings.patients), "train_epochs": settings.epochs,
            "train_patience": settings.patience, "train_seed": settings.seed, "train_target": settings.target,
            "train_dose_window": settings.dose_window, "train_cgm_every": settings.cgm_every}
