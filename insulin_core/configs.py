"""The configs of a model and of its training, with their defaults: the one home of every default
size and setting the pipeline, the CLI and the Train page use. Plain dataclasses, no torch, so a
command that only reads data never loads the deep-learning stack."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields


def check_keys(config_class, d: dict) -> None:
    """A config read from JSON must not carry keys the dataclass does not know (typos, other versions)."""
    if not isinstance(d, dict):
        raise ValueError(f"{config_class.__name__} must be a JSON object, got {type(d).__name__}")
    known = {f.name for f in fields(config_class)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ValueError(f"unknown {config_class.__name__} keys {unknown}; known keys: {sorted(known)}")


# Upper limits that catch typing errors in a config (not tuning advice).
MAX_FEATURES = 4096
MAX_PATIENTS = 100_000
MAX_WINDOW = 512
MAX_HIDDEN = 1024
MAX_LAYERS = 8
MAX_EMBEDDING = 256
MAX_DENSE_LAYERS = 8
MAX_TARGETS = 3  # Regular, NPH, UltraLente
MAX_BINS = 64
MAX_MEMBERS = 16
NOW_ROLES = ("context", "up", "down", "ignored")


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")


def parse_dense(text: str) -> tuple[int, ...]:
    """Dense-layer widths from text ("128,64" or "128, 64"), as the CLI, the Train page and the
    tuner write them: whole numbers separated by commas, blank parts skipped. Their range is
    ModelConfig's to check."""
    try:
        return tuple(int(part) for part in str(text).split(",") if part.strip())
    except ValueError:
        raise ValueError(f"dense layers must be whole numbers separated by commas, got {text!r}") from None


def dense_text(dense: tuple[int, ...], sep: str = ",") -> str:
    """The text parse_dense reads; "," for the tuner's categorical values, ", " for the Train page."""
    return sep.join(str(w) for w in dense)


