"""Train / validation / test splits of a WindowSet.

- `chrono` (default): per patient, the first 70% of their windows by time train, the next 10%
  validate, the last 20% test. Honest for "the next weeks of a patient we know".
- `patients`: whole patients held out (70/10/20 of patients, seeded). Honest for "a new patient".
- `random`: windows shuffled (the seed's split). Overlapping windows of one patient land on both
  sides, so it flatters the score; kept only to show by how much.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

SPLITS = ("chrono", "patients", "random")
DEFAULT_SPLIT = "chrono"  # the CLI, the Train page, studies and ExperimentConfig start from it
FRACTIONS = (0.7, 0.1, 0.2)


@dataclass(frozen=True)
class Split:
    kind: str
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def part_of(self, n: int) -> np.ndarray:
        """Name of the part ('train'/'val'/'test') of each of n windows."""
        part = np.full(n, "", dtype=object)
        for name in ("train", "val", "test"):
            part[getattr(self, name)] = name
        return part


def split_windows(context: pd.DataFrame, kind: str = DEFAULT_SPLIT, seed: int = 0) -> Split:
    """Split by the windows' context (patient_id, timestamp)."""
    if kind not in SPLITS:
        raise ValueError(f"Unknown split {kind!r}; choose one of {', '.join(SPLITS)}.")
    n = len(context)
    if kind == "random":
        order = np.random.default_rng(seed).permutation(n)
        cut1, cut2 = int(round(n * FRACTIONS[0])), int(round(n * (FRACTIONS[0] + FRACTIONS[1])))
        return Split(kind, np.sort(order[:cut1]), np.sort(order[cut1:cut2]), np.sort(order[cut2:]))
    if kind == "patients":
        return _by_patient(context, seed)
    return _chrono(context)


def _chrono(context: pd.DataFrame) -> Split:
    # Rank of each window in time within its patient, as a fraction of that patient's windows.
    order = context.sort_values(["patient_id", "timestamp"], kind="stable").index.to_numpy()
    pid = context["patient_id"].to_numpy()[order]
    rank = pd.Series(np.arange(len(order))).groupby(pid).cumcount().to_numpy()
    size = pd.Series(pid).map(pd.Series(pid).value_counts()).to_numpy()
    frac = rank / size
    part = np.where(frac < FRACTIONS[0], 0, np.where(frac < FRACTIONS[0] + FRACTIONS[1], 1, 2))
    return Split("chrono", *(np.sort(order[part == p]) for p in range(3)))


def _by_patient(context: pd.DataFrame, seed: int) -> Split:
    patients = np.sort(context["patient_id"].unique())
    if len(patients) < 3:
        raise ValueError(f"The patients split needs at least 3 patients, got {len(patients)}.")
    shuffled = np.random.default_rng(seed).permutation(patients)
    n_train = max(1, int(round(len(patients) * FRACTIONS[0])))
    n_val = max(1, int(round(len(patients) * FRACTIONS[1])))
    n_train = min(n_train, len(patients) - n_val - 1)
    groups = shuffled[:n_train], shuffled[n_train:n_train + n_val], shuffled[n_train + n_val:]
    pid = context["patient_id"].to_numpy()
    return Split("patients", *(np.flatnonzero(np.isin(pid, g)) for g in groups))
