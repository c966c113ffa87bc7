"""The network's inputs as arrays and tensors, and the one forward pass over them.

An `ArrayPart` is a part of the windows (training, validation, test, or inputs edited in a
what-if) scaled for the network (predictor.InputScaling makes them); `TrainData` the two parts
training sees. `predict_raw` runs the network over a part in eval mode, in chunks: training
(validation MAE, the threshold), the predictors and the benchmarks all predict through it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .model import DoseNet, ModelConfig
from ..prep.windows import RowWindows


@dataclass
class ArrayPart:
    seq: np.ndarray | RowWindows  # (n, L, Fs) float32, scaled; RowWindows: a view of its rows
    now: np.ndarray  # (n, Fn) float32, scaled; Fn may be 0
    patient: np.ndarray  # (n,) int64; 0 = unknown patient
    y: np.ndarray  # (n, T) float32, units

    def __len__(self) -> int:
        return int(self.seq.shape[0])

    def check(self, cfg: ModelConfig, name: str = "part") -> None:
        n = len(self)
        want = {"seq": (n, cfg.window, cfg.n_seq_features), "now": (n, cfg.n_now_features),
                "patient": (n,), "y": (n, cfg.n_targets)}
        for key, shape in want.items():
            got = tuple(np.shape(getattr(self, key)))
            if got != shape:
                raise ValueError(f"{name}.{key} has shape {got}, expected {shape} for {cfg}")
        p = np.asarray(self.patient)
        if n and (p.min() < 0 or p.max() > cfg.n_patients):
            raise ValueError(f"{name}.patient must be in 0..{cfg.n_patients} (0 = unknown), "
                             f"got {p.min()}..{p.max()}")

    def tensors(self, device) -> tuple[torch.Tensor, ...]:
        """(seq, now, patient, y) tensors on `device`, built once."""
        return (*network_inputs(self, device), _f32(self.y).to(device))


def _f32(a) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(a, dtype=np.float32))


class TensorWindows:
    """RowWindows on a device: `windows[idx]` (a tensor of window positions or a slice) gathers
    those windows' rows into a (len(idx), L, F) batch, so training never holds every window."""

    def __init__(self, windows: RowWindows, device):
        self.rows = _f32(windows.rows).to(device)
        self.ends = torch.as_tensor(windows.ends, dtype=torch.int64).to(device)
        self.offsets = torch.arange(-windows.length, 0, device=device)

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, idx) -> torch.Tensor:
        return self.rows[self.ends[idx][:, None] + self.offsets]


def network_inputs(part: ArrayPart, device) -> tuple[torch.Tensor | TensorWindows, torch.Tensor, torch.Tensor]:
    """(seq, now, patient) of a part on `device` (seq as TensorWindows when the part holds RowWindows)."""
    p = torch.as_tensor(np.ascontiguousarray(part.patient, dtype=np.int64))
    seq = TensorWindows(part.seq, device) if isinstance(part.seq, RowWindows) else _f32(part.seq).to(device)
    return seq, _f32(part.now).to(device), p.to(device)


@dataclass
class TrainData:
    train: ArrayPart
    val: ArrayPart



def _model_device(model: DoseNet) -> torch.device:
    return next(model.parameters()).device


@torch.inference_mode()
def predict_raw(model: DoseNet, part: ArrayPart, batch: int = 4096
                ) -> tuple[np.ndarray, np.ndarray]:
    """(amount (n, T) units, P(dose) (n, T)) in eval mode."""
    model.eval()
    seq, now, patient = network_inputs(part, _model_device(model))  # part.y is not needed
    amounts, probs = [], []
    for i in range(0, len(part), batch):
        amount, logit = model(seq[i:i + batch], now[i:i + batch], patient[i:i + batch])
        amounts.append(amount.cpu().numpy())
        probs.append(torch.sigmoid(logit).cpu().numpy())
    t = model.cfg.n_targets
    if not amounts:
        return np.zeros((0, t), np.float32), np.zeros((0, t), np.float32)
    return np.concatenate(amounts), np.concatenate(probs)
