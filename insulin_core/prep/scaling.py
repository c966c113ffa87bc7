"""Min-Max scaling (as the seed), fit on the training part only, JSON-serialisable."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MinMaxScaler:
    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray) -> "MinMaxScaler":
        """Fit over every axis but the last (features), e.g. (n, L, F) -> per-feature bounds."""
        flat = x.reshape(-1, x.shape[-1]) if x.size else np.zeros((1, x.shape[-1]))
        return cls(flat.min(axis=0).astype(np.float64), flat.max(axis=0).astype(np.float64))

    def transform(self, x: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        # A constant feature (span 0) maps to 0 rather than dividing by zero.
        scaled = (x - self.low) / np.where(span > 0, span, 1.0)
        return scaled.astype(np.float32)

    def to_dict(self) -> dict:
        return {"low": self.low.tolist(), "high": self.high.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "MinMaxScaler":
        low, high = np.asarray(data["low"], dtype=np.float64), np.asarray(data["high"], dtype=np.float64)
        if low.shape != high.shape or low.ndim != 1:
            raise ValueError("Scaler bounds must be two lists of equal length.")
        return cls(low, high)
