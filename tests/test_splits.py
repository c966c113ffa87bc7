"""Splits: time order per patient, whole patients held out, random kept for comparison."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from insulin_core.prep.scaling import MinMaxScaler
from insulin_core.prep.splits import split_windows


def context(patients: int = 10, per_patient: int = 50, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    for p in range(1, patients + 1):
        stamps = pd.Timestamp("1990-01-01") + pd.to_timedelta(np.sort(rng.uniform(0, 90, per_patient)), unit="D")
        frames.append(pd.DataFrame({"patient_id": p, "timestamp": stamps}))
    return pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed).reset_index(drop=True)


def covers_everything_once(split, n):
    together = np.concatenate([split.train, split.val, split.test])
    return len(together) == n and len(np.unique(together)) == n


def test_chrono_train_strictly_before_val_before_test_per_patient():
    ctx = context()
    split = split_windows(ctx, "chrono")
    assert covers_everything_once(split, len(ctx))
    for p, rows in ctx.groupby("patient_id"):
        part = pd.Series(split.part_of(len(ctx)))[rows.index]
        stamps = rows["timestamp"]
        assert stamps[part == "train"].max() < stamps[part == "val"].min()
        assert stamps[part == "val"].max() < stamps[part == "test"].min()
    assert len(split.train) == pytest.approx(0.7 * len(ctx), abs=10)
    assert len(split.test) == pytest.approx(0.2 * len(ctx), abs=10)


def test_patients_split_puts_no_patient_on_two_sides():
    ctx = context()
    split = split_windows(ctx, "patients", seed=3)
    assert covers_everything_once(split, len(ctx))
    sides = [set(ctx.loc[getattr(split, part), "patient_id"]) for part in ("train", "val", "test")]
    assert all(sides) and not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert split_windows(ctx, "patients", seed=3).test.tolist() == split.test.tolist()
    assert split_windows(ctx, "patients", seed=4).test.tolist() != split.test.tolist()


def test_random_split_mixes_time():
    ctx = context()
    split = split_windows(ctx, "random", seed=1)
    assert covers_everything_once(split, len(ctx))
    first = ctx.loc[ctx["patient_id"] == 1]
    part = pd.Series(split.part_of(len(ctx)))[first.index]
    assert first.loc[part == "train", "timestamp"].max() > first.loc[part == "test", "timestamp"].min()


def test_bad_split_requests():
    with pytest.raises(ValueError, match="Unknown split"):
        split_windows(context(), "by-moon-phase")
    with pytest.raises(ValueError, match="at least 3 patients"):
        split_windows(context(patients=2), "patients")


def test_minmax_scaler_is_fit_on_what_it_is_given_only():
    train = np.array([[[0.0, 5.0], [10.0, 5.0]]])
    test = np.array([[[20.0, 5.0]]])
    scaler = MinMaxScaler.fit(train)
    assert scaler.transform(train)[0, :, 0].tolist() == [0.0, 1.0]
    assert scaler.transform(test)[0, 0, 0] == 2.0  # test values beyond the train range stay beyond
    assert scaler.transform(train)[0, :, 1].tolist() == [0.0, 0.0]  # constant feature -> 0
    again = MinMaxScaler.from_dict(scaler.to_dict())
    assert np.array_equal(again.transform(test), scaler.transform(test))
