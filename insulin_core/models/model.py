"""DoseNet: a hybrid LSTM-GRU that predicts the next Regular insulin dose (units).

Design (hybrid LSTM-GRU for insulin dose prediction):

    seq (batch, window, n_seq) --LSTM stack--> --GRU stack--> last hidden state (batch, gru_hidden)
    optional attention: a learned weighting of the GRU's outputs over the window (batch, gru_hidden)
    now (batch, n_now) --piecewise-linear bins--> (batch, n_now * now_bins)
    [last hidden | attended | now | now bins | patient embedding (batch, emb)]
        --dense MLP (ReLU, dropout)-->
        amount head: softplus, never negative          (batch, n_targets)  units
        dose head:   logit of "a dose is given now"    (batch, n_targets)

Monotone by construction (`cfg.is_monotone`, the default): the features that move with glucose
now (glucose itself, the patient's sliding scale made non-decreasing in glucose) and exercise now
leave the MLP's input. The MLP reads only the context (everything the same at every glucose of a
What-if sweep) and gives, besides the two heads' base, a slope per target and rising input:

    u      = relu(m @ softplus(W).T + threshold(z))      hidden units, W free, so weights >= 0
    amount = softplus(base_a(z) + sum_j softplus(slope_a_j(z)) * [m, u]_j)
    logit  =          base_d(z) + sum_j softplus(slope_d_j(z)) * [m, u]_j

where m is each rising input's value and piecewise-linear bins (each non-decreasing in glucose
now), and minus each falling input's (exercise now); each unit u rises with m. Slopes and W's entries are >= 0 for any weights and ReLU, softplus
and sigmoid rise, so the amount and P(dose) never fall as glucose rises (nor rise with exercise):
the dose rule (amount where P(dose) > threshold, whole units) then gives a dose that can only step
up, once, from none to a dose, and on from there. Why this form rather than non-negative weights
through a whole MLP: the context still shapes the curve (a meal, the day part, the patient's own
scale set how steeply the dose rises), while the guarantee needs no constraint on the MLP at all.

Most timeline rows carry no Regular dose, so one regression head alone learns to predict small
non-zero doses everywhere. The dose/no-dose head decides *whether* a dose is given and the amount
head *how much*; `dose_rule.to_dose` combines them (and rounds to whole units, as people inject).

Patient index 0 is the "unknown patient" row of the embedding (a new patient, the patients split);
known patients are 1..n_patients. `patient_embedding=0` gives a pooled model with no embedding.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..configs import DATA_FIELDS, DEFAULT_SIZES, ModelConfig  # noqa: F401 (re-exported)
from .dose_rule import DOSE_THRESHOLD

class PiecewiseLinear(nn.Module):
    """Each feature x as its position inside each of `bins` training-quantile bins, clipped to
    [0, 1]: 0 below the bin, 1 above it. The edges are buffers set once from the training part
    (`fit`), so they travel with the weights; a bin of zero width encodes as 0."""

    def __init__(self, n_features: int, bins: int):
        super().__init__()
        self.register_buffer("low", torch.zeros(n_features, bins))
        self.register_buffer("inv_width", torch.zeros(n_features, bins))

    @torch.no_grad()
    def fit(self, x: torch.Tensor) -> None:
        """Edges at the quantiles of x (rows, n_features): the training part's scaled values."""
        bins = self.low.shape[1]
        x = x[:: max(1, len(x) // 200_000)]  # an even sample: torch.quantile caps its input size
        q = torch.quantile(x.double(), torch.linspace(0, 1, bins + 1, dtype=torch.float64), dim=0).T
        width = q[:, 1:] - q[:, :-1]
        self.low.copy_(q[:, :-1])
        self.inv_width.copy_(torch.where(width > 0, 1.0 / width.clamp_min(1e-12), torch.zeros_like(width)))

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """(b, n_features, bins); each value non-decreasing in its feature whatever the buffers
        hold (a negative inverse width, from a foreign file, is read as 0)."""
        pos = (x.unsqueeze(-1) - self.low) * self.inv_width.clamp_min(0.0)
        return pos.clamp(0.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode(x).flatten(1)  # (b, n_features * bins)


class Member(nn.Module):
    """One LSTM-GRU network: the window and the (encoded) moment -> (amount, dose logit); with
    `mono_width` > 0 the monotone heads of the module docstring over that many rising inputs."""

    def __init__(self, cfg: ModelConfig, now_width: int, mono_width: int = 0):
        super().__init__()
        between = lambda layers: cfg.dropout if layers > 1 else 0.0  # noqa: E731 (rnn dropout)
        self.lstm = nn.LSTM(cfg.n_seq_features, cfg.lstm_hidden, cfg.lstm_layers,
                            batch_first=True, dropout=between(cfg.lstm_layers))
        self.gru = nn.GRU(cfg.lstm_hidden, cfg.gru_hidden, cfg.gru_layers,
                          batch_first=True, dropout=between(cfg.gru_layers))
        # Attention pooling: one score per window step from its GRU output, softmax over the window.
        self.attend = nn.Linear(cfg.gru_hidden, 1) if cfg.attention else None
        self.embed = (nn.Embedding(cfg.n_patients + 1, cfg.patient_embedding)
                      if cfg.patient_embedding > 0 else None)
        pooled = cfg.gru_hidden * (2 if cfg.attention else 1)
        layers, width = [], pooled + now_width + cfg.patient_embedding
        for out in cfg.dense:
            layers += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(cfg.dropout)]
            width = out
        self.mlp = nn.Sequential(*layers)
        self.amount = nn.Linear(width, cfg.n_targets)
        self.dose = nn.Linear(width, cfg.n_targets)
        self.slopes = self.rise_weight = self.rise_bias = None
        if mono_width:
            # Hidden ReLU units of the rising inputs: non-negative weights (softplus of free ones)
            # and a threshold from the context, so the context decides where the dose starts to rise.
            if cfg.mono_hidden:
                self.rise_weight = nn.Parameter(torch.randn(cfg.mono_hidden, mono_width) * 0.5 - 4.0)
                self.rise_bias = nn.Linear(width, cfg.mono_hidden)
            # (amount, dose) x targets x (rising inputs and units); starting slopes softplus(-3) =
            # 0.05, so that about a hundred inputs in [0, 1] do not swamp the base at the first step
            self.slopes = nn.Linear(width, 2 * cfg.n_targets * (mono_width + cfg.mono_hidden))
            nn.init.constant_(self.slopes.bias, -3.0)

    def forward(self, seq: torch.Tensor, now: torch.Tensor, patient: torch.Tensor,
                rising: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        x, _ = self.lstm(seq)  # (b, window, n_seq) -> (b, window, lstm_hidden)
        x, h = self.gru(x)  # x: (b, window, gru_hidden), h: (gru_layers, b, gru_hidden)
        parts = [h[-1], now]  # (b, gru_hidden), (b, now_width); now_width may be 0
        if self.attend is not None:
            weights = torch.softmax(self.attend(x), dim=1)  # (b, window, 1)
            parts.append((weights * x).sum(dim=1))  # (b, gru_hidden)
        if self.embed is not None:
            parts.append(self.embed(patient))  # (b, emb)
        z = self.mlp(torch.cat(parts, dim=1))  # (b, pooled + now_width + emb) -> (b, dense[-1])
        amount, dose_logit = self.amount(z), self.dose(z)  # (b, n_targets) each
        if self.slopes is not None:  # rising: (b, mono_width), each non-decreasing in glucose now
            if self.rise_weight is not None:
                units = F.relu(rising @ F.softplus(self.rise_weight).T + self.rise_bias(z))  # (b, mono_hidden), rising too
                rising = torch.cat([rising, units], dim=1)  # (b, mono_width + mono_hidden)
            slopes = F.softplus(self.slopes(z)).view(len(z), 2, -1, rising.shape[1])  # (b, 2, n_targets, .), >= 0
            rise = (slopes * rising[:, None, None, :]).sum(dim=-1)  # (b, 2, n_targets)
            amount, dose_logit = amount + rise[:, 0], dose_logit + rise[:, 1]
        return F.softplus(amount), dose_logit  # amount >= 0 units


class DoseNet(nn.Module):
    """`cfg.members` LSTM-GRU networks trained side by side; the answer is their average (mean
    amount, mean P(dose)). One member is the plain hybrid LSTM-GRU."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.bins = PiecewiseLinear(cfg.n_now_features, cfg.now_bins) if cfg.now_bins and cfg.n_now_features else None
        per_feature = 1 + (cfg.now_bins if self.bins is not None else 0)  # the value and its bins
        roles = cfg.now_roles if cfg.is_monotone else ("context",) * cfg.n_now_features
        for role in ("context", "up", "down"):  # which decision-moment columns take which path
            index = torch.tensor([i for i, r in enumerate(roles) if r == role], dtype=torch.long)
            self.register_buffer(f"{role}_idx", index, persistent=False)
        now_width = len(self.context_idx) * per_feature
        mono_width = (len(self.up_idx) + len(self.down_idx)) * per_feature if cfg.is_monotone else 0
        self.members = nn.ModuleList(Member(cfg, now_width, mono_width) for _ in range(cfg.members))
        # P(dose) above which a dose is predicted; tuned on the validation part after training
        # (train.tune_threshold) and saved with the weights.
        self.register_buffer("dose_threshold", torch.full((cfg.n_targets,), DOSE_THRESHOLD))
        # The same for a patient the model has no embedding row for (row 0), tuned after training
        # too (train.tune_new_patient_threshold): the unknown row's P(dose) is read differently.
        self.register_buffer("new_patient_threshold", torch.full((cfg.n_targets,), DOSE_THRESHOLD))

    def member_outputs(self, seq: torch.Tensor, now: torch.Tensor | None = None,
                       patient: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(amount, dose logit) of each member: what training fits, one loss per member."""
        b = seq.shape[0]
        now = seq.new_zeros(b, 0) if now is None else now  # (b, n_now), n_now may be 0
        rising = None
        if self.cfg.is_monotone:
            enc = now.unsqueeze(-1)  # (b, n_now, 1): each feature's value, then its bins
            if self.bins is not None:
                enc = torch.cat([enc, self.bins.encode(now)], dim=-1)  # (b, n_now, 1 + now_bins)
            rising = torch.cat([enc[:, self.up_idx].flatten(1), -enc[:, self.down_idx].flatten(1)], dim=1)
            now = enc[:, self.context_idx].flatten(1)  # (b, n_context * (1 + now_bins))
        elif self.bins is not None:
            now = torch.cat([now, self.bins(now)], dim=1)  # (b, n_now * (1 + now_bins))
        if patient is None:
            patient = torch.zeros(b, dtype=torch.long, device=seq.device)
        patient = patient.long()
        # anything outside 1..n_patients is an unknown patient (row 0)
        patient = torch.where((patient > 0) & (patient <= self.cfg.n_patients), patient, 0)
        return [member(seq, now, patient, rising) for member in self.members]

    def forward(self, seq: torch.Tensor, now: torch.Tensor | None = None,
                patient: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.member_outputs(seq, now, patient)
        if len(outputs) == 1:
            return outputs[0]
        amount = torch.stack([a for a, _ in outputs]).mean(dim=0)
        p_dose = torch.stack([torch.sigmoid(logit) for _, logit in outputs]).mean(dim=0)
        return amount, torch.logit(p_dose, eps=1e-7)



THRESHOLDS = ("dose_threshold", "new_patient_threshold")


def upgraded_state(state: dict) -> dict:
    """A saved state dict in today's layout. One saved before members existed (one network at the
    top level) becomes member 0's; one saved before the new-patient threshold existed serves new
    patients at its one threshold (what that bundle did)."""
    if not any(k.startswith("members.") for k in state):
        state = {k if k in THRESHOLDS else f"members.0.{k}": v for k, v in state.items()}
    if "new_patient_threshold" not in state and "dose_threshold" in state:
        state = {**state, "new_patient_threshold": state["dose_threshold"].clone()}
    return state


def pick_device(prefer: str = "auto") -> torch.device:
    """"auto"/"cuda": CUDA when available, else CPU. "cpu": CPU."""
    if prefer not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', got {prefer!r}")
    if prefer != "cpu" and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")
