"""Hyperparameter search with Optuna: a study of DoseNet settings scored by validation MAE.

One study lives in one Optuna storage (study_storage.py: by default an embedded journal file in
the project's data folder, or any SQLAlchemy database URL), so that several processes, on one
machine or many, work on the same study: each asks the storage for the next trial, trains it, and
writes the result back.

- The search space (`SEARCH_SPACE`) holds only values the Train page offers, and the defaults of
  `configs.DEFAULT_SIZES` / `TrainConfig` / `WindowConfig`, so the default model is one point of it.
  A new study tries that default first: the search starts from the model it has to beat.
- The objective trains on the training part and scores the validation part of the chosen split; it
  is built from `TuneData`, which keeps only those two parts (never the test part).
- Each epoch's validation loss is reported to the pruner (a median pruner): a trial far behind the
  others at the same epoch is stopped and recorded as pruned.
- The seed fixes the sampler of the process that creates the study, the splits and every model's
  initial weights, so one worker reproduces a study exactly; a worker that joins draws its own
  sampler seed (else two workers would propose the same settings).
"""
from __future__ import annotations

import math
import os
import secrets
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

import numpy as np
import optuna
import pandas as pd

from ..models.arrays import TrainData
from ..configs import DEFAULT_SIZES, MAX_MEMBERS, ModelConfig, TrainConfig, check_keys, dense_text, parse_dense
from ..evaluation.pipeline import ExperimentConfig, bundle_meta, model_config_for, prepare, run_experiment
from ..prep.splits import DEFAULT_SPLIT
from .study_storage import default_storage, is_empty, open_storage, storage_label
from ..models.train import EpochLog, train_model
from ..prep.windows import WindowConfig

# Choices per setting. Every value is one the Train page offers (its select_sliders and sliders),
# so the best configuration can be sent to its form as it is; the defaults must be among them
# (tests/test_tune.py checks both). Categorical lists rather than ranges: the page's sliders are
# discrete, and so is what is worth telling apart at this data size.
SEARCH_SPACE: dict[str, tuple] = {
    "window": (5, 10, 15, 20, 30),
    "lstm_hidden": (16, 32, 64, 128),
    "lstm_layers": (1, 2),
    "gru_hidden": (16, 32, 64),
    "gru_layers": (1, 2),
    "dense": ("32", "64", "64,32", "128,64"),  # layer widths (categorical values must be plain)
    "dropout": (0.0, 0.1, 0.2, 0.3),
    "lr": (3e-4, 1e-3, 3e-3, 1e-2),
    "batch": (64, 128, 256, 512, 1024),
    "attention": (False, True),
}
SIZE_PARAMS = ("lstm_hidden", "lstm_layers", "gru_hidden", "gru_layers", "dense", "dropout", "attention")


def default_params() -> dict:
    """The default model as a point of the search space (from the one home of the defaults)."""
    t = TrainConfig()
    params = {k: DEFAULT_SIZES[k] for k in SIZE_PARAMS}
    params.update(window=WindowConfig().length, dense=dense_text(DEFAULT_SIZES["dense"]), lr=t.lr, batch=t.batch)
    return params


def suggest(trial: optuna.Trial, space: dict[str, tuple] | None = None) -> dict:
    """A trial's point of `space` (SEARCH_SPACE, read when called)."""
    space = SEARCH_SPACE if space is None else space
    return {name: trial.suggest_categorical(name, list(choices)) for name, choices in space.items()}


def sizes_of(params: dict) -> dict:
    """The ModelConfig sizes of a trial's parameters."""
    sizes = {k: params[k] for k in SIZE_PARAMS}
    sizes["dense"] = parse_dense(params["dense"])
    return sizes