@dataclass(frozen=True)
class ModelConfig:
    n_seq_features: int
    n_now_features: int
    n_patients: int  # known patients; the embedding has n_patients + 1 rows (0 = unknown)
    window: int = 10
    lstm_hidden: int = 64
    lstm_layers: int = 1
    gru_hidden: int = 32
    gru_layers: int = 1
    dense: tuple[int, ...] = (128, 64)
    dropout: float = 0.1
    patient_embedding: int = 16  # 0 = pooled model, no embedding
    n_targets: int = 1  # 3 = Regular, NPH, UltraLente
    attention: bool = False  # attention pooling over the window's GRU outputs, beside the last state
    # Piecewise-linear encoding of each decision-moment feature over this many training-quantile
    # bins (Gorishniy et al. 2022), beside the raw value: lets the network cut a feature at
    # thresholds as trees do. 0 = raw values only (bundles from before it read as 0).
    now_bins: int = 16
    # Networks trained side by side on the same batches, from different initial weights; their
    # average is the answer (a seed ensemble in one training run). 1 = a single network. Five,
    # with the weights' moving average (TrainConfig.ema), made every seed of one run beat every
    # baseline on the real data (docs/results.md, issue 17); three did on some seeds only.
    members: int = 5
    # Monotone by construction (model.py): the dose never falls as glucose now rises, nor rises
    # with exercise now, whatever the weights; takes effect where `now_roles` has an "up" feature
    # (`is_monotone`). Bundles from before it read False.
    monotone: bool = True
    # Hidden units of the monotone path: ReLU units over the rising inputs with non-negative weights
    # and a threshold set by the context (0 = context-set slopes on the rising inputs only).
    mono_hidden: int = 32
    # The role of each decision-moment feature in a monotone network (features.now_roles): up,
    # down, ignored or context. Given by the data, like the feature counts.
    now_roles: tuple[str, ...] = ()

    def __post_init__(self):
        for name in ("dense", "now_roles"):  # accept a list (e.g. from a form or JSON); store a tuple
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        self.validate()

    def validate(self) -> None:
        _check_int("n_seq_features", self.n_seq_features, 1, MAX_FEATURES)
        _check_int("n_now_features", self.n_now_features, 0, MAX_FEATURES)
        _check_int("n_patients", self.n_patients, 0, MAX_PATIENTS)
        _check_int("window", self.window, 1, MAX_WINDOW)
        _check_int("lstm_hidden", self.lstm_hidden, 1, MAX_HIDDEN)
        _check_int("lstm_layers", self.lstm_layers, 1, MAX_LAYERS)
        _check_int("gru_hidden", self.gru_hidden, 1, MAX_HIDDEN)
        _check_int("gru_layers", self.gru_layers, 1, MAX_LAYERS)
        _check_int("patient_embedding", self.patient_embedding, 0, MAX_EMBEDDING)
        _check_int("n_targets", self.n_targets, 1, MAX_TARGETS)
        if not isinstance(self.dense, tuple):
            raise ValueError(f"dense must be a tuple of layer widths, got {self.dense!r}")
        if len(self.dense) > MAX_DENSE_LAYERS:
            raise ValueError(f"dense has {len(self.dense)} layers; at most {MAX_DENSE_LAYERS}")
        for i, width in enumerate(self.dense):
            _check_int(f"dense[{i}]", width, 1, MAX_HIDDEN)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)):
            raise ValueError(f"dropout must be a number, got {self.dropout!r}")
        if not 0.0 <= self.dropout <= 0.9:
            raise ValueError(f"dropout must be between 0 and 0.9, got {self.dropout}")
        _check_int("now_bins", self.now_bins, 0, MAX_BINS)
        _check_int("members", self.members, 1, MAX_MEMBERS)
        _check_int("mono_hidden", self.mono_hidden, 0, MAX_HIDDEN)
        if not isinstance(self.attention, bool):
            raise ValueError(f"attention must be true or false, got {self.attention!r}")
        if not isinstance(self.monotone, bool):
            raise ValueError(f"monotone must be true or false, got {self.monotone!r}")
        if not isinstance(self.now_roles, tuple) or not set(self.now_roles) <= set(NOW_ROLES):
            raise ValueError(f"now_roles must be a list of {NOW_ROLES}, got {self.now_roles!r}")
        if self.now_roles and len(self.now_roles) != self.n_now_features:
            raise ValueError(f"now_roles must give a role to each of the {self.n_now_features} decision-moment "
                             f"features, got {len(self.now_roles)}")

    @property
    def is_monotone(self) -> bool:
        """Monotone by construction: asked for, and the data gives a feature to rise with (glucose
        now). A next-row model (no decision moment) or a config without roles is the plain network."""
        return self.monotone and "up" in self.now_roles
    def to_dict(self) -> dict:
        d = asdict(self)
        d["dense"], d["now_roles"] = list(self.dense), list(self.now_roles)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        check_keys(cls, d)
        d = dict(d)
        if "dense" in d and isinstance(d["dense"], (list, tuple)):
            d["dense"] = tuple(d["dense"])
        d.setdefault("now_bins", 0)  # written before the encoding existed
        d.setdefault("members", 1)  # ... and before members
        d.setdefault("monotone", False)  # ... and before the monotone network
        try:
            return cls(**d)
        except TypeError as e:  # a required key is missing
            raise ValueError(f"ModelConfig: {e}") from None


# The user-chosen part of a ModelConfig (everything the data does not fix), with its defaults:
# the one home of the default sizes for the pipeline, the CLI and the Train page.
DATA_FIELDS = ("n_seq_features", "n_now_features", "n_patients", "window", "n_targets", "now_roles")
DEFAULT_SIZES = {f.name: f.default for f in fields(ModelConfig) if f.name not in DATA_FIELDS}


SCHEDULES = ("plateau", "onecycle")


