"""DoseNet: a hybrid LSTM-GRU that predicts the next Regular insulin dose (units).

Design (hybrid LSTM-GRU for insulin dose prediction):

    seq (batch, window, n_seq) --LSTM stack--> --GRU stack--> last hidden state (batch, gru_hidden)
    [last hidden | now (batch, n_now) | patient embedding (batch, emb)]
        --dense MLP (ReLU, dropout)-->
        amount head: softplus, never negative          (batch, n_targets)  units
        dose head:   logit of "a dose is given now"    (batch, n_targets)

Most timeline rows carry no Regular dose, so one regression head alone learns to predict small
non-zero doses everywhere. The dose/no-dose head decides *whether* a dose is given and the amount
head *how much*; `predict_dose` combines them (and rounds to whole units, as people inject).

Patient index 0 is the "unknown patient" row of the embedding (a new patient, the patients split);
known patients are 1..n_patients. `patient_embedding=0` gives a pooled model with no embedding.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from .configs import check_keys

# Upper limits that catch typing errors in a config (not tuning advice).
MAX_FEATURES = 4096
MAX_PATIENTS = 100_000
MAX_WINDOW = 512
MAX_HIDDEN = 1024
MAX_LAYERS = 8
MAX_EMBEDDING = 256
MAX_DENSE_LAYERS = 8
MAX_TARGETS = 3  # Regular, NPH, UltraLente


def _check_int(name: str, value, lo: int, hi: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, got {value}")


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
    dense: tuple[int, ...] = (64, 32)
    dropout: float = 0.1
    patient_embedding: int = 8  # 0 = pooled model, no embedding
    n_targets: int = 1  # 3 = Regular, NPH, UltraLente

    def __post_init__(self):
        if isinstance(self.dense, list):  # accept a list (e.g. from a form); store a tuple
            object.__setattr__(self, "dense", tuple(self.dense))
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

    def to_dict(self) -> dict:
        d = asdict(self)
        d["dense"] = list(self.dense)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        check_keys(cls, d)
        d = dict(d)
        if "dense" in d and isinstance(d["dense"], (list, tuple)):
            d["dense"] = tuple(d["dense"])
        try:
            return cls(**d)
        except TypeError as e:  # a required key is missing
            raise ValueError(f"ModelConfig: {e}") from None


class DoseNet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        between = lambda layers: cfg.dropout if layers > 1 else 0.0  # noqa: E731 (rnn dropout)
        self.lstm = nn.LSTM(cfg.n_seq_features, cfg.lstm_hidden, cfg.lstm_layers,
                            batch_first=True, dropout=between(cfg.lstm_layers))
        self.gru = nn.GRU(cfg.lstm_hidden, cfg.gru_hidden, cfg.gru_layers,
                          batch_first=True, dropout=between(cfg.gru_layers))
        self.embed = (nn.Embedding(cfg.n_patients + 1, cfg.patient_embedding)
                      if cfg.patient_embedding > 0 else None)
        layers, width = [], cfg.gru_hidden + cfg.n_now_features + cfg.patient_embedding
        for out in cfg.dense:
            layers += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = out
        self.mlp = nn.Sequential(*layers)
        self.amount = nn.Linear(width, cfg.n_targets)
        self.dose = nn.Linear(width, cfg.n_targets)
        # P(dose) above which a dose is predicted; tuned on the validation part after training
        # (train.tune_threshold) and saved with the weights.
        self.register_buffer("dose_threshold", torch.full((cfg.n_targets,), 0.5))

    def forward(self, seq: torch.Tensor, now: torch.Tensor | None = None,
                patient: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        b = seq.shape[0]
        x, _ = self.lstm(seq)  # (b, window, n_seq) -> (b, window, lstm_hidden)
        _, h = self.gru(x)  # h: (gru_layers, b, gru_hidden)
        parts = [h[-1]]  # (b, gru_hidden)
        if now is not None:
            parts.append(now)  # (b, n_now), n_now may be 0
        if self.embed is not None:
            if patient is None:
                patient = torch.zeros(b, dtype=torch.long, device=seq.device)
            patient = patient.long()
            # anything outside 1..n_patients is an unknown patient (row 0)
            patient = torch.where((patient > 0) & (patient <= self.cfg.n_patients), patient, 0)
            parts.append(self.embed(patient))  # (b, emb)
        z = self.mlp(torch.cat(parts, dim=1))  # (b, gru_hidden + n_now + emb) -> (b, dense[-1])
        amount = F.softplus(self.amount(z))  # (b, n_targets), >= 0 units
        dose_logit = self.dose(z)  # (b, n_targets)
        return amount, dose_logit

    @torch.no_grad()
    def predict_dose(self, seq: torch.Tensor, now: torch.Tensor | None = None,
                     patient: torch.Tensor | None = None, threshold: float | None = None,
                     round_units: bool = True) -> torch.Tensor:
        """Dose in units (batch, n_targets): amount where P(dose) > threshold, else 0.

        Rounded half-up to whole units when `round_units`; never negative. Uses the module's
        current mode: call `.eval()` first for deterministic predictions.
        """
        amount, dose_logit = self(seq, now, patient)
        threshold = self.dose_threshold if threshold is None else threshold
        return dose_from_heads(amount, dose_logit, threshold, round_units)


def dose_from_heads(amount: torch.Tensor, dose_logit: torch.Tensor, threshold: float | torch.Tensor = 0.5,
                    round_units: bool = True) -> torch.Tensor:
    """Combine the two heads into a dose: amount where sigmoid(logit) > threshold, else 0."""
    dose = torch.where(torch.sigmoid(dose_logit) > threshold, amount, torch.zeros_like(amount))
    if round_units:
        dose = torch.floor(dose + 0.5)  # half-up: 2.5 U -> 3 U
    return dose.clamp_min(0.0)


def pick_device(prefer: str = "auto") -> torch.device:
    """"auto"/"cuda": CUDA when available, else CPU. "cpu": CPU."""
    if prefer not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {prefer!r}")
    if prefer != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
