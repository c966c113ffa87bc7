"""Sliding windows over the feature timeline, for two target formulations.

- `decision-point` (default): the decision dose of a decision moment (the Regular recorded then
  plus the Regular written on insulin-only rows up to `dose_window` minutes after it, see
  features.py), from the window of rows before it plus what is known at that moment
  (NOW_FEATURES). Only moments with something other than insulin on record are targets;
  insulin-only rows still enter the history.
- `next-row` (the seed's): the Regular dose of the row after the window, from the window alone.
  Every row is a target, so a row that exists only because insulin was given gives its answer
  away; kept to show how much that flatters the score.

Windows are cut for all patients at once, no Python loop over rows, and kept as a view of their
rows (RowWindows): a window's rows are gathered when it is used, never copied for every window.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from ..data.codes import DEFAULT_CGM_EVERY_MIN, MAX_PLAUSIBLE_DOSE
from ..configs import MAX_WINDOW, check_keys
from .features import (DEFAULT_DOSE_WINDOW_MIN, GLUCOSE_BAND_MGDL, NOW_FEATURES, SEQ_FEATURES, add_features,
                       now_columns, seq_columns)
from .timeline import TIMELINE_COLUMNS, check_cgm_every, check_dose_window, with_cgm_cadence

TARGETS = ("decision-point", "next-row")
DOSE_COLUMNS = ("regular", "nph", "ultralente")


@dataclass(frozen=True)
class WindowConfig:
    length: int = 10
    target: str = "decision-point"
    multi_output: bool = False  # predict Regular, NPH and UltraLente together
    # Minutes after a decision point whose insulin-only Regular counts as its dose (0 = the
    # moment's own dose only). NPH and UltraLente targets are always the moment's own.
    dose_window: int = DEFAULT_DOSE_WINDOW_MIN
    # On a CGM stream, a reading is a decision point once per this many minutes (timeline.py); it
    # travels with the model as the dose window does. Nothing changes on data without CGM readings.
    cgm_every: int = DEFAULT_CGM_EVERY_MIN

    def __post_init__(self) -> None:
        check_dose_window(self.dose_window)
        check_cgm_every(self.cgm_every)
        if isinstance(self.length, bool) or not isinstance(self.length, int) or not 1 <= self.length <= MAX_WINDOW:
            raise ValueError(f"Window length must be between 1 and {MAX_WINDOW} rows, got {self.length}.")
        if self.target not in TARGETS:
            raise ValueError(f"Unknown target {self.target!r}; choose one of {', '.join(TARGETS)}.")

    @property
    def targets(self) -> tuple[str, ...]:
        return DOSE_COLUMNS if self.multi_output else DOSE_COLUMNS[:1]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "WindowConfig":
        check_keys(cls, d)
        # Bundles written before the decision dose existed predicted the moment's own dose.
        return cls(**{"dose_window": 0, **d})


@dataclass(frozen=True)
class RowWindows:
    """(n, L, F) windows kept as a view of their rows: window i is rows[ends[i] - L : ends[i]].

    A timeline row sits in L windows; copying every window costs L times the rows (10x at the
    default length). Indexing gathers only the windows asked for, so training walks its batches
    without the whole set ever being copied (train.py gathers each batch the same way in torch)."""
    rows: np.ndarray  # (R, F) float32
    ends: np.ndarray  # (n,) int64: the row after each window (its target row)
    length: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return len(self.ends), self.length, self.rows.shape[1]

    @property
    def dtype(self):
        return self.rows.dtype

    def __len__(self) -> int:
        return len(self.ends)

    def __getitem__(self, key):
        """Numpy-style indexing: the first index picks windows (int, slice, array, mask), the rest
        applies to each gathered (L, F) window."""
        first, rest = (key[0], key[1:]) if isinstance(key, tuple) else (key, ())
        if isinstance(first, (int, np.integer)):
            out = self.rows[self.ends[first] - self.length + np.arange(self.length)]
            return out[rest] if rest else out
        idx = np.arange(len(self.ends))[first]
        out = self.rows[self.ends[idx][:, None] - self.length + np.arange(self.length)]
        return out[(slice(None), *rest)] if rest else out

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def copy(self) -> np.ndarray:
        return self[:]

    def covered(self) -> np.ndarray:
        """Boolean (R,): the rows inside at least one window (vectorised: +1 at each window's
        start, -1 after its end, a running sum)."""
        marks = np.zeros(len(self.rows) + 1, dtype=np.int64)
        np.add.at(marks, self.ends - self.length, 1)
        np.add.at(marks, self.ends, -1)
        return np.cumsum(marks[:-1]) > 0

    def select(self, idx) -> "RowWindows":
        """The windows `idx` over only the rows they use (so a part holds its own rows, not all)."""
        part = RowWindows(self.rows, self.ends[np.asarray(idx)], self.length)
        keep = part.covered()
        position = np.cumsum(keep) - 1  # row r's place among the kept rows
        return RowWindows(self.rows[keep], position[part.ends - 1] + 1, self.length)

    def map_rows(self, fn) -> "RowWindows":
        """The same windows over fn(rows), e.g. scaled rows (fn must work row by row)."""
        return RowWindows(fn(self.rows), self.ends, self.length)


@dataclass
class WindowSet:
    seq_rows: RowWindows  # the (n, L, len(seq_features)) float32 unscaled windows, as a view of their rows
    now: np.ndarray  # (n, len(now_features)) float32, unscaled; width 0 for next-row
    y: np.ndarray  # (n, len(targets)) float32, units; column 0 is Regular
    context: pd.DataFrame  # one row per window, see docs/architecture.md
    seq_features: tuple[str, ...]
    now_features: tuple[str, ...]
    targets: tuple[str, ...]
    config: WindowConfig

    def __len__(self) -> int:
        return len(self.y)

    @property
    def patient_id(self) -> np.ndarray:
        return self.context["patient_id"].to_numpy()

    @cached_property
    def seq(self) -> np.ndarray:
        """Every window copied out, (n, L, F): for small sets (a what-if moment, tests). The
        pipeline works on `seq_rows` and never asks for this, so a cohort is never copied L times."""
        return self.seq_rows[:]


class WindowError(ValueError):
    """Raised when no window can be cut (history shorter than the window, no patients)."""


def target_rows(features: pd.DataFrame, cfg: WindowConfig) -> np.ndarray:
    """Row positions that get a window: at least `length` rows of the same patient before them."""
    pid = features["patient_id"].to_numpy()
    pos = np.arange(len(pid))
    first_row = pd.Series(pos).groupby(pid).transform("min").to_numpy()
    has_history = pos - first_row >= cfg.length
    if cfg.target == "decision-point":
        has_history &= features["decision_point"].to_numpy(dtype=bool)
    return pos[has_history]


def features_for(features: pd.DataFrame, dose_window: int, cgm_every: int = DEFAULT_CGM_EVERY_MIN) -> pd.DataFrame:
    """The features with decision doses of `dose_window` minutes and decision points at a CGM
    cadence of `cgm_every` minutes (rebuilt only when either differs; the cadence only where the
    data has CGM readings)."""
    same_window = not len(features) or int(features["dose_window"].iloc[0]) == dose_window
    same_cadence = (not len(features) or int(features["cgm_every"].iloc[0]) == cgm_every
                    or not features["cgm_reading"].any())
    if same_window and same_cadence:
        return features
    timeline = features[TIMELINE_COLUMNS] if same_cadence else with_cgm_cadence(features[TIMELINE_COLUMNS], cgm_every)
    return add_features(timeline, dose_window)


def make_windows(features: pd.DataFrame, cfg: WindowConfig, rows: np.ndarray | None = None) -> WindowSet:
    """Cut windows ending just before each target row (all target rows, or the given `rows`)."""
    features = features_for(features, cfg.dose_window, cfg.cgm_every).reset_index(drop=True)
    rows = target_rows(features, cfg) if rows is None else np.asarray(rows, dtype=int)
    if len(rows) == 0:
        longest = features.groupby("patient_id").size().max() if len(features) else 0
        raise WindowError(
            f"No windows: a window of {cfg.length} rows needs at least {cfg.length + 1} rows of a "
            f"patient's history, and the longest history here has {longest}. Choose a shorter window."
        )
    # the window of target row r is the L rows before it: kept as a view of the rows (RowWindows)
    seq = RowWindows(features[seq_columns()].to_numpy(dtype=np.float32), rows.astype(np.int64), cfg.length)
    if cfg.target == "decision-point":
        now = features[now_columns()].to_numpy(dtype=np.float32)[rows]
        now_names = NOW_FEATURES
    else:
        now, now_names = np.zeros((len(rows), 0), dtype=np.float32), ()
    y = features.loc[rows, list(_target_columns(cfg))].to_numpy(dtype=np.float32)
    return WindowSet(seq, now, y, _context(features, rows, cfg), SEQ_FEATURES, now_names, cfg.targets, cfg)


def _target_columns(cfg: WindowConfig) -> tuple[str, ...]:
    """Feature-frame columns of the targets: the decision dose stands for Regular at decision points."""
    if cfg.target != "decision-point":
        return cfg.targets
    return ("decision_dose", *cfg.targets[1:])


def _context(features: pd.DataFrame, rows: np.ndarray, cfg: WindowConfig) -> pd.DataFrame:
    """What baselines, metrics and charts need about each target, in plain columns."""
    at = features.iloc[rows]
    glucose_now = at["glucose"].to_numpy() if cfg.target == "decision-point" else np.full(len(rows), np.nan)
    band = np.where(np.isnan(glucose_now), -1, np.floor(np.nan_to_num(glucose_now) / GLUCOSE_BAND_MGDL)).astype(int)
    last_same_dp = at["now_last_regular_same_dp"].where(at["now_has_last_regular_same_dp"] > 0)
    return pd.DataFrame({
        "patient_id": at["patient_id"].to_numpy(),
        "timestamp": at["timestamp"].to_numpy(),
        "day_part": at["day_part"].to_numpy(),
        "glucose_now": glucose_now,
        "glucose_band": band,
        "meal_now": at["meal"].to_numpy(),
        "exercise_now": at["exercise"].to_numpy(),
        "actual_dose": at[_target_columns(cfg)[0]].to_numpy(dtype=float),
        "prev_row_regular": features["regular"].to_numpy()[rows - 1],
        "last_regular_same_daypart": last_same_dp.to_numpy(),
        "implausible": (at["dose_implausible"].to_numpy(dtype=bool) if cfg.target == "decision-point"
                        else (at["regular"] > MAX_PLAUSIBLE_DOSE["regular"]).to_numpy()),
        "row": rows,
    })


@dataclass
class LazyWindows:
    """The windows of `make_windows` (same rows, same values) with their moments and targets as
    rows too, gathered per batch: the seq part is the same RowWindows view make_windows keeps.
    It is how a cohort whose windows do not fit in memory is walked."""

    windows: RowWindows  # the seq windows, unscaled
    now_rows: np.ndarray  # (timeline rows, len(now_features)) float32; width 0 for next-row
    y_rows: np.ndarray  # (timeline rows, len(targets)) float32
    config: WindowConfig

    @property
    def rows(self) -> np.ndarray:
        """The target row of each window."""
        return self.windows.ends

    def __len__(self) -> int:
        return len(self.windows)

    def seq(self, idx: np.ndarray) -> np.ndarray:
        """(len(idx), L, F) windows: the L rows before each target row."""
        return self.windows[np.asarray(idx)]

    def now(self, idx: np.ndarray) -> np.ndarray:
        return self.now_rows[self.rows[np.asarray(idx)]]

    def y(self, idx: np.ndarray) -> np.ndarray:
        return self.y_rows[self.rows[np.asarray(idx)]]

    def batches(self, batch: int):
        """(seq, now, y) of consecutive windows, `batch` at a time."""
        for start in range(0, len(self), batch):
            idx = np.arange(start, min(start + batch, len(self)))
            yield self.seq(idx), self.now(idx), self.y(idx)


def lazy_windows(features: pd.DataFrame, cfg: WindowConfig) -> LazyWindows:
    """The windows `make_windows(features, cfg)` would cut, as a LazyWindows (no window copied yet)."""
    features = features_for(features, cfg.dose_window, cfg.cgm_every).reset_index(drop=True)
    rows = target_rows(features, cfg)
    if cfg.target == "decision-point":
        now_rows = features[now_columns()].to_numpy(dtype=np.float32)
    else:
        now_rows = np.zeros((len(features), 0), dtype=np.float32)
    windows = RowWindows(features[seq_columns()].to_numpy(dtype=np.float32), rows.astype(np.int64), cfg.length)
    return LazyWindows(windows, now_rows, features[list(_target_columns(cfg))].to_numpy(dtype=np.float32), cfg)