@dataclass(frozen=True)
class TuneSettings:
    """What a study holds fixed: the data selection and split, the training budget per trial, the seed.
    Stored in the study, so a worker that joins with other settings is refused."""
    split: str = DEFAULT_SPLIT
    target: str = WindowConfig().target
    dose_window: int = WindowConfig().dose_window
    patients: tuple[int, ...] = ()
    epochs: int = TrainConfig().epochs
    patience: int = TrainConfig().patience
    seed: int = 0
    # The ensemble size is held fixed, not searched: members train the same configuration side by
    # side, so a study of 1-member trials ranks configurations at a fifth of the cost.
    members: int = DEFAULT_SIZES["members"]
    cgm_every: int = WindowConfig().cgm_every  # the CGM cadence of decision points (timeline.py)

    def experiment(self, window: int) -> ExperimentConfig:
        return ExperimentConfig(WindowConfig(window, self.target, dose_window=self.dose_window,
                                             cgm_every=self.cgm_every), self.split, self.patients, seed=self.seed)

    def train_config(self, params: dict) -> TrainConfig:
        # One thread: on a small shared CPU, torch's default threads make these models far slower.
        return TrainConfig(epochs=self.epochs, patience=self.patience, batch=int(params["batch"]),
                           lr=float(params["lr"]), seed=self.seed, threads=1)

    def __post_init__(self):
        if not (isinstance(self.members, int) and 1 <= self.members <= MAX_MEMBERS):
            raise ValueError(f"members must be a whole number from 1 to {MAX_MEMBERS}, got {self.members!r}")

    def sizes(self, params: dict) -> dict:
        """The ModelConfig sizes a trial of this study trains: the trial's own, at the study's ensemble size."""
        return {**sizes_of(params), "members": self.members}

    def to_dict(self) -> dict:
        d = asdict(self)
        d["patients"] = list(self.patients)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TuneSettings":
        check_keys(cls, d)  # a study written by another version says so rather than being misread
        return cls(**{**d, "patients": tuple(d.get("patients", ()))})


class TuneData:
    """The training and validation parts of a cohort per window length: all the objective sees.

    `prepare` splits the windows and fits the scalers on the training part; only
    `Prepared.train_data()` (training and validation arrays) is kept, so no trial can reach the
    test part.
    """

    def __init__(self, features: pd.DataFrame, settings: TuneSettings):
        self.features, self.settings = features, settings
        self._parts: dict[int, tuple[TrainData, ModelConfig]] = {}

    def parts(self, window: int) -> tuple[TrainData, ModelConfig]:
        """(training + validation arrays, a ModelConfig whose data-given fields fit them)."""
        if window not in self._parts:
            prepared = prepare(self.features, self.settings.experiment(window))
            self._parts[window] = (prepared.train_data(), model_config_for(prepared))
        return self._parts[window]


COUNTED = tuple(s for s in optuna.trial.TrialState if s != optuna.trial.TrialState.WAITING)


class TrialDiverged(Exception):
    """No epoch of the trial gave a usable model (its loss became NaN or exploded): recorded as failed."""


class StopStudy(Exception):
    """Raised inside a trial the user stopped: the trial is recorded as failed (not pruned: no
    pruner judged it) and the worker stops."""


def make_objective(data: TuneData, on_epoch: Callable[[int, EpochLog], bool | None] | None = None):
    """The objective: validation MAE (units) of the epoch training keeps (best validation loss).

    `on_epoch(trial_number, log)` is called after each epoch; returning True stops this worker.
    """
    settings = data.settings

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial)
        train_data, base_cfg = data.parts(int(params["window"]))
        model_cfg = replace(base_cfg, **settings.sizes(params))
        state = {"pruned": False, "stopped": False}

        def epoch_done(log: EpochLog) -> bool:
            # Optuna prunes on an intermediate value per step: the validation loss, smoother than
            # the rounded-dose MAE and what training itself selects epochs on.
            if math.isfinite(log.val_loss):
                trial.report(log.val_loss, log.epoch)
            if on_epoch is not None and on_epoch(trial.number, log):
                state["stopped"] = True
                return True
            if trial.should_prune():
                state["pruned"] = True
                return True
            return False

        result = train_model(model_cfg, settings.train_config(params), train_data, epoch_done)
        trial.set_user_attr("epochs_run", len(result.history))
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("stop_reason", result.stop_reason)
        trial.set_user_attr("train_seconds", round(result.seconds, 2))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        stopped_here = result.stop_reason == "stopped_by_user"
        if state["stopped"] and stopped_here:
            trial.set_user_attr("stopped_by_user", True)
            raise StopStudy(f"trial {trial.number} stopped by the user after epoch {len(result.history)}")
        if state["pruned"] and stopped_here:
            raise optuna.TrialPruned(f"pruned after epoch {len(result.history)}")
        if result.best_epoch == 0:
            raise TrialDiverged(result.message)
        return float(result.history[result.best_epoch - 1].val_mae)

    return objective