@dataclass(frozen=True)
class TrainConfig:
    # Large batches at a high learning rate: as accurate as batches of 256 at 3e-3 on the real
    # data, in fewer optimiser steps. Patience 12: the monotone network (issue 17) keeps improving
    # for longer; with 6 one run's test MAE swung by +-0.03 U with the seed (docs/results.md).
    epochs: int = 150
    patience: int = 12
    batch: int = 1024
    lr: float = 1e-2
    weight_decay: float = 1e-5
    clip: float = 1.0  # max gradient norm; 0 = no clipping
    seed: int = 0
    device: str = "auto"
    patient_dropout: float = 0.1  # P(training row's patient -> 0 = unknown) per batch
    # Small beta: an L1-like amount loss, which aims at the median dose, i.e. at MAE. 0.1 since
    # issue 17: with the monotone network it lowered the unseen patients' dose-occasion MAE
    # (docs/results.md); bundles keep the beta they were trained with (it only acts in training).
    huber_beta: float = 0.1
    select_on: str = "val_loss"  # which validation figure picks the best epoch: val_loss | val_mae
    # Pick the P(dose) threshold that minimises validation MAE. Off by default: on the real data
    # (chrono split) a threshold tuned on the small validation part did not carry over to the test
    # part (bench/threshold.py; figures in docs/results.md).
    tune_threshold: bool = False
    # Pick the threshold for patients the model has no embedding row for (new patients, served by
    # row 0) on the validation part seen through row 0, by MAE + dose-occasion MAE (issue 17). On
    # by default: unlike the known patients' threshold it carried over to unseen patients' test
    # rows on every seed and both unseen sets (docs/results.md, "new-patient threshold").
    tune_new_patient_threshold: bool = True
    # CPU threads for this run (restored afterwards); 0 = leave torch's default. 1 by default, as
    # the Train page and background runs use: a model this small gains little from a second
    # thread, and on a shared 2-core CPU one thread leaves the other core to the dashboard.
    # A rerun with the same seed on the same machine gives the same weights (deterministic
    # algorithms, train_model); another CPU may not (its kernels round differently).
    threads: int = 1
    # Learning-rate schedule. "onecycle": warm up to `lr` over the first `warmup` share of the
    # `epochs`, then cosine-anneal to ~0, stepped per batch (Smith & Topin 2019): converges in a
    # known, small number of epochs. "plateau": `lr` halved when the validation loss stalls
    # (the schedule of bundles from before "onecycle" existed).
    schedule: str = "plateau"
    warmup: float = 0.25
    # "bf16": forward and backward under bfloat16 autocast (AMX/AVX-512 BF16 CPUs, recent GPUs),
    # weights and optimiser in float32; 1.5x per batch on this machine (docs/performance.md).
    precision: str = "fp32"
    # Decay per batch of an exponential moving average of the weights, which is what is validated
    # and kept (0 = the weights as trained, as before it existed). 0.98 averages over about two
    # epochs of the real data's batches: it steadied one run's test MAE across seeds (issue 17).
    ema: float = 0.98

    def __post_init__(self):
        self.validate()

    def validate(self) -> None:
        def integer(name, lo, hi):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ValueError(f"{name} must be an integer between {lo} and {hi}, got {v!r}")

        def number(name, lo, hi, lo_open=False):
            v = getattr(self, name)
            ok = (not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
                  and (v > lo if lo_open else v >= lo) and v <= hi)
            if not ok:
                side = "(" if lo_open else "["
                raise ValueError(f"{name} must be a number in {side}{lo}, {hi}], got {v!r}")

        integer("epochs", 1, 10_000)
        integer("patience", 1, 10_000)
        integer("batch", 1, 1_000_000)
        integer("seed", 0, 2**63 - 1)
        integer("threads", 0, 1024)
        number("lr", 0.0, 1e6, lo_open=True)
        number("weight_decay", 0.0, 1.0)
        number("clip", 0.0, 1e6)
        number("patient_dropout", 0.0, 1.0)
        number("huber_beta", 0.0, 100.0, lo_open=True)
        number("warmup", 0.0, 0.9)
        number("ema", 0.0, 0.9999)
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be 'fp32' or 'bf16', got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if self.select_on not in ("val_loss", "val_mae"):
            raise ValueError(f"select_on must be 'val_loss' or 'val_mae', got {self.select_on!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        check_keys(cls, d)
        d = dict(d)
        d.setdefault("schedule", "plateau")  # written before the schedule was a setting
        d.setdefault("ema", 0.0)  # ... and before the moving average
        d.setdefault("tune_new_patient_threshold", False)  # ... and before the new-patient threshold
        return cls(**d)