def default_study_name(settings: TuneSettings, fingerprint: str) -> str:
    """Workers with the same data and split meet in the same study without naming it."""
    return f"dose-{settings.split}-{fingerprint[:8]}"


# ---- running a study --------------------------------------------------------------------------
@dataclass
class TuneRun:
    study: optuna.Study
    storage: str  # as given (may hold a password: show storage_label(storage))
    created: bool  # this process created the study
    ran: list[int] = field(default_factory=list)  # numbers of the trials this process ran
    seconds: float = 0.0
    stopped: bool = False  # the user stopped it
    sampler_seed: int = 0


def open_study(name: str, storage: str | None, settings: TuneSettings, fingerprint: str,
               create: bool = True) -> tuple[optuna.Study, bool]:
    """(the study, whether this call created it). A study created with other settings or data is
    refused: its trials would not be comparable."""
    store = open_storage(storage)
    wanted = {"settings": settings.to_dict(), "data_fingerprint": fingerprint}
    created = False
    if create:
        try:
            study = optuna.create_study(storage=store, study_name=name, direction="minimize")
            created = True
        except optuna.exceptions.DuplicatedStudyError:
            study = optuna.load_study(study_name=name, storage=store)
    else:
        try:
            study = optuna.load_study(study_name=name, storage=store)
        except KeyError:
            raise ValueError(f"No study named {name!r} in {storage_label(storage)}") from None
    if created:
        for key, value in wanted.items():
            study.set_user_attr(key, value)
        # The search starts from the model it has to beat. Only the creator enqueues it (a worker
        # that joins never does), so it is tried once however many workers start together.
        study.enqueue_trial(default_params(), user_attrs={"default": True})
    else:
        _check_same(study, wanted)
    return study, created


def _check_same(study: optuna.Study, wanted: dict) -> None:
    have = {k: study.user_attrs.get(k) for k in wanted}
    if have["settings"] is not None:  # a study stored before a setting existed holds that setting's default
        try:
            have["settings"] = TuneSettings.from_dict(have["settings"]).to_dict()
        except (TypeError, ValueError):
            pass  # unreadable settings: compared as stored, hence refused below
    if None not in have.values() and have != wanted:
        diff = [k for k in wanted["settings"] if have["settings"].get(k) != wanted["settings"][k]]
        what = f"settings {diff}" if diff else "data (another fingerprint)"
        raise ValueError(f"Study {study.study_name!r} was created with other {what}; join it with the same settings "
                         f"or pick another study name")


def check_joinable(name: str, storage: str | None, settings: TuneSettings, fingerprint: str) -> None:
    """Raise ValueError now if the study `name` exists with other settings or data, so whoever
    starts a worker in the background hears it at once rather than from a failed worker."""
    study = find_study(name, storage)
    if study is not None:
        _check_same(study, {"settings": settings.to_dict(), "data_fingerprint": fingerprint})


def find_study(name: str, storage: str | None = None) -> optuna.Study | None:
    """The study `name` if the storage holds it (a journal file that does not exist yet holds none)."""
    if is_empty(storage):
        return None
    try:
        return optuna.load_study(study_name=name, storage=open_storage(storage))
    except KeyError:
        return None


def study_names(storage: str | None = None) -> list[str]:
    if is_empty(storage):
        return []
    return sorted(optuna.study.get_all_study_names(open_storage(storage)))


def study_settings(study: optuna.Study) -> TuneSettings:
    return TuneSettings.from_dict(dict(study.user_attrs.get("settings") or {}))


def run_study(features: pd.DataFrame, fingerprint: str, settings: TuneSettings, trials: int,
              storage: str | None = None, name: str | None = None, timeout: float | None = None,
              on_epoch: Callable[[int, EpochLog], bool | None] | None = None,
              on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
              pruner: optuna.pruners.BasePruner | None = None) -> TuneRun:
    """Create or join the study `name` and run trials until it holds `trials` trials in all (every
    worker counts toward one budget), `timeout` seconds pass, or `on_epoch` returns True."""
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 0:
        raise ValueError(f"trials must be a whole number >= 0, got {trials!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    name = name or default_study_name(settings, fingerprint)
    study, created = open_study(name, storage, settings, fingerprint)
    sampler_seed = settings.seed if created else secrets.randbelow(2**31)
    # Same seed, same history -> same proposals; pruning waits for a few finished trials and epochs.
    study.sampler = optuna.samplers.TPESampler(seed=sampler_seed, n_startup_trials=6)
    study.pruner = pruner or optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=3)
    run = TuneRun(study, storage or default_storage(), created, sampler_seed=sampler_seed)
    left = trials - len(study.get_trials(deepcopy=False, states=COUNTED))
    if left <= 0:
        return run
    # One budget for every worker: running trials of the others count, so N workers overshoot it
    # by at most N - 1 trials (those started in the same instant).
    budget = optuna.study.MaxTrialsCallback(trials, states=COUNTED)

    def trial_done(st: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        run.ran.append(trial.number)
        budget(st, trial)
        if on_trial is not None:
            on_trial(st, trial)

    start = time.perf_counter()
    data = TuneData(features, settings)
    try:
        study.optimize(make_objective(data, on_epoch), n_trials=left, timeout=timeout, callbacks=[trial_done],
                       catch=(TrialDiverged,))
    except StopStudy:
        run.stopped = True
    run.seconds = time.perf_counter() - start
    return run


# ---- results ----------------------------------------------------------------------------------
def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, val_mae, its parameters, epochs, seconds, worker."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start else np.nan
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     # Optuna gives a pruned trial its last intermediate value (a loss, not a MAE)
                     "val_mae": t.value if t.state == optuna.trial.TrialState.COMPLETE else np.nan,
                     **{k: t.params.get(k) for k in SEARCH_SPACE},
                     "epochs": t.user_attrs.get("epochs_run"), "seconds": seconds,
                     "default": bool(t.user_attrs.get("default", False)), "worker": t.user_attrs.get("worker", "")})
    columns = ["trial", "state", "val_mae", *SEARCH_SPACE, "epochs", "seconds", "default", "worker"]
    return pd.DataFrame(rows, columns=columns)


def best_trials(study: optuna.Study, k: int = 5) -> pd.DataFrame:
    table = trials_table(study)
    done = table[table["state"] == "complete"]
    return done.sort_values(["val_mae", "trial"]).head(k).reset_index(drop=True)


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial:
    done = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))]
    if not done:
        raise ValueError(f"Study {study.study_name!r} has no finished trial yet")
    return min(done, key=lambda t: (t.value, t.number))


@dataclass(frozen=True)
class BestSetup:
    """What training the best trial's configuration needs: the one recipe of train_best (the CLI)
    and best_run_spec (the Tune page's background run), so both train the same model."""
    exp: ExperimentConfig
    sizes: dict
    train_cfg: TrainConfig
    study: dict  # written into the bundle's metadata: which study and trial it came from


def best_setup(study: optuna.Study, storage: str | None) -> BestSetup:
    trial = best_trial(study)
    settings = study_settings(study)
    return BestSetup(settings.experiment(int(trial.params["window"])), settings.sizes(trial.params),
                     settings.train_config(trial.params),
                     {"name": study.study_name, "storage": storage_label(storage), "trial": trial.number,
                      "val_mae": trial.value})


def train_best(features: pd.DataFrame, study: optuna.Study, storage: str | None, source_label: str,
               fingerprint: str, callback: Callable[[EpochLog], bool | None] | None = None,
               baselines: list[str] | None = None):
    """Train the best trial's configuration on the study's settings and evaluate it on the test
    part (the first time the test part is used). Returns (ExperimentResult, bundle meta)."""
    setup = best_setup(study, storage)
    result = run_experiment(features, setup.exp, setup.sizes, setup.train_cfg, callback, baselines)
    meta = bundle_meta(result, setup.exp, setup.train_cfg, source_label, fingerprint)
    meta["study"] = setup.study
    return result, meta

